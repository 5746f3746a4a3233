"""``candela scale``: the elastic cluster (simulator, plan-only pass, decisions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from candela import cli_console

app = typer.Typer(
    help="The elastic cluster: autoscaling policies and their simulator.", no_args_is_help=True
)
console = cli_console.console


@app.command("simulate")
def simulate_cmd(
    trace: Annotated[Path, typer.Option("--trace", help="workload trace (CSV, see data/scaling)")],
    policy: Annotated[str, typer.Option("--policy", help="threshold | demand")] = "demand",
    config: Annotated[
        Path | None, typer.Option("--config", help="scaling configuration (TOML/JSON)")
    ] = None,
    boot_s: Annotated[
        float | None, typer.Option("--boot-s", help="VM boot + join seconds (default 240)")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="write a PNG of nodes and queue")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Replay a workload trace through a model of the cluster under one policy."""
    from candela.cli import fail
    from candela.scaling.config import ConfigError, load_config
    from candela.scaling.simulator import TraceError, read_trace, simulate

    if policy not in ("threshold", "demand"):
        raise fail(f"--policy must be threshold or demand, not {policy!r}", 2)
    try:
        cfg = load_config(config).with_policy(policy)  # type: ignore[arg-type]
        if boot_s is not None:
            if boot_s <= 0:
                raise ConfigError("--boot-s must be > 0")
            cfg = cfg.model_copy(update={"boot_s": boot_s})
        result = simulate(read_trace(trace), cfg)
    except (ConfigError, TraceError) as exc:
        raise fail(str(exc), 2) from None
    if plot is not None:
        from candela.scaling.plot import plot as draw

        draw([result], plot, f"{trace.name}: {policy}")
    summary = result.summary()
    if as_json:
        print(json.dumps(summary | {"events": result.events}, indent=2))
        return
    t = Table(title=f"{trace.name} under {policy} (boot + join {cfg.boot_s:g} s)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k, v in summary.items():
        t.add_row(k, ", ".join(f"{a}={b}" for a, b in v.items()) if isinstance(v, dict) else str(v))
    console.print(t)
    if plot is not None:
        console.print(f"plot: {plot}")


@app.command("plan")
def plan_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """One pass of the autoscaler now, plan only unless CANDELA_SCALING_MODE=act (recorded)."""
    from candela.cli import fail
    from candela.scaling.autoscaler import run_once
    from candela.scaling.config import ConfigError

    try:
        rows = run_once()
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    _print_decisions(
        [{**r, "node_group": r["group"], "decided_at": "now"} for r in rows], "this pass"
    )


@app.command("decisions")
def decisions_cmd(
    limit: Annotated[int, typer.Option(help="how many")] = 20,
    changes: Annotated[bool, typer.Option("--changes", help="only scale-ups/downs")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The autoscaler's latest decisions and what came of them."""
    from candela.cli import platform_dsn
    from candela.db.scaling import recent

    rows = recent(platform_dsn(), limit, changes)
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return
    _print_decisions(rows, f"last {limit} decisions")


def _print_decisions(rows: list[dict], title: str) -> None:  # type: ignore[type-arg]
    t = Table(title=title)
    for col in ("when", "mode", "group", "action", "n", "outcome", "why"):
        t.add_column(col)
    for r in rows:
        when = r["decided_at"]
        t.add_row(
            when if isinstance(when, str) else when.strftime("%Y-%m-%d %H:%M:%S"),
            r["mode"],
            r["node_group"],
            r["action"],
            str(r["count"]),
            r["outcome"],
            r["why"],
        )
    console.print(t)


usage_app = typer.Typer(help="Per-user consumption and quotas.", invoke_without_command=True)


def _since(text: str) -> Any:
    """``7d``, ``24h``, ``30m`` or an ISO date/time → an aware datetime."""
    import datetime as dt
    import re

    m = re.fullmatch(r"(\d+)([dhm])", text.strip())
    now = dt.datetime.now(dt.UTC)
    if m:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[m[2]]
        return now - dt.timedelta(**{unit: int(m[1])})
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: use 7d, 24h, 30m or an ISO date") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@usage_app.callback()
def usage_cmd(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="one user only")] = None,
    since: Annotated[str, typer.Option("--since", help="7d, 24h, 30m or an ISO date")] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """CPU-hours, GPU-hours, memory GiB-hours and runs per user, day and workflow."""
    if ctx.invoked_subcommand is not None:
        return
    from candela.cli import fail, platform_dsn
    from candela.db.metrics import usage
    from candela.db.workspaces import roots
    from candela.usage import summary, workspace_bytes

    try:
        start = _since(since)
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    dsn = platform_dsn()
    rows = usage(dsn, start, user)
    totals = summary(rows)
    storage = {u: workspace_bytes(r) for u, r in roots(dsn).items() if user in (None, u)}
    if as_json:
        print(
            json.dumps(
                {"since": start.isoformat(), "rows": rows, "totals": totals,
                 "workspace_bytes": storage},
                indent=2,
                default=str,
            )
        )  # fmt: skip
        return
    t = Table(title=f"usage since {start:%Y-%m-%d %H:%M} UTC")
    for col in ("user", "day", "workflow", "runs", "steps", "CPU-h", "GPU-h", "mem GiB-h"):
        t.add_column(
            col, justify="right" if col[0].isupper() or col in ("runs", "steps") else "left"
        )
    for r in rows:
        t.add_row(r["who"], str(r["day"]), r["dag_id"], str(r["runs"]), str(r["steps"]),
                  f"{r['cpu_hours']:.3f}", f"{r['gpu_hours']:.3f}",
                  f"{r['memory_gib_hours']:.3f}")  # fmt: skip
    for who, s in totals.items():
        ws = storage.get(who)
        t.add_row(f"[bold]{who}[/bold]", "total", "" if ws is None else f"workspace {ws / 2**20:.1f} MiB",
                  str(int(s["runs"])), str(int(s["steps"])), f"{s['cpu_hours']:.3f}",
                  f"{s['gpu_hours']:.3f}", f"{s['memory_gib_hours']:.3f}")  # fmt: skip
    console.print(t)


@usage_app.command("quota")
def quota_cmd(
    user: Annotated[str, typer.Argument(help="user name, or '*' for everyone else")],
    runs_per_day: Annotated[int | None, typer.Option(min=0)] = None,
    cpu_hours_per_day: Annotated[float | None, typer.Option(min=0)] = None,
    gpu_hours_per_day: Annotated[float | None, typer.Option(min=0)] = None,
) -> None:
    """Set a user's quotas over 24 hours (unset options: no limit)."""
    from candela.cli import platform_dsn
    from candela.db.metrics import set_quota

    set_quota(platform_dsn(), user, runs_per_day, cpu_hours_per_day, gpu_hours_per_day)
    console.print(f"quota of {user}: runs {runs_per_day}, CPU-h {cpu_hours_per_day}, "
                  f"GPU-h {gpu_hours_per_day} per 24 h")  # fmt: skip


def print_live_figures() -> None:
    """`candela status`: the latest node samples, service checks, steps and scaling decision
    (from the monitoring tables; nothing when there is no database)."""
    import datetime as dt

    from candela.db import metrics, scaling
    from candela_sdk.settings import platform_dsn

    try:
        dsn = platform_dsn()
        if not dsn:
            return
        nodes = metrics.latest_nodes(dsn)
        health = metrics.health(dsn)
        steps = metrics.step_totals(dsn)
        usage = metrics.usage(dsn, dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        last = scaling.recent(dsn, 2)
    except Exception as exc:  # no tables yet, database down: status says the rest
        console.print(f"[yellow]no live figures: {str(exc).splitlines()[0]}[/yellow]")
        return
    t = Table("node", "sampled", "CPU %", "mem %", "disk free GiB", "uptime h", title="nodes")
    for n in nodes:
        t.add_row(n["node"], f"{n['at']:%H:%M:%S}", f"{n['cpu_pct']:.0f}", f"{n['mem_pct']:.0f}",
                  f"{n['disk_free_gib']:.1f}", f"{n['uptime_s'] / 3600:.1f}")  # fmt: skip
    console.print(t)
    if health:
        h = Table("service", "state", "since", "detail", title="services")
        for x in health:
            state = "[green]up[/green]" if x["up"] else "[red]down[/red]"
            h.add_row(x["service"], state, f"{x['changed_at']:%Y-%m-%d %H:%M}", x["detail"])
        console.print(h)
    if steps:
        s = Table("service", "steps", "CPU-h", "peak MiB", title="steps measured")
        for x in steps:
            s.add_row(x["service"], str(x["steps"]), f"{(x['cpu_s'] or 0) / 3600:.3f}",
                      f"{x['peak_rss_mib'] or 0:.0f}")  # fmt: skip
        console.print(s)
    runs = sum(r["runs"] for r in usage)
    cpu = sum(r["cpu_hours"] for r in usage)
    console.print(f"last 24 h: {runs} run(s), {cpu:.3f} CPU-hours (candela usage)")
    for d in last:
        console.print(f"autoscaler ({d['mode']}, {d['decided_at']:%H:%M:%S}): {d['node_group']} "
                      f"{d['action']} {d['count']} – {d['why']}")  # fmt: skip
