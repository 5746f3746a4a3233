"""Start a run from the map (``/new``): an analyst draws or uploads the area, picks the two
dates among the products catalogued over it, the model, the zones, and submits.

- ``GET /new``: the page (labels and help are the titles and descriptions of
  :class:`candela.workflows.ChangeDetectionConf`, the one home of the workflow's parameters);
- ``GET /new/products?bbox=W,S,E,N[&collection=…]``: the catalogued products over an area
  (:mod:`candela.db.products`), for the date picker;
- ``POST /new/aoi?name=…`` (the file as the body): an area uploaded as GeoJSON or GeoPackage,
  read (:func:`candela_sdk.zones.load_zones`), brought to WGS 84 and merged into one geometry
  (:func:`candela_sdk.aoi.parse_geojson`, the rule the run applies); answers that geometry, which
  the run's ``aoi`` then carries (nothing is stored);
- ``POST /new/zones?name=…`` (the file as the body): a zones GeoJSON or GeoPackage, checked
  (:func:`candela_sdk.zones.load_zones`) and stored under ``<storage root>/run-inputs/zones/``;
  answers its URI, which the run's ``zones`` then names;
- ``POST /new`` (the run's conf as JSON): validated by the workflow's model first (a refusal
  names the field: 400 with ``fields``), then triggered through Airflow's REST API **with the
  caller's token** (:class:`candela.airflow_api.AirflowClient`), so Airflow's permissions and the
  platform's run guard (duplicates: 409, quotas: 429) apply; answers the run and the page where
  it can be followed.

Nothing of the change-detection service is imported: the model names come from
:mod:`candela_sdk.registry` and the registry records (:mod:`candela.db.models`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

import candela
from candela.web_errors import BadRequest
from candela.workflows import ChangeDetectionConf, describe_error, param_schemas
from candela_review.web import Context, base_url, errors

DAG_ID = "s2_change_detection"
# the zone files shipped with the platform (data/context: communes, …; see data/README.md), found
# beside the platform's package as `candela demo` finds them
CONTEXT_DIR = Path(candela.__file__).resolve().parents[2] / "data" / "context"
ZONE_SUFFIXES = (".geojson", ".json", ".gpkg")
MAX_UPLOAD = 50 * 1024 * 1024


def uploads_folder(ctx: Context) -> str:
    """Where uploaded zone files go: ``<storage root>/run-inputs/zones`` (content-addressed)."""
    from candela.run_inputs import zones_folder

    return zones_folder(ctx.settings)


def known_zones(ctx: Context) -> list[dict[str, str]]:
    """The zone files a run may name: those shipped with the platform, then the uploaded ones."""
    from candela_sdk import storage
    from candela_sdk.errors import InputError

    out = []
    if CONTEXT_DIR.is_dir():
        for p in sorted(CONTEXT_DIR.rglob("*")):
            if p.is_file() and p.suffix.lower() in ZONE_SUFFIXES:
                label = p.stem.replace("-", " ").replace("_", " ")
                out.append({"value": str(p), "label": f"{label} ({p.parent.name})"})
    folder = uploads_folder(ctx)
    try:
        names = storage.list_names(folder)
    except InputError:
        names = []
    for n in sorted(names):
        if n.lower().endswith(ZONE_SUFFIXES):
            label = n.split("-", 1)[-1] if re.match(r"^[0-9a-f]{16}-", n) else n
            out.append({"value": storage.parse(folder).join(n).uri, "label": f"{label} (uploaded)"})
    return out


def known_models(ctx: Context) -> list[dict[str, str]]:
    """Built-in and plug-in models, then the registered ones, each with one line about it."""
    from candela_sdk.registry import (
        BUILTIN_DESCRIPTIONS,
        builtin_names,
        registered_names,
        registry_root,
    )

    out = [
        {"name": n, "kind": "built in", "description": BUILTIN_DESCRIPTIONS.get(n, "plug-in model")}
        for n in builtin_names()
    ]
    seen = {m["name"] for m in out}
    described: dict[str, str] = {}
    dsn = ctx.dsn_or_none
    if dsn:
        try:
            from candela.db.models import list_models

            described = {r["name"]: r["description"] or "" for r in list_models(dsn)}
        except Exception:  # no models table yet: the registry folder still answers
            described = {}
    try:
        registered = registered_names(registry_root(ctx.settings.storage))
    except Exception:
        registered = []
    for n in sorted({*registered, *described}):
        if n not in seen:
            text = described.get(n) or "registered encoder"
            out.append({"name": n, "kind": "registered", "description": text})
    return out


def form_fields() -> dict[str, dict[str, Any]]:
    """Per field: its label, help and default, from the workflow's model."""
    schemas = param_schemas(ChangeDetectionConf)
    return {
        name: {
            "title": schemas[name].get("title") or name,
            "description": schemas[name].get("description") or "",
            "default": schemas[name].get("default"),
            "enum": schemas[name].get("enum"),
        }
        for name in schemas
    }


def field_errors(exc: Any) -> dict[str, str]:
    """``{field: reason}`` of a pydantic ValidationError."""
    out: dict[str, str] = {}
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "(conf)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown parameter"
        out.setdefault(field, msg)
    return out


def area_of_file(data: bytes, name: str) -> dict[str, Any]:
    """``{geometry, bbox, features}`` of an uploaded area (GeoJSON or GeoPackage, any CRS the
    file declares): its features merged into one WGS 84 geometry; :class:`BadRequest` naming the
    file otherwise."""
    from candela_sdk.aoi import geometry_dict, parse_geojson
    from candela_sdk.errors import InputError
    from candela_sdk.zones import load_zones

    try:
        features, crs = load_zones(data, name)
        features = [f for f in features if f.get("geometry")]
        if not features:
            raise InputError("has no geometry")
        if crs.upper() not in ("EPSG:4326", "OGC:CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84"):
            features = _to_wgs84(features, crs)
        geom = parse_geojson({"type": "FeatureCollection", "features": features})
    except InputError as exc:  # (the reader's words are about zones: this file is an area)
        why = str(exc).replace("zones file", "the file").replace("zones GeoPackage", "the file")
        raise BadRequest(f"{name}: {why}") from None
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise BadRequest(f"{name}: the area must be a polygon, not a {geom.geom_type}")
    return {"geometry": geometry_dict(geom), "bbox": list(geom.bounds), "features": len(features)}


def _to_wgs84(features: list[dict[str, Any]], crs: str) -> list[dict[str, Any]]:
    from rasterio.errors import CRSError
    from rasterio.warp import transform_geom

    from candela_sdk.errors import InputError

    try:
        return [
            {**f, "geometry": transform_geom(crs, "EPSG:4326", f["geometry"])} for f in features
        ]
    except CRSError:
        raise InputError(f"has an unknown coordinate reference system {crs!r}") from None


_REFUSED = errors(
    400, 401, 403, 409, 429, 502,
    e400="a bad parameter: ``{code, description, fields: {field: reason}}``",
    e401="no Airflow login (a run is started with the caller's token)",
    e409="an identical run is in progress (the run guard names it)",
    e502="Airflow did not answer",
)  # fmt: skip


def router(ctx: Context, templates: Any) -> APIRouter:
    api = APIRouter(tags=["new run"])

    @api.get("/new", response_class=HTMLResponse)
    def new_run_page(request: Request) -> HTMLResponse:
        """The form: a map to draw the area on, dates, model, zones."""
        from candela_review.routers.pages import basemap

        d = {
            "base": base_url(request),
            "dag_id": DAG_ID,
            "fields": form_fields(),
            "models": known_models(ctx),
            "zones": known_zones(ctx),
            "basemap": basemap(),
        }
        return HTMLResponse(templates.get_template("newrun.html").render(d=d))

    @api.get("/new/products", responses=errors(400))
    def products_over(bbox: str, collection: str | None = None) -> dict[str, Any]:
        """The catalogued products over ``bbox`` (W,S,E,N), oldest first, for the date picker."""
        from candela.db import products
        from candela_sdk.aoi import check_bbox, parse_bbox
        from candela_sdk.errors import InputError

        try:
            area = check_bbox(parse_bbox(bbox))
        except (InputError, ValueError) as exc:
            raise BadRequest(f"bbox: {exc}") from None
        rows = products.over_area(ctx.dsn, area, collection or None)
        return {
            "bbox": area,
            "products": [
                {
                    "id": pid,
                    "collection": coll,
                    "datetime": when.isoformat() if when else None,
                    "date": when.date().isoformat() if when else None,
                    "tile": tile,
                    "cloud_cover": cloud,
                    "footprint": [w, s, e, n],
                }
                for pid, coll, when, tile, cloud, w, s, e, n in rows
            ],
        }

    @api.post("/new/aoi", responses=errors(400))
    async def upload_aoi(request: Request, name: str) -> dict[str, Any]:
        """The area of a GeoJSON or GeoPackage file (the request body) as one WGS 84 geometry."""
        data = await request.body()
        if not data:
            raise BadRequest("the area file is empty")
        if len(data) > MAX_UPLOAD:
            raise BadRequest(f"the area file is larger than {MAX_UPLOAD // 2**20} MiB")
        return await run_in_threadpool(area_of_file, data, name)

    @api.post("/new/zones", responses=errors(400))
    async def upload_zones(request: Request, name: str) -> dict[str, Any]:
        """Store a zones file (GeoJSON or GeoPackage, the request body) for a run to name."""
        from candela.run_inputs import store_zones
        from candela_sdk.errors import InputError
        from candela_sdk.zones import load_zones

        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name).strip("._") or "zones"
        if not safe.lower().endswith(ZONE_SUFFIXES):
            raise BadRequest(f"{name!r}: zones must be a .geojson or .gpkg file")
        data = await request.body()
        if not data:
            raise BadRequest("the zones file is empty")
        if len(data) > MAX_UPLOAD:
            raise BadRequest(f"the zones file is larger than {MAX_UPLOAD // 2**20} MiB")

        def check_and_store() -> dict[str, Any]:  # (off the event loop: parsing, storage)
            try:
                features, _crs = load_zones(data, safe)
            except InputError as exc:
                raise BadRequest(f"{name}: {exc}") from None
            if not features:
                raise BadRequest(f"{name}: no zone in the file")
            uri = store_zones(ctx.settings, data, safe)  # content-addressed: same URI, same key
            return {"uri": uri, "name": safe, "features": len(features)}

        return await run_in_threadpool(check_and_store)

    @api.post("/new", status_code=201, responses=_REFUSED)
    def submit(request: Request, conf: dict[str, Any] = Body(...)) -> JSONResponse:
        """Validate the conf, then trigger the run through Airflow's REST API as the caller."""
        from pydantic import ValidationError

        from candela.airflow_api import AirflowApiError

        conf = {k: v for k, v in conf.items() if v != ""}  # (an empty input: not given)
        try:
            typed = ChangeDetectionConf.model_validate(conf)
        except ValidationError as exc:
            return JSONResponse(
                {
                    "code": 400,
                    "description": f"bad parameters: {describe_error(exc)}",
                    "fields": field_errors(exc),
                },
                status_code=400,
            )
        client = ctx.airflow()
        if client is None:
            return JSONResponse(
                {"code": 401, "description": "starting a run needs your Airflow login"}, 401
            )
        try:
            run = client.trigger(DAG_ID, typed.conf())
        except AirflowApiError as exc:
            status = exc.status if exc.status and 400 <= exc.status < 600 else 502
            return JSONResponse(
                {"code": status, "description": exc.detail or str(exc)}, status_code=status
            )
        finally:
            client.close()
        run_id = run["dag_run_id"]
        href = f"{base_url(request)}/runs/{quote(DAG_ID, safe='')}/{quote(run_id, safe='')}"
        return JSONResponse(
            {"dag_id": DAG_ID, "run_id": run_id, "href": href},
            status_code=201,
        )

    return api
