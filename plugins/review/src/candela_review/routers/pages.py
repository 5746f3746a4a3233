"""The pages: the runs with results (``/``), a run's review page and printable report, two runs
compared, and the data a review page loads (``…/zones``, ``…/histogram``: read from what the
pipeline stored with the result, never computed here)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from candela.web_errors import BadRequest, NotFound, WebError
from candela_review import runs as runs_mod
from candela_review import tiles
from candela_review.routers import tiles as tiles_router
from candela_review.web import Context, base_url, errors


def page_data(request: Request, run: runs_mod.Run) -> dict[str, Any]:
    base = base_url(request)
    rb = f"{base}/runs/{quote(run.dag_id, safe='')}/{quote(run.run_id, safe='')}"
    results = []
    for res in run.results:
        item = res.item or {}
        props = item.get("properties", {})
        rid = item.get("id") or str(res.index)
        cog = (
            f"{base}/cog/{quote(run.dag_id, safe='')}/{quote(run.run_id, safe='')}"
            f"/{res.index}/{{layer}}"
        )
        results.append(
            {
                "index": res.index,
                "pair": res.pair,
                "item_id": rid,
                "bbox": res.bbox,
                "start": props.get("start_datetime") or props.get("datetime"),
                "end": props.get("end_datetime") or props.get("datetime"),
                "statistics": res.statistics or {},
                "summary": res.summary,
                "missing": res.missing,
                "software": props.get("processing:software"),
                "model_fit": props.get("candela:model_fit"),
                "parameters": props.get("candela:parameters"),
                "before": res.before,
                "after": res.after,
                # titiler-core tiles of each layer, drawn the Candela way (``tiles``)
                "tiles": tiles.tile_urls(cog, imagery_stretch(run, res.index)),
                "downloads": [
                    {
                        "key": k,
                        "name": v.rstrip("/").rsplit("/", 1)[-1],
                        "href": f"{rb}/download/{quote(rid, safe='')}/{k}",
                        "missing": k in res.missing,
                    }
                    for k, v in res.outputs.items()
                    if k in runs_mod.ASSET_KEYS
                ],
                "zones_url": f"{rb}/zones?result={res.index}",
                # titiler-core endpoints of this result's layers (point values, statistics)
                "cog": cog,
                "outlines": f"{rb}/download/{quote(rid, safe='')}/change_polygons_geojson"
                if "change_polygons_geojson" in res.outputs
                and "change_polygons_geojson" not in res.missing
                else None,
                "footprint": item.get("geometry"),
                "coverage": coverage(run.params, item.get("geometry")),
                "histogram_url": f"{rb}/histogram?result={res.index}",
            }
        )
    return {
        "base": base,
        "run_base": rb,
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "status": run.status,
        "params": run.params,
        "summary": run.summary or {},
        "stacks": [
            {
                "name": s.rstrip("/").rsplit("/", 1)[-1],
                "uri": s,
                "href": f"{rb}/stacks/{i}",
                "quality": f"{rb}/stacks/{i}/quality/index.html",
            }
            for i, s in enumerate(run.stacks())
        ],
        "results": results,
        "landcover": [
            {
                "index": i,
                "id": item.get("id"),
                "datetime": (item.get("properties") or {}).get("datetime")
                or (item.get("properties") or {}).get("start_datetime"),
                "model": (item.get("properties") or {}).get("candela:model"),
                "classes": (item.get("assets") or {})
                .get("landcover", {})
                .get("classification:classes", []),
                "assets": {k: f"{rb}/landcover/{i}/{k}" for k in (item.get("assets") or {})},
            }
            for i, item in enumerate(run.landcover())
        ],
        "airflow": run.airflow.__dict__ if run.airflow else None,
        "legends": tiles.LEGENDS,
        "basemap": basemap(),
        "aoi": aoi_geometry(run.params),
        "ui_url": f"/dags/{quote(run.dag_id, safe='')}/runs/{quote(run.run_id, safe='')}",
    }


def imagery_stretch(
    run: runs_mod.Run, result: int
) -> dict[str, tuple[tuple[int, int, int], list[tuple[float, float]]]] | None:
    """The before/after bands and shared stretch of a result's imagery tiles; None when a stack
    is missing or has no true-colour bands (its tiles then answer why)."""
    try:
        pair = (
            tiles_router.layer_uri(run, result, "before"),
            tiles_router.layer_uri(run, result, "after"),
        )
        return tiles.shared_stretch(pair)
    except WebError:
        return None


def router(ctx: Context, templates: Any) -> APIRouter:
    api = APIRouter(tags=["pages"])

    @api.get("/runs/{dag_id}/{run_id}/zones", responses=errors(404))
    def zones(dag_id: str, run_id: str, result: int = 0) -> dict[str, Any]:
        return runs_mod.zones_for(ctx.published(dag_id, run_id).result(result))

    @api.get("/runs/{dag_id}/{run_id}/histogram", responses=errors(404))
    def histogram(dag_id: str, run_id: str, result: int = 0) -> dict[str, Any]:
        return runs_mod.histogram_for(ctx.published(dag_id, run_id).result(result))

    def _status_page(request: Request, run: runs_mod.Run) -> HTMLResponse:
        reasons: list[str] = []
        if run.airflow:
            client = ctx.airflow()
            try:
                reasons = runs_mod.task_messages(client, run.dag_id, run.run_id, run.airflow)
            finally:
                if client is not None:
                    client.close()
        if run.summary is not None and not run.results:
            reasons.append("the run finished but found nothing to compare (no result published)")
        status = run.status
        if status == "unknown" and (run.airflow is None or run.airflow.state is None):
            code = 404
        else:
            code = 200
        html = templates.get_template("status.html").render(
            d=page_data(request, run), reasons=reasons, status=status, replaced_by=run.replaced_by
        )
        return HTMLResponse(html, status_code=code)

    @api.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, responses=errors(404))
    def review_page(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
        run = ctx.run(dag_id, run_id, fresh=True)
        if run.status != "ok":
            return _status_page(request, run)
        d = page_data(request, run)
        return HTMLResponse(templates.get_template("review.html").render(d=d))

    @api.get("/runs/{dag_id}/{run_id}/report", response_class=HTMLResponse, responses=errors(404))
    def report(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
        run = ctx.run(dag_id, run_id, fresh=True)
        if run.status != "ok":
            return _status_page(request, run)
        d = page_data(request, run)
        zones_tables = []
        for res in run.results:
            try:
                zones_tables.append(runs_mod.zones_for(res))
            except WebError as exc:
                zones_tables.append({"source": str(exc), "zones": []})
        generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        html = templates.get_template("report.html").render(
            d=d, zones=zones_tables, generated=generated
        )
        return HTMLResponse(html)

    @api.get(
        "/runs/{dag_id}/{run_id}/report/{result}/{figure}.png",
        responses={**tiles_router.PNG, **errors(404)},
    )
    def report_figure(dag_id: str, run_id: str, result: int, figure: str) -> Response:
        """A figure of the report: ``location`` (the result's footprint over the requested
        area), ``before`` / ``after`` (the whole pair, with one shared stretch)."""
        run = ctx.published(dag_id, run_id)
        if figure == "location":
            foot = (run.result(result).item or {}).get("geometry")
            if not foot:
                raise NotFound("this result has no footprint")
            data = tiles.location_map(foot, aoi_geometry(run.params))
        elif figure in ("before", "after"):
            pair = (
                tiles_router.layer_uri(run, result, "before"),
                tiles_router.layer_uri(run, result, "after"),
            )
            data = tiles.thumbnail(figure, pair)
        else:
            raise NotFound(f"no figure {figure!r}; figures: location, before, after")
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=300"})

    @api.get("/compare", response_class=HTMLResponse, responses=errors(400, 404))
    def compare(request: Request, a: str, b: str) -> HTMLResponse:
        pages = []
        for ref in (a, b):
            dag_id, sep, run_id = ref.partition("/")
            if not sep or not dag_id or not run_id:
                raise BadRequest(f"{ref!r} is not DAG_ID/RUN_ID")
            run = ctx.run(dag_id, run_id)
            if run.status != "ok":
                raise NotFound(f"run {run_id} of {dag_id} has no published result")
            pages.append(page_data(request, run))
        return HTMLResponse(templates.get_template("compare.html").render(a=pages[0], b=pages[1]))

    @api.get("/", response_class=HTMLResponse)
    def index(request: Request, compare: str | None = None) -> HTMLResponse:
        """The runs with results; ``compare=DAG/RUN`` preselects that run as A (the review
        page's "compare with…")."""
        base = base_url(request)
        items = []
        for r in ctx.catalog().runs():
            w, rid, params = r["workflow"], r["run_id"], r["params"]
            items.append(
                {
                    **r,
                    "dag_id": w,
                    "at": r["published_at"],
                    "ref": f"{w}/{rid}",
                    "href": f"{base}/runs/{quote(w, safe='')}/{quote(rid, safe='')}",
                    "aoi": _aoi_text(params),
                    "filters": _filters_text(params),
                    "same_as": [
                        {
                            "run_id": o,
                            "href": f"{base}/runs/{quote(w, safe='')}/{quote(o, safe='')}",
                        }
                        for o in r["same_parameters_as"]
                    ],
                }
            )
        refs = [i["ref"] for i in items]
        a_ref = compare if compare in refs else (refs[1] if len(refs) > 1 else None)
        b_ref = next((r for r in refs if r != a_ref), None)
        html = templates.get_template("index.html").render(
            base=base, runs=items, a_ref=a_ref, b_ref=b_ref
        )
        return HTMLResponse(html)

    return api


def _aoi_text(params: dict[str, Any]) -> str:
    """The run's area in a few words: its bbox, or the kind of AOI it was given."""
    if params.get("aoi"):
        kind = params["aoi"].get("type", "geometry") if isinstance(params["aoi"], dict) else "AOI"
        return f"{kind} AOI"
    bbox = params.get("bbox")
    if isinstance(bbox, list) and len(bbox) == 4:
        return ", ".join(f"{float(v):.3f}" for v in bbox)
    return params.get("tile") or "–"


def _filters_text(params: dict[str, Any]) -> str:
    """The run's filters besides area and dates (collection, tile, cloud, threshold, zones)."""
    parts = []
    for key in ("collection", "tile", "max_cloud", "threshold", "tile_size_km", "zones"):
        v = params.get(key)
        if v not in (None, "", "auto") or key == "threshold" and v == "auto":
            parts.append(f"{key}={v}")
    return " ".join(parts)


OSM = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"


def basemap() -> dict[str, str] | None:
    """The review map's basemap: an XYZ URL from ``CANDELA_REVIEW_BASEMAP`` (empty: none),
    OpenStreetMap by default. Offline the basemap's tiles fail and the page works without it."""
    import os

    url = os.environ.get("CANDELA_REVIEW_BASEMAP", OSM).strip()
    if not url:
        return None
    attribution = os.environ.get(
        "CANDELA_REVIEW_BASEMAP_ATTRIBUTION",
        "© OpenStreetMap contributors" if url == OSM else "basemap",
    )
    return {"url": url, "attribution": attribution}


def aoi_geometry(params: dict[str, Any]) -> dict[str, Any] | None:
    """The run's requested area (its ``aoi``, or its ``bbox``) as a GeoJSON geometry."""
    from candela_sdk.aoi import aoi_geometry as sdk_aoi

    try:
        return sdk_aoi(params.get("aoi") or None, params.get("bbox") or None)
    except Exception:  # an odd AOI of an old run: the map just does not draw it
        return None


def coverage(params: dict[str, Any], footprint: dict[str, Any] | None) -> float | None:
    """Share of the requested area the result covers (0-1; ``None`` without both)."""

    from shapely.geometry import shape

    aoi = aoi_geometry(params)
    if not aoi or not footprint:
        return None
    try:
        a, f = shape(aoi), shape(footprint)
    except Exception:
        return None
    if a.area <= 0:
        return None
    # a ratio of two lon/lat areas at the same latitudes: no projection needed at city scale
    return round(min(1.0, a.intersection(f).area / a.area), 4)
