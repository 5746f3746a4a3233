"""``candela scale``: the elastic cluster (simulator, plan-only pass, decisions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="The elastic cluster: autoscaling policies and their simulator.", no_args_is_help=True
)
console = Console()


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
