"""What the review pages know about a run: its outputs (``run.json`` + the files it lists) and,
when it has none, what Airflow says happened (failed, skipped for "no data", still running).

Only URIs recorded in ``run.json`` (and the statistics it points to) are ever opened, so a
request cannot name an arbitrary file: there is no path joined from user input.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from candela.settings import Settings
from candela.web_errors import NotFound, WebError, error_for_status
from candela_sdk.storage import version_stamp

if TYPE_CHECKING:
    from candela.airflow_api import AirflowClient

log = logging.getLogger(__name__)

ASSET_KEYS = (
    "change_probability",
    "change_mask",
    "quicklook",
    "statistics",
    "item",
    "zones_geojson",
    "zones_csv",
    "change_polygons_gpkg",
    "change_polygons_geojson",
    "change_polygons_kml",
)


def ReviewError(message: str, status: int = 400) -> WebError:
    """Deprecated: raise the kind of failure from :mod:`candela.web_errors` instead."""
    return error_for_status(status)(message)


@dataclass
class Result:
    index: int
    pair: str
    outputs: dict[str, str]
    summary: dict[str, Any]
    statistics: dict[str, Any] | None
    item: dict[str, Any] | None
    missing: list[str] = field(default_factory=list)

    @property
    def before(self) -> str | None:
        return (self.statistics or {}).get("inputs", {}).get("before")

    @property
    def after(self) -> str | None:
        return (self.statistics or {}).get("inputs", {}).get("after")

    @property
    def bbox(self) -> list[float] | None:
        return (self.item or {}).get("bbox")


@dataclass
class AirflowState:
    state: str | None
    tasks: list[dict[str, Any]]
    conf: dict[str, Any] | None = None
    start: str | None = None
    end: str | None = None
    xcom: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    dag_id: str
    run_id: str
    prefix: str
    summary: dict[str, Any] | None
    results: list[Result]
    airflow: AirflowState | None
    # the run.json found at the prefix was another run's (a prefix shared before each run kept
    # its own): its outputs are never shown as this run's
    replaced_by: str | None = None

    @property
    def status(self) -> str:
        """ok | no-data | failed | running | replaced | unknown."""
        if self.replaced_by is not None:
            return "replaced"
        if self.summary is not None:
            return "ok" if self.results or self.landcover() else "no-data"
        st = self.airflow.state if self.airflow else None
        if st in ("queued", "running"):
            return "running"
        if st == "failed":
            return "failed"
        if st == "success":
            return "no-data"
        return "unknown"

    @property
    def params(self) -> dict[str, Any]:
        if self.summary:
            return dict(self.summary.get("params") or {})
        return dict((self.airflow.conf if self.airflow else None) or {})

    def result(self, index: int) -> Result:
        if not 0 <= index < len(self.results):
            raise NotFound(
                f"run {self.run_id} has {len(self.results)} result(s); no result {index}"
            )
        return self.results[index]

    def stacks(self) -> list[str]:
        return list((self.summary or {}).get("stacks") or [])

    def landcover(self) -> list[dict[str, Any]]:
        """The land-cover maps of the run (``fuse_landcover``): their STAC items as recorded."""
        out = []
        for entry in (self.summary or {}).get("landcover") or []:
            item = _read_json(entry["item"]) if entry.get("item") else None
            if item is not None:
                out.append(item)
        return out


def _read_json(uri: str) -> dict[str, Any] | None:
    from candela_sdk import storage
    from candela_sdk.errors import InputError

    try:
        value = json.loads(storage.read_text(uri))
    except (InputError, json.JSONDecodeError) as exc:
        log.warning("cannot read %s: %s", uri, exc)
        return None
    return value if isinstance(value, dict) else None


def _exists(uri: str) -> bool:
    from candela_sdk import storage

    try:
        return storage.exists(uri)
    except Exception:
        return False


def load_run(
    settings: Settings,
    dag_id: str,
    run_id: str,
    dsn: str | None = None,
    airflow: AirflowClient | None = None,
) -> Run:
    state = airflow_state(dag_id, run_id, airflow)
    prefix, summary_uri = locate(settings, dag_id, run_id, dsn, state)
    summary = _read_json(summary_uri) if summary_uri else None
    if summary is not None and summary.get("run_id") not in (None, run_id):
        log.info(
            "outputs at %s were published by run %s, not %s", prefix, summary["run_id"], run_id
        )
        return Run(dag_id, run_id, prefix or "", None, [], state, str(summary["run_id"]))
    results: list[Result] = []
    for i, r in enumerate((summary or {}).get("results") or []):
        outputs = {k: v for k, v in (r.get("outputs") or {}).items() if isinstance(v, str)}
        if r.get("item"):
            outputs.setdefault("item", r["item"])
        pair = outputs.get("change_probability", "").rstrip("/").rsplit("/", 2)[-2:-1]
        stats = _read_json(outputs["statistics"]) if outputs.get("statistics") else None
        item = _read_json(outputs["item"]) if outputs.get("item") else None
        missing = [k for k, v in outputs.items() if k in ASSET_KEYS and not _exists(v)]
        results.append(Result(i, pair[0] if pair else str(i), outputs, r, stats, item, missing))
    return Run(dag_id, run_id, prefix or "", summary, results, state)


def locate(
    settings: Settings,
    dag_id: str,
    run_id: str,
    dsn: str | None,
    state: AirflowState | None,
) -> tuple[str | None, str | None]:
    """The run's output prefix and the URI of its ``run.json``, from (in order) what its tasks
    returned (Airflow XCom: ``plan_run`` → prefix, ``publish`` → summary), the results table
    (asset hrefs of its published items), or the per-run layout ``runs/<dag>/<run>``."""
    if state is not None and state.xcom:
        plan = state.xcom.get("plan_run") or {}
        pub = state.xcom.get("publish") or {}
        prefix = plan.get("prefix") if isinstance(plan, dict) else None
        summary = pub.get("summary") if isinstance(pub, dict) else None
        if summary or prefix:
            return prefix, summary or f"{prefix}/run.json"
    if dsn:
        prefix = _prefix_from_results(dsn, dag_id, run_id)
        if prefix:
            return prefix, f"{prefix}/run.json"
    from candela import pipeline

    legacy = getattr(pipeline, "run_prefix", None)
    if legacy is not None:
        prefix = legacy(settings, dag_id, run_id)
        uri = f"{prefix}/run.json"
        if _exists(uri):
            return prefix, uri
    return None, None


def _prefix_from_results(dsn: str, dag_id: str, run_id: str) -> str | None:
    import psycopg

    from candela.db.results import first_item

    try:
        item = first_item(dsn, dag_id, run_id)
    except psycopg.Error as exc:
        log.warning("results table not readable: %s", exc)
        return None
    if not item:
        return None
    assets = item.get("assets") or {}
    href = (assets.get("change_probability") or {}).get("href")
    # <prefix>/changes/<pair>/change_probability.tif
    if href and "/changes/" in href:
        return str(href).rsplit("/changes/", 1)[0]
    href = (assets.get("landcover") or {}).get("href")
    # <prefix>/landcover/<product>/landcover.tif (a run with land cover only)
    if href and "/landcover/" in href:
        return str(href).rsplit("/landcover/", 1)[0]
    return None


def airflow_state(dag_id: str, run_id: str, client: AirflowClient | None) -> AirflowState | None:
    """The run's state from Airflow's REST API (as the caller of the page); ``None`` when Airflow
    cannot be asked (no client: the app runs standalone; or Airflow does not answer)."""
    from candela.airflow_api import AirflowApiError, xcom_value

    if client is None:
        return None
    try:
        run = client.run(dag_id, run_id)
        if run is None:
            return AirflowState(state=None, tasks=[])
        tis = client.task_instances(dag_id, run_id)
        xcom: dict[str, Any] = {}
        names = {ti.get("task_id") for ti in tis}
        for task_id in ("plan_run", "publish"):
            if task_id in names:
                value = client.xcom(dag_id, run_id, task_id)
                if value is not None:
                    xcom[task_id] = xcom_value(value)
    except AirflowApiError as exc:
        log.info("Airflow's state of %s/%s not available: %s", dag_id, run_id, exc)
        return None
    # the tasks in DAG order (upstream first), alphabetically if Airflow does not say
    rank = {t: n for n, t in enumerate(client.task_order(dag_id))}
    tasks = [
        {
            "task_id": ti["task_id"],
            "map_index": ti.get("map_index", -1),
            "state": str(ti["state"]) if ti.get("state") else None,
            "try": ti.get("try_number"),
        }
        for ti in tis
    ]
    return AirflowState(
        xcom=xcom,
        state=str(run["state"]) if run.get("state") else None,
        tasks=sorted(
            tasks, key=lambda t: (rank.get(t["task_id"], len(rank)), t["task_id"], t["map_index"])
        ),
        conf=dict(run.get("conf") or {}),
        start=run.get("start_date"),
        end=run.get("end_date"),
    )


_NO_DATA = re.compile(r"no data: (.+)")


def task_messages(
    client: AirflowClient | None, dag_id: str, run_id: str, state: AirflowState
) -> list[str]:
    """Why tasks were skipped ("no data: …") or failed, from their logs (Airflow's REST API,
    the try each task is at)."""
    from candela.airflow_api import AirflowApiError

    out: list[str] = []
    if client is None:
        return out
    for t in state.tasks:
        if t["state"] not in ("skipped", "failed", "upstream_failed") or not t.get("try"):
            continue
        map_index = t["map_index"] if t["map_index"] is not None else -1
        try:
            entries = client.task_log_entries(dag_id, run_id, t["task_id"], t["try"], map_index)
        except AirflowApiError as exc:
            log.info("no log of %s in %s/%s: %s", t["task_id"], dag_id, run_id, exc)
            continue
        msg = _reason(entries, t["state"])
        if msg:
            out.append(f"{t['task_id']}: {msg}")
    return out


def _reason(entries: list[Any], state: str) -> str | None:
    found: str | None = None
    for entry in entries:
        rec: Any = entry
        if isinstance(entry, str):
            try:
                rec = json.loads(entry)
            except json.JSONDecodeError:
                rec = entry
        text = rec if isinstance(rec, str) else ""
        if isinstance(rec, dict):
            text = str(rec.get("event") or "")
            if state == "failed" and rec.get("level") in ("error", "critical") and text:
                found = found or text
        m = _NO_DATA.search(text)
        if m:
            found = "no data: " + m.group(1).strip()
        elif state == "failed" and text.startswith("error:"):
            found = text
    return found


def zones_for(result: Result) -> dict[str, Any]:
    """The per-zone table the pipeline stored with a result (``zones.geojson``: the zones given to
    the run, or the 1 km grid cells), geometries in WGS 84; none, with a note, for a result
    stored without one. Nothing is counted here."""
    uri = result.outputs.get("zones_geojson")
    if not uri:
        return {"source": NO_STORED_ZONES, "zones": []}
    if "zones_geojson" in result.missing:
        raise NotFound("the zone statistics of this result are missing from storage")
    source = (result.statistics or {}).get("zones_source") or "zones given to the run"
    return _stored_zones(uri, source, version_stamp(uri))


NO_STORED_ZONES = (
    "no zone statistics were stored with this result (it predates them): run it again to get them"
)


def histogram_for(result: Result) -> dict[str, Any]:
    """The histogram of change probability the pipeline stored in the result's statistics."""
    if "change_probability" in result.missing:
        raise NotFound("the change probability of this result is missing")
    hist = (result.statistics or {}).get("histogram")
    if not isinstance(hist, dict) or not hist.get("counts"):
        raise NotFound("no histogram was stored with this result (it predates them)")
    return hist


@lru_cache(maxsize=64)
def _stored_zones(uri: str, source: str, stamp: float) -> dict[str, Any]:
    from rasterio.warp import transform_geom

    from candela_sdk.errors import CandelaError
    from candela_sdk.zones import read_zones

    try:
        features, crs = read_zones(uri)
    except (CandelaError, OSError):
        raise NotFound("the zone statistics of this result are not readable") from None
    rows: list[dict[str, Any]] = []
    for i, f in enumerate(features):
        p = f.get("properties") or {}
        geom = f.get("geometry")
        g84 = transform_geom(crs, "EPSG:4326", geom) if geom and crs != "EPSG:4326" else geom
        pts = [c for ring in _rings(g84) for c in ring]
        rows.append(
            {
                "id": str(f.get("id", p.get("zone_id", i))),
                "name": str(p.get("name") or p.get("nom") or p.get("label") or ""),
                "valid_area_ha": p.get("change_valid_area_ha"),
                "changed_area_ha": p.get("change_changed_area_ha"),
                "changed_fraction": p.get("change_changed_fraction"),
                "geometry": g84,
                "bbox": [
                    min(c[0] for c in pts),
                    min(c[1] for c in pts),
                    max(c[0] for c in pts),
                    max(c[1] for c in pts),
                ]
                if pts
                else None,
            }
        )
    # only the zones the result covers (results stored before the service kept only those)
    covered = [r for r in rows if (r["valid_area_ha"] or 0) > 0]
    covered.sort(key=lambda r: -(r["changed_area_ha"] or 0.0))
    out: dict[str, Any] = {"source": source, "zones": covered}
    if len(covered) < len(rows):
        out["outside"] = len(rows) - len(covered)
    return out


def _rings(geom: dict[str, Any] | None) -> list[list[Any]]:
    if not geom:
        return []
    t = geom.get("type")
    if t == "Polygon":
        return list(geom["coordinates"])
    if t == "MultiPolygon":
        return [ring for poly in geom["coordinates"] for ring in poly]
    if t == "GeometryCollection":
        return [r for g in geom.get("geometries", []) for r in _rings(g)]
    return []
