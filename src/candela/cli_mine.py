"""``candela mine``: the data-mining tables (``candela.mine_patches``, filled by the
``mine_patches`` DAG / the ``candela-mine`` service).

* ``candela mine sql "SELECT …"`` – the SQL mode: one read-only statement over the documented
  ``candela.mine_v_*`` views, as the role ``candela_mine_reader``, with a statement timeout and a
  row cap (:func:`candela.db.mining.readonly_query`); table, JSON or CSV;
* ``candela mine stats`` – patches per dataset and stack.

The demo ends by waiting for the ``mine_patches`` run its results started (:func:`demo_mining`).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from candela import cli_console

app = typer.Typer(
    help="Data mining: SQL over the patches' features and metadata.", no_args_is_help=True
)
console = cli_console.console

MINE_DAG = "mine_patches"
# the documented query (README "Data mining"): patches and mean NDVI per dataset
EXAMPLE_QUERY = (
    "SELECT dataset, count(*) AS patches,"
    " round(avg(candela.mine_feature(feature_names, features, 'ndvi_mean'))::numeric, 3)"
    " AS mean_ndvi FROM candela.mine_v_patches GROUP BY dataset ORDER BY dataset"
)


def _dsn() -> str:
    from candela.cli import platform_dsn

    return platform_dsn()


def _cell(v: Any) -> Any:
    if isinstance(v, str | int | float | bool) or v is None:
        return v
    if isinstance(v, list | tuple):
        return [_cell(x) for x in v]
    if isinstance(v, dict):
        return {k: _cell(x) for k, x in v.items()}
    return str(v)


@app.command("sql")
def sql(
    statement: Annotated[str, typer.Argument(help="one read-only statement (SELECT/WITH/…)")],
    timeout: Annotated[float, typer.Option(help="statement timeout (s)", min=0.1)] = 10.0,
    max_rows: Annotated[int, typer.Option(help="at most this many rows", min=1)] = 1000,
    fmt: Annotated[str, typer.Option("--format", help="table, json or csv")] = "table",
) -> None:
    """Run one read-only statement over the candela.mine_v_* views (see README, Data mining)."""
    from candela.cli import fail
    from candela.db.mining import QueryCancelled, QueryRefused, readonly_query

    if fmt not in ("table", "json", "csv"):
        raise fail(f"--format must be table, json or csv: {fmt}", 2)
    try:
        columns, rows, truncated = readonly_query(
            _dsn(), statement, timeout_s=timeout, max_rows=max_rows
        )
    except QueryRefused as exc:
        raise fail(str(exc), 2) from None
    except QueryCancelled as exc:
        raise fail(str(exc), 1) from None
    if fmt == "json":
        out = {
            "columns": columns,
            "rows": [[_cell(v) for v in r] for r in rows],
            "truncated": truncated,
        }
        sys.stdout.write(json.dumps(out) + "\n")
    elif fmt == "csv":
        w = csv.writer(sys.stdout)
        w.writerow(columns)
        for r in rows:
            w.writerow([json.dumps(_cell(v)) if isinstance(v, list | dict) else v for v in r])
    else:
        table = Table(*columns)
        for r in rows:
            table.add_row(*("" if v is None else str(_cell(v)) for v in r))
        console.print(table)
        console.print(
            f"{len(rows)} row(s)" + (f", cut at --max-rows {max_rows}" if truncated else "")
        )
    if truncated:
        cli_console.err.print(f"truncated: more than {max_rows} rows")


@app.command("stats")
def stats() -> None:
    """Patches per dataset and stack."""
    from candela.db import connect

    with connect(_dsn()) as conn:
        rows = conn.execute(
            "SELECT dataset, stack_uri, count(*), min(acquired), max(mined_by_run)"
            " FROM candela.mine_patches GROUP BY dataset, stack_uri ORDER BY dataset, stack_uri"
        ).fetchall()
    table = Table("dataset", "stack", "patches", "acquired", "run")
    for d, s, n, a, r in rows:
        table.add_row(d, s, str(n), str(a or ""), r or "")
    console.print(table)


def demo_mining(settings: Any, source_dag: str, timeout_s: float = 600) -> int:
    """After the demo's run: wait for the ``mine_patches`` run its published results started
    (asset event), or start one on that run when none comes within 90 s; print what the tables
    hold. The exit code of the demo's last step."""
    from candela.cli import _client, fail
    from candela.db import connect
    from candela.embedded import platform_dsn

    client = _client(settings)
    try:
        source = (client.runs(1, source_dag) or [None])[0]
        if not source:
            raise fail(f"no run of {source_dag} to mine")
        if client.get_dag(MINE_DAG) is None:
            client.wait_for_dag(MINE_DAG, timeout=120)
        run_id = None
        deadline = time.monotonic() + 90
        with console.status("waiting for mine_patches (started by the run's results)…"):
            while run_id is None and time.monotonic() < deadline:
                for r in client.runs(5, MINE_DAG):
                    # a run queued after the demo's run started: the one its results started
                    if str(r.get("run_after") or r.get("queued_at") or "") >= str(
                        source.get("start_date") or source.get("run_after") or ""
                    ):
                        run_id = r["dag_run_id"]
                        break
                else:
                    time.sleep(3)
        if run_id is None:
            run = client.trigger(MINE_DAG, {"source_run_id": source["dag_run_id"]})
            run_id = run["dag_run_id"]
        console.print(f"data mining: {MINE_DAG} run {run_id}")
        final = None
        deadline = time.monotonic() + timeout_s
        with console.status("mining patches…"):
            while time.monotonic() < deadline:
                final = client.get_run(MINE_DAG, run_id)
                if final.get("state") in ("success", "failed"):
                    break
                time.sleep(3)
        state = (final or {}).get("state")
        console.print(f"run {run_id}: [bold]{state}[/bold]")
        if state != "success":
            return 1
    finally:
        client.close()
    with connect(platform_dsn(settings)) as conn:
        n, stacks = conn.execute(
            "SELECT count(*), count(DISTINCT stack_uri) FROM candela.mine_patches"
        ).fetchone()
    console.print(f"  candela.mine_patches: {n} patches of {stacks} stack(s)")
    console.print(f'  ask: candela mine sql "{EXAMPLE_QUERY}"')
    return 0 if n else 1
