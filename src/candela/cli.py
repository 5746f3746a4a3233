"""The ``candela`` command: run the embedded platform, trigger and follow pipelines."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from candela import cli_console
from candela.cli_cluster import app as cluster_app
from candela.cli_kb import app as kb_app
from candela.cli_mine import app as mine_app
from candela.cli_models import app as models_app
from candela.cli_notebook import notebook
from candela.cli_orders import app as orders_app
from candela.cli_scale import app as scale_app
from candela.cli_scale import usage_app
from candela.cli_storage import app as storage_app
from candela.settings import Settings, get_settings
from candela.workflows import ChangeDetectionConf
from candela_sdk.errors import InputError

app = typer.Typer(
    help="Candela: Earth-observation analytics on Copernicus data, orchestrated by Airflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
catalog_app = typer.Typer(help="The local catalogue of products.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(storage_app, name="storage")
app.add_typer(orders_app, name="order")
app.add_typer(models_app, name="models")
app.add_typer(kb_app, name="kb")
app.add_typer(mine_app, name="mine")
app.add_typer(scale_app, name="scale")
app.add_typer(usage_app, name="usage")
app.add_typer(cluster_app, name="cluster")
app.command()(notebook)

console, err = cli_console.console, cli_console.err

REPO = Path(__file__).resolve().parents[2]
DEMO_SAMPLE = REPO / "data" / "oscd" / "bordeaux"
DEMO_DAG = "s2_change_detection"
DEMO_CONF: dict[str, Any] = ChangeDetectionConf(
    collection="sentinel-2-l1c",
    bbox=[-0.68, 44.83, -0.56, 44.93],
    start=dt.date(2016, 1, 1),
    end=dt.date(2017, 12, 31),
    tile="T30TXQ",
    model="encoder",
    threshold="auto",
    zones=str(REPO / "data" / "context" / "admin" / "communes-33-gironde.geojson"),
).conf()
# `candela demo --fusion`: the BigEarthNet S2 + S1 patch pair (Austria, both 2017-06-13): one
# date, so no change pair, and fuse_landcover classifies it from both sensors
DEMO_FUSION_SAMPLE = REPO / "data" / "bigearthnet"
DEMO_FUSION_CONF: dict[str, Any] = ChangeDetectionConf(
    collection="sentinel-2-l2a",
    bbox=[13.7128, 48.2169, 13.7291, 48.2277],
    start=dt.date(2017, 6, 1),
    end=dt.date(2017, 6, 30),
    model="cva",
    threshold="auto",
).conf()


def fail(message: str, code: int = 1) -> typer.Exit:
    """The CLI's one way out on an error: one red line on stderr, then the exit code."""
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def fail_on(exc: Exception) -> typer.Exit:
    """:func:`fail` for an error: exit code 2 for bad input (:class:`InputError`), else 1."""
    return fail(str(exc), 2 if isinstance(exc, InputError) else 1)


def platform_dsn(settings: Settings | None = None) -> str:
    """The platform tables' DSN, or exit with why there is none."""
    from candela import embedded

    try:
        return embedded.platform_dsn(settings or _settings())
    except embedded.PlatformError as exc:
        raise fail(str(exc)) from None


def _settings(port: int | None = None) -> Settings:
    """Settings, with the port of the running platform unless one is given."""
    from candela import embedded

    s = get_settings()
    if port is None:
        port = embedded.recorded_port(s)
    if port is not None:
        s = s.model_copy(update={"port": port})
    return s


# --- platform -------------------------------------------------------------------------------


@app.command()
def up(
    port: Annotated[
        int | None, typer.Option(help="port of the Airflow UI / API (loopback; default 8080)")
    ] = None,
    s3: Annotated[
        bool, typer.Option("--s3", help="also run a local S3 server (SeaweedFS) and use it")
    ] = False,
) -> None:
    """Start the embedded platform (PostgreSQL + Airflow) in the background."""
    from candela import embedded, s3server

    s = _settings(port)
    started = time.monotonic()
    try:
        with console.status("starting Candela…") as st:
            res = embedded.up(s, progress=lambda m: st.update(m + "…"), s3=s3)
    except embedded.PlatformError as exc:
        raise fail(str(exc)) from None
    s = res["settings"]
    if res["already_running"]:
        console.print(f"Candela is already running under {s.home_abs}")
        _print_status(s)
    else:
        console.print(f"Candela is up ({time.monotonic() - started:.0f} s).")
    if s3 or s3server.running(s.home_abs):
        console.print(s3server.status_line(s.home_abs))
        users = s3server.credentials_file(s.home_abs, "admin").parent
        console.print(f"  S3 keys of each user (hand them out): {users}/<user>.json")
    _print_login(s)


def _print_login(s: Settings) -> None:
    from candela import embedded

    console.print(f"  Airflow UI: {s.api_url}")
    try:
        console.print(f"  login: {s.airflow_username} / {embedded.admin_password(s)}")
    except embedded.PlatformError:
        pass
    console.print(f"  home:  {s.home_abs}  (logs in {s.log_dir})")


@app.command()
def down() -> None:
    """Stop every process `candela up` started."""
    from candela import embedded

    s = _settings()
    with console.status("stopping Candela…") as st:
        stopped = embedded.down(s, progress=lambda m: st.update(m + "…"))
    if stopped:
        console.print("stopped: " + ", ".join(stopped))
    else:
        console.print(f"Candela is not running under {s.home_abs}; nothing to stop.")


@app.command()
def status(
    port: Annotated[int | None, typer.Option(help="port of the Airflow API")] = None,
) -> None:
    """Show each component's health."""
    from candela import embedded

    s = _settings(port)
    states = _print_status(s)
    if not all(x.running for x in states):
        raise typer.Exit(1)
    del embedded


def _print_status(s: Settings) -> list[Any]:
    from candela import embedded

    states = embedded.status(s)
    t = Table("component", "pid", "state")
    for x in states:
        colour = "green" if x.running else "red"
        t.add_row(x.name, str(x.pid or "-"), f"[{colour}]{x.detail}[/{colour}]")
    console.print(t)
    pg = [x for x in states if x.name == "postgresql"]
    if any(x.running for x in states) and all(x.running for x in pg):
        from candela.cli_scale import print_live_figures

        print_live_figures()
    return states


# --- services and catalogue -----------------------------------------------------------------


@app.command()
def services(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """The catalogue of processing services, with their parameters."""
    from candela_sdk.services import catalogue

    cat = catalogue()
    if as_json:
        print(json.dumps(cat, indent=2))
        return
    for svc in cat:
        console.print(f"[bold]{svc['name']}[/bold]  ({' '.join(svc['command'])})")
        console.print(f"  {svc['summary']}")
        props = svc["parameters"].get("properties", {})
        required = set(svc["parameters"].get("required", []))
        for name, spec in props.items():
            flag = "--" + name.replace("_", "-")
            mark = " (required)" if name in required else ""
            console.print(f"    {flag}{mark}: {spec.get('description', '')}", highlight=False)


@catalog_app.command("add")
def catalog_add(
    paths: Annotated[list[Path], typer.Argument(help="product folders, zips or STAC files")],
) -> None:
    """Register products in the local catalogue (idempotent)."""

    s = _settings()
    dsn = platform_dsn(s)
    added, updated, skipped, ids = register_products(dsn, paths)
    console.print(f"catalogue: {added} added, {updated} updated, {len(skipped)} skipped")
    for sk in skipped:
        console.print(f"  skipped {sk.path}: {sk.reason}", highlight=False)
    if not added and not updated:
        raise typer.Exit(1)
    if added:
        _announce_products(s, ids)


def _announce_products(s: Settings, ids: list[str]) -> None:
    """Emit the catalogue asset event that starts s2_new_products (if Airflow runs)."""
    from candela import embedded
    from candela.airflow_api import AirflowApiError, AirflowClient
    from candela.triggers import emit_catalog_event

    if not s.airflow_url and embedded.health(s) is None:
        return
    try:
        with AirflowClient(s.api_url, s.airflow_username, embedded.admin_password(s)) as c:
            if emit_catalog_event(c, ids):
                console.print(f"announced {len(ids)} new product(s) to the pipelines")
    except (AirflowApiError, embedded.PlatformError) as exc:
        err.print(f"warning: new products not announced to Airflow: {exc}")


def register_products(dsn: str, paths: list[Path]) -> tuple[int, int, list[Any], list[str]]:
    """Recognise and upsert products; returns (added, updated, skipped, ids of new products)."""
    from candela.db.products import known_ids
    from candela_sdk import storage
    from candela_search import catalog, ingest

    records: list[Any] = []
    skipped: list[Any] = []
    for p in paths:
        if not p.exists():
            skipped.append(ingest.Skipped(p, "no such file or folder"))
            continue
        found = ingest.recognise(p)
        for rec in found.records:
            missing = incomplete_reason(rec)
            if missing:
                skipped.append(ingest.Skipped(Path(storage.parse(rec.href).path), missing))
            else:
                records.append(rec)
        skipped += found.skipped
    ids = [r.id for r in records]
    known = known_ids(dsn, ids)
    added, updated = catalog.add(dsn, records) if records else (0, 0)
    return added, updated, skipped, [i for i in ids if i not in known]


def incomplete_reason(record: Any) -> str:
    """Why a local Sentinel-2 product cannot feed a run ("" if it can): the bands it lacks.

    A run stacks the preprocessing service's default bands; a product recognised from a local
    folder (OSCD, SAFE, BigEarthNet: assets keyed by band name) must have each of them, and the
    band's file when the product is on this machine. Other sources (STAC items with their own
    asset names, single-file stacks, Sentinel-1) are not judged here.
    """
    from candela_sdk import storage
    from candela_sdk.sentinel2 import DEFAULT_BANDS

    if not record.collection.startswith("sentinel-2") or record.source not in (
        "oscd",
        "safe",
        "bigearthnet",
    ):
        return ""
    assets = record.item.get("assets") or {}
    if not assets:  # a zip: no band files to look at; preprocessing checks it
        return ""
    missing = []
    for band in DEFAULT_BANDS:
        href = str((assets.get(band) or {}).get("href") or "")
        if not href or href.startswith("file://") and not Path(storage.parse(href).path).exists():
            missing.append(band)
    if not missing:
        return ""
    return (
        f"incomplete product {record.id}: band(s) {', '.join(missing)} missing "
        f"(a run needs {' '.join(DEFAULT_BANDS)})"
    )


@catalog_app.command("list")
def catalog_list() -> None:
    """List the products in the local catalogue."""
    from candela.db.products import listing

    dsn = platform_dsn()
    t = Table("id", "collection", "datetime", "tile", "cloud %", "href")
    for r in listing(dsn):
        t.add_row(
            r[0],
            r[1],
            r[2].isoformat(),
            r[3] or "",
            f"{r[4]:.0f}" if r[4] is not None else "",
            r[5],
        )
    console.print(t)


# --- watches --------------------------------------------------------------------------------

watch_app = typer.Typer(help="Saved watches: an area compared every N days.", no_args_is_help=True)
app.add_typer(watch_app, name="watch")


@watch_app.command("add")
def watch_add(
    name: Annotated[str, typer.Argument(help="a name for the watch")],
    bbox: Annotated[
        tuple[float, float, float, float],
        typer.Option(help="west south east north (degrees)", min=-180, max=180),
    ],
    every_days: Annotated[int, typer.Option(min=1, help="how often to compare")] = 5,
    since: Annotated[str, typer.Option(help="first acquisition day (YYYY-MM-DD)")] = "",
    collection: Annotated[str, typer.Option()] = "sentinel-2-l2a",
    tile: Annotated[str | None, typer.Option(help="MGRS tile, e.g. T30TYQ")] = None,
    model: Annotated[str, typer.Option(help="change model (candela models list)")] = "encoder",
    max_cloud: Annotated[float, typer.Option(min=0, max=100)] = 100,
) -> None:
    """Save (or update) a watch; the s2_watches DAG starts its runs."""
    import datetime as dt

    from candela.db.runs import save_watch
    from candela.runs import Watch
    from candela.workflows import BadRunConf

    try:
        start = dt.date.fromisoformat(since) if since else dt.date.today()
    except ValueError:
        raise fail(f"--since is not a date (YYYY-MM-DD): {since!r}") from None
    watch = Watch(name, collection, list(bbox), tile, model, max_cloud, every_days, start)
    try:  # the run configuration the watch will start: refused now rather than at each run
        watch.conf(max(start, dt.date.today()))
    except BadRunConf as exc:
        raise fail(str(exc)) from None
    save_watch(platform_dsn(), watch)
    console.print(f"watch {name!r} saved: {collection} every {every_days} day(s) since {start}")


@watch_app.command("list")
def watch_list() -> None:
    """List the saved watches."""
    from candela.db.runs import list_watches

    dsn = platform_dsn()
    t = Table("name", "collection", "bbox", "every", "since", "last run")
    for w in list_watches(dsn):
        t.add_row(
            w.name,
            w.collection,
            " ".join(f"{x:g}" for x in w.bbox),
            f"{w.every_days} d",
            w.since.isoformat(),
            w.last_run_id or "-",
        )
    console.print(t)


@watch_app.command("remove")
def watch_remove(name: str) -> None:
    """Remove a watch."""
    from candela.db.runs import remove_watch

    dsn = platform_dsn()
    if not remove_watch(dsn, name):
        raise fail(f"no watch named {name!r}")
    console.print(f"watch {name!r} removed")


# --- runs -----------------------------------------------------------------------------------


def parse_conf(conf: str | None) -> dict[str, Any]:
    from candela_sdk.errors import InputError
    from candela_sdk.jsonarg import read_json_arg

    if not conf:
        return {}
    try:
        return dict(read_json_arg(conf, "--conf", obj=True))
    except InputError as exc:
        raise fail(str(exc)) from None


def _client(s: Settings) -> Any:
    from candela import embedded
    from candela.airflow_api import AirflowClient

    if not s.airflow_url and embedded.health(s) is None:
        raise fail(f"Candela is not running at {s.api_url}: start it with `candela up`")
    try:
        password = embedded.admin_password(s)
    except embedded.PlatformError as exc:
        raise fail(str(exc)) from None
    return AirflowClient(s.api_url, s.airflow_username, password)


@app.command()
def run(
    dag_id: Annotated[str, typer.Argument(help="the pipeline (DAG id) to run")],
    conf: Annotated[
        str | None, typer.Option(help="run parameters: JSON object, or @file.json")
    ] = None,
    wait: Annotated[bool, typer.Option(help="follow the run until it ends")] = True,
    port: Annotated[int | None, typer.Option(help="port of the Airflow API")] = None,
) -> None:
    """Trigger a pipeline run through Airflow's REST API and follow it."""
    from candela.workflows import BadRunConf, validate_conf

    s = _settings(port)
    params = parse_conf(conf)
    try:  # the workflow's typed run configuration refuses bad input before a run exists
        typed = validate_conf(dag_id, params)
    except BadRunConf as exc:
        raise fail(str(exc)) from None
    if typed is not None:
        params = typed.conf()
    code = trigger_and_follow(s, dag_id, params, wait)
    raise typer.Exit(code)


def trigger_and_follow(s: Settings, dag_id: str, params: dict[str, Any], wait: bool) -> int:
    from candela.airflow_api import AirflowApiError
    from candela.embedded import DAGS_FOLDER
    from candela.run_inputs import stage_zones

    client = _client(s)
    if params.get("zones"):  # a local file: into storage, where a step on any node reads it
        try:
            params = {**params, "zones": stage_zones(s, str(params["zones"]))}
        except InputError as exc:
            raise fail(str(exc)) from None
    try:
        dag = client.get_dag(dag_id)
        if dag is None and (DAGS_FOLDER / f"{dag_id}.py").exists():
            with console.status(f"waiting for Airflow to load {dag_id}…"):
                dag = client.wait_for_dag(dag_id, timeout=120)
        if dag is None:
            known = ", ".join(sorted(client.list_dags())) or "none"
            raise fail(f"unknown DAG id {dag_id!r}; known: {known}")
        if dag.get("is_paused"):
            client.unpause(dag_id)
        run = client.trigger(dag_id, params)
        run_id = run["dag_run_id"]
        console.print(f"triggered {dag_id} run {run_id}")
        console.print(f"  in the UI: {client.ui_url(dag_id, run_id)}")
        if not wait:
            return 0
        final = _follow(client, dag_id, run_id)
        console.print(f"run {run_id}: [bold]{final.state}[/bold]")
        if final.state != "success":
            _print_failures(client, dag_id, run_id, final.tasks)
            return 1
        _print_outputs(client, dag_id, run_id)
        return 0
    except AirflowApiError as exc:
        raise fail(str(exc)) from None
    finally:
        client.close()


def _follow(client: Any, dag_id: str, run_id: str) -> Any:
    """Follow the run: a live table of its steps on a terminal, short lines otherwise
    (:mod:`candela.progress`); ETAs from the earlier runs of each step."""
    from rich.live import Live

    from candela import progress

    durations = client.step_durations(dag_id)
    order = client.task_order(dag_id)
    started = time.monotonic()
    seen: dict[str, dict[str, str]] = {"tasks": {}}

    def view(st: Any) -> Any:
        rows = progress.rows(st.tasks, st.times, durations, order=order)
        return progress.table(st.state, rows, time.monotonic() - started)

    if not console.is_terminal:

        def lines(st: Any) -> None:
            rows = progress.rows(st.tasks, st.times, durations, order=order)
            clock = time.strftime("%H:%M:%S")
            for line in progress.changed_lines(seen["tasks"], st.tasks, rows, clock):
                console.print(line, highlight=False, markup=False)
            seen["tasks"] = dict(st.tasks)

        return client.follow(dag_id, run_id, lines)

    with Live(console=console, auto_refresh=False, transient=False) as live:
        last: list[Any] = []

        def update(st: Any) -> None:
            last[:] = [st]
            live.update(view(st), refresh=True)

        def tick() -> None:  # elapsed times move between changes too
            while not stop.wait(1.0):
                if last:
                    live.update(view(last[0]), refresh=True)

        import threading

        stop = threading.Event()
        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            return client.follow(dag_id, run_id, update)
        finally:
            stop.set()
            ticker.join(timeout=2)


def _print_failures(client: Any, dag_id: str, run_id: str, tasks: dict[str, str]) -> None:
    from candela.airflow_api import AirflowApiError

    bad = [t for t, state in tasks.items() if state == "failed"]
    if bad:
        err.print("failed tasks: " + ", ".join(bad))
    try:
        for ti in client.failed_tasks(dag_id, run_id):
            log = client.task_log(
                dag_id, run_id, ti["task_id"], ti.get("try_number") or 1, ti.get("map_index", -1)
            )
            reason = _error_line(log)
            if reason:
                label = ti["task_id"] + (
                    f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else ""
                )
                err.print(f"  {label}: {reason}", highlight=False)
    except AirflowApiError:
        pass
    logs = get_settings().log_dir / "airflow" / f"dag_id={dag_id}" / f"run_id={run_id}"
    err.print(f"task logs: {logs} (and in the UI)")


def _error_line(log: str) -> str:
    """The most telling line of a failed task's log: the exception message."""
    for line in reversed(log.splitlines()):
        text = line.strip()
        for marker in ("Exception: ", "Error: ", "error: ", "Timeout: "):
            if marker in text:
                return text.split(marker, 1)[1][:300]
    for line in reversed(log.splitlines()):
        if "Task failed with exception" in line or "ERROR" in line:
            return line.strip()[:300]
    return ""


def _print_outputs(client: Any, dag_id: str, run_id: str) -> None:
    summary = client.xcom(dag_id, run_id, "publish")
    if not summary:
        states = client.run_status(dag_id, run_id).tasks
        if states.get("publish") == "skipped":
            console.print("no data: nothing was published (see the skipped tasks' logs for why)")
        return
    from urllib.parse import quote

    console.print(
        f"review page: {client.base_url}/candela/runs/{quote(dag_id, safe='')}/"
        f"{quote(run_id, safe='')}"
    )
    prefix = str(summary.get("prefix") or "").rstrip("/")

    def rel(uri: Any) -> str:  # paths under the run's prefix, short enough for 100 columns
        text = str(uri)
        return text[len(prefix) + 1 :] if prefix and text.startswith(prefix + "/") else text

    if prefix:
        console.print(f"outputs of this run in {prefix}/", soft_wrap=True)
    else:
        console.print(f"outputs (summary: {summary.get('summary')}):")
    if summary.get("same_parameters_as"):
        console.print(
            "  same parameters as run(s) "
            + ", ".join(summary["same_parameters_as"])
            + " (computed again; each run keeps its own outputs)"
        )
    for r in summary.get("results", []):
        outs = r["outputs"]
        console.print(f"  change map:          {rel(outs.get('change_probability'))}")
        console.print(f"  change mask:         {rel(outs.get('change_mask'))}")
        console.print(f"  quicklook:           {rel(outs.get('quicklook'))}")
        console.print(f"  STAC item:           {rel(r['item'])}")
        if outs.get("change_polygons_gpkg"):
            console.print(
                f"  change polygons:     {rel(outs['change_polygons_gpkg'])} (.geojson, .kml)"
            )
        if outs.get("zones_csv") or outs.get("zones"):
            console.print(
                f"  zone statistics:     {rel(outs.get('zones_csv') or outs.get('zones'))}"
            )
        if r.get("changed_area_ha") is not None:
            console.print(
                f"  changed: {r['changed_area_ha']:.1f} ha "
                f"({100 * (r.get('changed_fraction') or 0):.2f} % of valid area), "
                f"model {r.get('model')}, threshold {r.get('threshold')}"
            )
    for lc in summary.get("landcover", []):
        console.print(f"  land cover (S1+S2):  {lc['item']} (model {lc.get('model')})")


@app.command()
def demo(
    port: Annotated[
        int | None, typer.Option(help="port of the Airflow UI / API (loopback; default 8080)")
    ] = None,
    fusion: Annotated[
        bool,
        typer.Option(
            "--fusion",
            help="run the pipeline on the BigEarthNet Sentinel-2 + Sentinel-1 pair instead: "
            "fuse_landcover draws a land-cover map from both sensors",
        ),
    ] = False,
) -> None:
    """Start the platform, register the Bordeaux sample and run the change-detection pipeline
    (``--fusion``: the Sentinel-1 + Sentinel-2 sample and its land-cover map)."""
    from candela import embedded

    s = _settings(port)
    started = time.monotonic()
    try:
        with console.status("starting Candela…") as st:
            s = embedded.up(s, progress=lambda m: st.update(m + "…"))["settings"]
    except embedded.PlatformError as exc:
        raise fail(str(exc)) from None
    _print_login(s)
    sample, conf = (DEMO_FUSION_SAMPLE, DEMO_FUSION_CONF) if fusion else (DEMO_SAMPLE, DEMO_CONF)
    added, updated, skipped, _ = register_products(embedded.platform_dsn(s), [sample])
    console.print(f"sample products registered: {added} added, {updated} already there")
    if not added and not updated:
        raise fail(f"the sample {sample.name} was not recognised: {skipped}")
    _load_demo_context(s)
    code = trigger_and_follow(s, DEMO_DAG, conf, wait=True)
    if code == 0 and not fusion:
        from candela.cli_mine import demo_mining

        code = demo_mining(s, DEMO_DAG)  # the mine_patches run the results started
    if code == 0 and not fusion:
        console.print("ask the knowledge base: candela kb query --question changed-communes")
    console.print(
        f"demo finished in {time.monotonic() - started:.0f} s; the platform keeps "
        "running (stop it with `candela down`)."
    )
    raise typer.Exit(code)


def _load_demo_context(s: Settings) -> None:
    """The context the demo's questions join with (communes of Gironde, Mérignac rainfall), loaded
    before the run so that its load_rdf step relates the change areas to them."""
    from candela import kb
    from candela_sdk.errors import CandelaError

    try:
        for job in kb.context_jobs(settings=s):
            result = kb.load(job)
            console.print(
                f"knowledge base: {result['triples']} triples of {job['source']} in {result['graph']}"
            )
    except (kb.BadParameter, CandelaError) as exc:
        console.print(f"knowledge base: context not loaded: {exc}")


def main() -> None:
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    app()


if __name__ == "__main__":
    main()
