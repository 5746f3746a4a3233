"""``candela order``: an order is a list of products plus the workflow to run on them.

``candela order create --products @list.json --workflow s2_change_detection [--conf …]`` records
the order in ``candela.orders``, triggers the run(s) through Airflow's REST API and records them
in ``candela.order_runs``; ``candela order status ID`` asks Airflow for their states, stores them
and prints them (``--wait`` follows them to the end).

``list.json``: a list of product ids of the catalogue, a list of STAC items, a GeoJSON
FeatureCollection (what ``candela-search --format featurecollection`` prints) or
``{"products": [...]}`` of any of these.

How products become runs: ``s2_change_detection`` takes search parameters (collection, tile,
bbox, dates), not a product list, so the products are grouped by (collection, tile) and each
group becomes one run whose parameters cover exactly its products' dates (first to last day)
and their common bbox; the user's ``--conf`` (model, threshold, …) is added to every run. A run
may therefore also see other catalogued products of the same tile within those dates; the
order records which ordered products each run covers.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer

from candela_sdk.errors import CandelaError, InputError
from candela_sdk.jsonarg import read_json_arg

log = logging.getLogger(__name__)

app = typer.Typer(help="Orders: products + the workflow to run on them.", no_args_is_help=True)

FINAL = {"success", "failed"}


# --- products ------------------------------------------------------------------------------


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    from candela_search.ingest import record_from_item

    rec = record_from_item(item)
    return _summary(rec.id, rec.collection, rec.datetime, rec.tile, rec.bbox, rec.href)


def _summary(
    pid: str, collection: str, when: dt.datetime, tile: str | None, bbox: Any, href: str
) -> dict[str, Any]:
    return {
        "id": pid,
        "collection": collection,
        "datetime": when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "tile": tile,
        "bbox": [float(v) for v in bbox],
        "href": href,
    }


def load_products(spec: Any, dsn: str | None) -> list[dict[str, Any]]:
    """The ordered products, each ``{"id", "collection", "datetime", "tile", "bbox", "href"}``.

    ``spec`` is parsed JSON (see the module docstring). Ids are looked up in the catalogue.
    """
    from candela_search.ingest import Refused

    if isinstance(spec, dict) and spec.get("type") == "FeatureCollection":
        entries = spec.get("features") or []
    elif isinstance(spec, dict) and "products" in spec:
        entries = spec["products"]
    elif isinstance(spec, list):
        entries = spec
    else:
        raise InputError(
            "--products must be a list of product ids, a list of STAC items or a FeatureCollection"
        )
    if not entries:
        raise InputError("--products lists no product")
    ids = [e for e in entries if isinstance(e, str)]
    items = [e for e in entries if isinstance(e, dict) and e.get("type") == "Feature"]
    named = [
        e["id"]
        for e in entries
        if isinstance(e, dict) and e.get("type") != "Feature" and isinstance(e.get("id"), str)
    ]
    ids += named
    if len(ids) + len(items) != len(entries):
        raise InputError("--products: every entry must be a product id or a STAC item")
    out: list[dict[str, Any]] = []
    for item in items:
        try:
            out.append(_from_item(item))
        except Refused as exc:
            # an item that does not say where its product lives: the catalogue may know
            if dsn is not None and isinstance(item.get("id"), str):
                ids.append(item["id"])
                continue
            raise InputError(f"--products: {exc}") from None
    if ids:
        if dsn is None:
            raise InputError("product ids need the platform's catalogue: start it (`candela up`)")
        from candela.db.products import summary_rows

        rows = summary_rows(dsn, ids)
        found = {r[0]: r for r in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise InputError(
                f"not in the catalogue: {', '.join(missing[:5])}"
                + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                + " (register them with `candela catalog add`)"
            )
        for i in dict.fromkeys(ids):
            r = found[i]
            out.append(_summary(r[0], r[1], r[2], r[3], r[4:8], r[8]))
    seen: set[str] = set()
    unique = [p for p in out if not (p["id"] in seen or seen.add(p["id"]))]  # type: ignore[func-returns-value]
    return sorted(unique, key=lambda p: (p["datetime"], p["id"]))


def plan_runs(
    products: list[dict[str, Any]], conf: dict[str, Any], workflow: str = "s2_change_detection"
) -> list[tuple[list[str], dict[str, Any]]]:
    """One run per (collection, tile): ``[(product ids, run conf), …]``, each built through the
    workflow's typed run configuration (:class:`InputError` naming the field if it refuses)."""
    from candela.workflows import BadRunConf, validate_conf

    groups: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
    for p in products:
        groups.setdefault((p["collection"], p["tile"]), []).append(p)
    runs = []
    for (collection, tile), ps in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        days = sorted(p["datetime"][:10] for p in ps)
        w = max(p["bbox"][0] for p in ps)
        s = max(p["bbox"][1] for p in ps)
        e = min(p["bbox"][2] for p in ps)
        n = min(p["bbox"][3] for p in ps)
        if w >= e or s >= n:  # no common area: the union instead
            w, s = min(p["bbox"][0] for p in ps), min(p["bbox"][1] for p in ps)
            e, n = max(p["bbox"][2] for p in ps), max(p["bbox"][3] for p in ps)
        run_conf: dict[str, Any] = {
            "collection": collection,
            "bbox": [round(w, 6), round(s, 6), round(e, 6), round(n, 6)],
            "start": days[0],
            "end": days[-1],
        }
        if tile:
            run_conf["tile"] = tile
        run_conf.update(conf)
        try:
            typed = validate_conf(workflow, run_conf)
        except BadRunConf as exc:
            raise InputError(str(exc)) from None
        if typed is not None:
            run_conf = typed.conf()
        runs.append(([p["id"] for p in ps], run_conf))
    return runs


# --- the order table -------------------------------------------------------------------------


def order_status(dsn: str, oid: str) -> dict[str, Any]:
    from candela.db.orders import get_order

    order = get_order(dsn, oid)
    if order is None:
        raise InputError(f"no order {oid}")
    return order


def overall(states: list[str]) -> str:
    if not states:
        return "created"
    if all(s == "success" for s in states):
        return "success"
    if not all(s in FINAL for s in states):
        return "running"
    return "failed" if all(s == "failed" for s in states) else "partial"


def refresh(dsn: str, client: Any, oid: str) -> dict[str, Any]:
    """Ask Airflow for the state of each run of the order; store and return the order."""
    from candela.db.orders import set_run_states

    order = order_status(dsn, oid)
    states = []
    changed: dict[str, str] = {}
    for run in order["runs"]:
        state = run["state"]
        if state not in FINAL:
            state = str(client.get_run(order["workflow"], run["run_id"]).get("state"))
            changed[run["run_id"]] = state
        run["state"] = state
        states.append(state)
    if order["runs"]:
        order["status"] = overall(states)
    set_run_states(dsn, oid, changed, order["status"] if order["runs"] else None)
    return order


def create(
    dsn: str,
    client: Any,
    user: str,
    workflow: str,
    products: list[dict[str, Any]],
    conf: dict[str, Any],
) -> str:
    """Record the order and trigger its runs; a refused trigger fails the order (recorded)."""
    from candela.airflow_api import AirflowApiError
    from candela.db.orders import record_order, record_run, set_status

    dag = client.get_dag(workflow)
    if dag is None:
        known = ", ".join(sorted(client.list_dags())) or "none"
        raise InputError(f"unknown workflow {workflow!r}; known: {known}")
    runs = plan_runs(products, conf, workflow)
    oid = record_order(dsn, user, workflow, products, conf)
    if dag.get("is_paused"):
        client.unpause(workflow)
    for ids, run_conf in runs:
        try:
            run = client.trigger(workflow, run_conf)
        except AirflowApiError as exc:
            set_status(dsn, oid, "failed", str(exc))
            raise InputError(f"order {oid}: {exc}") from None
        record_run(dsn, oid, run["dag_run_id"], ids, run_conf)
        log.info("order %s: run %s for %d product(s)", oid, run["dag_run_id"], len(ids))
    return oid


def follow(
    dsn: str,
    client: Any,
    oid: str,
    on_change: Callable[[dict[str, Any]], None],
    poll: float = 2.0,
    timeout: float = 3600,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = None
    while True:
        order = refresh(dsn, client, oid)
        key = [r["state"] for r in order["runs"]]
        if key != last:
            on_change(order)
            last = key
        if order["status"] in ("success", "failed", "partial"):
            return order
        if time.monotonic() > deadline:
            return order
        time.sleep(poll)


# --- commands ------------------------------------------------------------------------------


def _print(order: dict[str, Any]) -> None:
    typer.echo(
        f"order {order['id']} ({order['workflow']}, {len(order['products'])} product(s)): "
        f"{order['status']}" + (f" - {order['message']}" if order.get("message") else "")
    )
    for run in order["runs"]:
        typer.echo(f"  run {run['run_id']}: {run['state']} ({', '.join(run['products'])})")


def _context() -> tuple[str, Any]:
    from candela.cli import _client, _settings, platform_dsn

    s = _settings()
    return platform_dsn(s), _client(s)


@app.command("create")
def create_cmd(
    products: Annotated[str, typer.Option(help="@list.json or inline JSON (ids or STAC items)")],
    workflow: Annotated[str, typer.Option(help="the workflow (DAG id) to run")],
    conf: Annotated[str | None, typer.Option(help="extra run parameters: JSON or @file")] = None,
    user: Annotated[str | None, typer.Option(help="who orders (default $CANDELA_USER)")] = None,
    wait: Annotated[bool, typer.Option(help="follow the runs until they end")] = False,
) -> None:
    """Record an order and trigger its run(s)."""
    from candela.airflow_api import AirflowApiError
    from candela.cli import fail_on
    from candela.users import current_user

    try:
        extra = read_json_arg(conf, "--conf", obj=True) if conf else {}
        spec = read_json_arg(products, "--products")
        dsn, client = _context()
        try:
            plist = load_products(spec, dsn)
            oid = create(dsn, client, current_user(user), workflow, plist, extra)
            order = refresh(dsn, client, oid)
            _print(order)
            if wait:
                order = follow(dsn, client, oid, _print)
        finally:
            client.close()
    except (CandelaError, AirflowApiError) as exc:
        raise fail_on(exc) from None
    raise typer.Exit(0 if order["status"] in ("success", "running", "created") else 1)


@app.command("status")
def status_cmd(
    order_id: Annotated[str, typer.Argument(help="the order id (ord-…)")],
    wait: Annotated[bool, typer.Option(help="follow the runs until they end")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show an order and the state of its runs."""
    from candela.airflow_api import AirflowApiError
    from candela.cli import fail_on

    try:
        dsn, client = _context()
        try:
            order = (
                follow(dsn, client, order_id, _print) if wait else refresh(dsn, client, order_id)
            )
        finally:
            client.close()
    except (CandelaError, AirflowApiError) as exc:
        raise fail_on(exc) from None
    if as_json:
        typer.echo(json.dumps(order, indent=2, default=str))
    elif not wait:
        _print(order)
    raise typer.Exit(1 if order["status"] in ("failed", "partial") else 0)
