"""The review app (FastAPI), mounted by the Airflow plugin at ``/candela`` in the api-server.

Routes (all behind Airflow's own authentication: ``Authorization: Bearer <JWT>`` or the UI's
``_token`` cookie, validated by Airflow's auth manager):

- ``/stac/…``: read-only STAC API of results (``stac_api``)
- ``/tiles/{dag_id}/{run_id}/{result}/{layer}/{z}/{x}/{y}.png``: XYZ tiles (``tiles``)
- ``/legend/{layer}`` (JSON) and ``/legend/{layer}.png``
- ``/runs/{dag_id}/{run_id}``: review page; ``…/report``: printable report;
  ``…/download/{item_id}/{asset}``, ``…/stacks/{n}``, ``…/run.json``: downloads;
  ``…/zones``, ``…/histogram``: data of the page
- ``/compare?a={dag_id}/{run_id}&b={dag_id}/{run_id}``: two runs side by side
- ``/``: the runs with published results
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import mimetypes
import time
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from candela.settings import Settings
from candela_review import runs as runs_mod
from candela_review import stac_api, tiles
from candela_review.runs import ReviewError

if TYPE_CHECKING:
    from candela.airflow_api import AirflowClient

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PREFIX = "/candela"
RUN_CACHE_S = 5.0


def airflow_user_dependency() -> Callable[..., Any]:
    """Airflow's own ``get_user`` dependency (bearer token or ``_token`` cookie)."""
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def review_url(base_url: str, dag_id: str, run_id: str) -> str:
    """The review page of a run, e.g. for ``candela run`` to print."""
    return f"{base_url.rstrip('/')}{PREFIX}/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


# the JWT of the request being served: the review app asks Airflow's REST API as its caller
_CALLER_TOKEN: ContextVar[str | None] = ContextVar("candela_review_caller_token", default=None)


async def _remember_caller(request: Request) -> None:
    """Dependency of every route (async, so the value reaches the route's worker thread)."""
    from candela.airflow_api import caller_token

    try:
        _CALLER_TOKEN.set(caller_token(request) or None)
    except ImportError:  # no Airflow here (the app runs standalone)
        _CALLER_TOKEN.set(None)


class Context:
    """What the routes need: settings, the results DSN (resolved lazily: the embedded database
    may start after the api-server imported the plugin), an Airflow client as the caller."""

    def __init__(self, settings: Settings | None = None, dsn: str | None = None) -> None:
        self._settings = settings
        self._dsn = dsn
        self._runs: dict[tuple[str, str], tuple[float, runs_mod.Run]] = {}

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings()
        return self._settings

    @property
    def dsn(self) -> str:
        if self._dsn:
            return self._dsn
        from candela import embedded

        try:
            return embedded.platform_dsn(self.settings)
        except embedded.PlatformError as exc:
            raise ReviewError(str(exc), 503) from None

    @property
    def dsn_or_none(self) -> str | None:
        try:
            return self.dsn
        except ReviewError:
            return None

    def airflow(self) -> AirflowClient | None:
        """A client of Airflow's REST API with the caller's token (``None`` without one)."""
        from candela.airflow_api import AirflowClient, api_server_url

        token = _CALLER_TOKEN.get()
        if not token:
            return None
        try:
            url = api_server_url(self.settings.airflow_url)
        except ImportError:
            return None
        return AirflowClient(url, token=token, timeout=10)

    def catalog(self) -> stac_api.ResultsCatalog:
        return stac_api.ResultsCatalog(self.dsn)

    def run(self, dag_id: str, run_id: str, fresh: bool = False) -> runs_mod.Run:
        """The run (cached a few seconds: a map asks for dozens of tiles at once)."""
        key = (dag_id, run_id)
        now = time.monotonic()
        hit = self._runs.get(key)
        if hit and not fresh and now - hit[0] < RUN_CACHE_S:
            return hit[1]
        client = self.airflow()
        try:
            run = runs_mod.load_run(self.settings, dag_id, run_id, self.dsn_or_none, client)
        finally:
            if client is not None:
                client.close()
        if len(self._runs) > 256:
            self._runs.clear()
        self._runs[key] = (now, run)
        return run


def _base(request: Request) -> str:
    root = request.scope.get("root_path", "")
    return f"{request.url.scheme}://{request.url.netloc}{root}".rstrip("/")


def _templates() -> Any:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
    )
    env.filters["tojson_safe"] = _script_json
    env.filters["num"] = _num
    return env


def _script_json(v: Any) -> Any:
    """JSON safe to embed in a <script> element (and shown as text in <pre>)."""
    from markupsafe import Markup

    text = json.dumps(v, default=str, indent=None)
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(a, b)
    return Markup(text)


def _num(v: Any, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def create_app(
    settings: Settings | None = None,
    dsn: str | None = None,
    auth: Callable[..., Any] | None = None,
) -> FastAPI:
    ctx = Context(settings, dsn)
    user_dep = auth or airflow_user_dependency()
    app = FastAPI(
        title="Candela review",
        description="Results catalogue (STAC API), map tiles, review pages and reports.",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = _templates()

    @app.exception_handler(ReviewError)
    async def _review_error(request: Request, exc: ReviewError) -> Response:
        if _wants_html(request):
            html = templates.get_template("error.html").render(
                base=_base(request), message=str(exc), status=exc.status
            )
            return HTMLResponse(html, status_code=exc.status)
        return JSONResponse({"code": exc.status, "description": str(exc)}, status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 and _wants_html(request):
            return RedirectResponse(f"/auth/login/?next={quote(str(request.url), safe='')}")
        return JSONResponse({"code": exc.status_code, "description": exc.detail}, exc.status_code)

    api = APIRouter(dependencies=[Depends(user_dep), Depends(_remember_caller)])

    # --- STAC API -------------------------------------------------------------------------

    @api.get("/stac", include_in_schema=False)
    @api.get("/stac/")
    def stac_landing(request: Request) -> JSONResponse:
        cols = ctx.catalog().collections()
        return JSONResponse(stac_api.StacRenderer(_base(request)).landing(cols))

    @api.get("/stac/conformance")
    def stac_conformance() -> dict[str, Any]:
        return {"conformsTo": stac_api.CONFORMANCE}

    @api.get("/stac/collections")
    def stac_collections(request: Request) -> dict[str, Any]:
        r = stac_api.StacRenderer(_base(request))
        cols = [r.collection(c) for c in ctx.catalog().collections()]
        return {
            "collections": cols,
            "links": [
                {"rel": "self", "href": f"{r.stac}/collections", "type": "application/json"},
                {"rel": "root", "href": f"{r.stac}/", "type": "application/json"},
            ],
        }

    def _collection(cid: str) -> dict[str, Any]:
        for c in ctx.catalog().collections():
            if c["id"] == cid:
                return c
        raise ReviewError(f"no collection {cid!r}", 404)

    @api.get("/stac/collections/{cid}")
    def stac_collection(request: Request, cid: str) -> dict[str, Any]:
        return stac_api.StacRenderer(_base(request)).collection(_collection(cid))

    def _geojson(doc: dict[str, Any]) -> JSONResponse:
        return JSONResponse(doc, media_type=stac_api.GEOJSON)

    @api.get("/stac/collections/{cid}/items")
    def stac_items(request: Request, cid: str) -> JSONResponse:
        _collection(cid)
        params = dict(request.query_params)
        q = stac_api.parse_query({k: v for k, v in params.items()})
        q.collections = [cid]
        rows, total = ctx.catalog().search(q)
        r = stac_api.StacRenderer(_base(request))
        url = f"{r.stac}/collections/{quote(cid, safe='')}/items"
        return _geojson(r.item_collection(rows, total, q, url, params))

    @api.get("/stac/collections/{cid}/items/{item_id}")
    def stac_item(request: Request, cid: str, item_id: str) -> JSONResponse:
        q = stac_api.Query(collections=[cid], ids=[item_id], limit=1)
        rows, _ = ctx.catalog().search(q)
        if not rows:
            raise ReviewError(f"no item {item_id!r} in collection {cid!r}", 404)
        w, run_id, item = rows[0]
        return _geojson(stac_api.StacRenderer(_base(request)).item(w, run_id, item))

    @api.get("/stac/search")
    def stac_search_get(request: Request) -> JSONResponse:
        params = dict(request.query_params)
        q = stac_api.parse_query(params)
        rows, total = ctx.catalog().search(q)
        r = stac_api.StacRenderer(_base(request))
        return _geojson(r.item_collection(rows, total, q, f"{r.stac}/search", params))

    @api.post("/stac/search")
    async def stac_search_post(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ReviewError("the search body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ReviewError("the search body must be a JSON object")
        q = stac_api.parse_query(body)
        from starlette.concurrency import run_in_threadpool

        rows, total = await run_in_threadpool(ctx.catalog().search, q)
        r = stac_api.StacRenderer(_base(request))
        return _geojson(r.item_collection(rows, total, q, f"{r.stac}/search", body, "POST"))

    # --- tiles and legends ----------------------------------------------------------------

    def _layer_uri(run: runs_mod.Run, result: int, layer: str) -> str:
        res = run.result(result)
        if layer == "probability":
            key = "change_probability"
        elif layer == "mask":
            key = "change_mask"
        elif layer in ("before", "after"):
            uri = res.before if layer == "before" else res.after
            if not uri or uri not in run.stacks():
                raise ReviewError(f"the {layer} stack of this result is not recorded", 404)
            if not runs_mod._exists(uri):
                raise ReviewError(f"the {layer} stack is missing from storage: {uri}", 404)
            return uri
        else:
            raise ReviewError(f"unknown layer {layer!r}; layers: {', '.join(tiles.LAYERS)}", 404)
        if key in res.missing or key not in res.outputs:
            raise ReviewError(f"output {key} of this result is missing from storage", 404)
        return res.outputs[key]

    @api.get("/tiles/{dag_id}/{run_id}/{result}/{layer}/{z}/{x}/{y}.png")
    def tile(dag_id: str, run_id: str, result: int, layer: str, z: int, x: int, y: int) -> Response:
        tiles.check_tile(z, x, y)
        run = _published(dag_id, run_id)
        data = tiles.render_tile(_layer_uri(run, result, layer), layer, z, x, y)
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=300"})

    @api.get("/legend/{layer}.png")
    def legend_png(layer: str) -> Response:
        if layer not in tiles.LEGENDS:
            raise ReviewError(f"unknown layer {layer!r}", 404)
        return Response(tiles.legend_png(layer), media_type="image/png")

    @api.get("/legend/{layer}")
    def legend(layer: str) -> dict[str, Any]:
        if layer not in tiles.LEGENDS:
            raise ReviewError(f"unknown layer {layer!r}; layers: {', '.join(tiles.LEGENDS)}", 404)
        return tiles.LEGENDS[layer]

    # --- runs: data, downloads --------------------------------------------------------------

    def _published(dag_id: str, run_id: str) -> runs_mod.Run:
        run = ctx.run(dag_id, run_id)
        if run.summary is None:
            raise ReviewError(f"run {run_id} of {dag_id} has no published outputs", 404)
        return run

    @api.get("/runs/{dag_id}/{run_id}/zones")
    def zones(dag_id: str, run_id: str, result: int = 0) -> dict[str, Any]:
        return runs_mod.zones_for(_published(dag_id, run_id).result(result))

    @api.get("/runs/{dag_id}/{run_id}/histogram")
    def histogram(dag_id: str, run_id: str, result: int = 0) -> dict[str, Any]:
        res = _published(dag_id, run_id).result(result)
        if "change_probability" in res.missing:
            raise ReviewError("the change probability of this result is missing", 404)
        return runs_mod.histogram(res.outputs["change_probability"])

    def _file(uri: str, filename: str) -> Response:
        from candela_sdk import storage
        from candela_sdk.errors import InputError

        try:
            data = storage.read_bytes(uri)
        except InputError:
            raise ReviewError(f"{filename} is missing from storage", 404) from None
        media = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if filename.endswith(".tif"):
            media = "image/tiff; application=geotiff; profile=cloud-optimized"
        disposition = (
            "inline" if media.startswith(("image/png", "application/json")) else "attachment"
        )
        return Response(
            data,
            media_type=media,
            headers={"Content-Disposition": f'{disposition}; filename="{filename}"'},
        )

    @api.get("/runs/{dag_id}/{run_id}/run.json")
    def download_summary(dag_id: str, run_id: str) -> Response:
        run = _published(dag_id, run_id)
        return _file(f"{run.prefix}/run.json", "run.json")

    @api.get("/runs/{dag_id}/{run_id}/download/{item_id}/{asset}")
    def download(dag_id: str, run_id: str, item_id: str, asset: str) -> Response:
        run = _published(dag_id, run_id)
        for res in run.results:
            if (res.item or {}).get("id") == item_id or str(res.index) == item_id:
                if asset not in runs_mod.ASSET_KEYS or asset not in res.outputs:
                    raise ReviewError(
                        f"no asset {asset!r}; assets: {', '.join(sorted(res.outputs))}", 404
                    )
                uri = res.outputs[asset]
                return _file(uri, uri.rstrip("/").rsplit("/", 1)[-1])
        raise ReviewError(f"no result {item_id!r} in run {run_id}", 404)

    @api.get("/runs/{dag_id}/{run_id}/stacks/{n}")
    def download_stack(dag_id: str, run_id: str, n: int) -> Response:
        stacks = _published(dag_id, run_id).stacks()
        if not 0 <= n < len(stacks):
            raise ReviewError(f"run {run_id} has {len(stacks)} stack(s); no stack {n}", 404)
        return _file(stacks[n], stacks[n].rstrip("/").rsplit("/", 1)[-1])

    # --- pages ------------------------------------------------------------------------------

    def _page_data(request: Request, run: runs_mod.Run) -> dict[str, Any]:
        base = _base(request)
        rb = f"{base}/runs/{quote(run.dag_id, safe='')}/{quote(run.run_id, safe='')}"
        results = []
        for res in run.results:
            item = res.item or {}
            props = item.get("properties", {})
            rid = item.get("id") or str(res.index)
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
                    "tiles": f"{base}/tiles/{quote(run.dag_id, safe='')}/"
                    f"{quote(run.run_id, safe='')}/{res.index}/{{layer}}/{{z}}/{{x}}/{{y}}.png",
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
                {"name": s.rstrip("/").rsplit("/", 1)[-1], "uri": s, "href": f"{rb}/stacks/{i}"}
                for i, s in enumerate(run.stacks())
            ],
            "results": results,
            "airflow": run.airflow.__dict__ if run.airflow else None,
            "legends": tiles.LEGENDS,
            "ui_url": f"/dags/{quote(run.dag_id, safe='')}/runs/{quote(run.run_id, safe='')}",
        }

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
            d=_page_data(request, run), reasons=reasons, status=status
        )
        return HTMLResponse(html, status_code=code)

    @api.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse)
    def review_page(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
        run = ctx.run(dag_id, run_id, fresh=True)
        if run.status != "ok":
            return _status_page(request, run)
        d = _page_data(request, run)
        return HTMLResponse(templates.get_template("review.html").render(d=d))

    @api.get("/runs/{dag_id}/{run_id}/report", response_class=HTMLResponse)
    def report(request: Request, dag_id: str, run_id: str) -> HTMLResponse:
        run = ctx.run(dag_id, run_id, fresh=True)
        if run.status != "ok":
            return _status_page(request, run)
        d = _page_data(request, run)
        zones_tables = []
        for res in run.results:
            try:
                zones_tables.append(runs_mod.zones_for(res))
            except ReviewError as exc:
                zones_tables.append({"source": str(exc), "zones": []})
        generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        html = templates.get_template("report.html").render(
            d=d, zones=zones_tables, generated=generated
        )
        return HTMLResponse(html)

    @api.get("/compare", response_class=HTMLResponse)
    def compare(request: Request, a: str, b: str) -> HTMLResponse:
        pages = []
        for ref in (a, b):
            dag_id, sep, run_id = ref.partition("/")
            if not sep or not dag_id or not run_id:
                raise ReviewError(f"{ref!r} is not DAG_ID/RUN_ID")
            run = ctx.run(dag_id, run_id)
            if run.status != "ok":
                raise ReviewError(f"run {run_id} of {dag_id} has no published result", 404)
            pages.append(_page_data(request, run))
        return HTMLResponse(templates.get_template("compare.html").render(a=pages[0], b=pages[1]))

    @api.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        base = _base(request)
        items = [
            {
                "dag_id": w,
                "run_id": r,
                "at": t,
                "ref": f"{w}/{r}",
                "href": f"{base}/runs/{quote(w, safe='')}/{quote(r, safe='')}",
            }
            for w, r, t in ctx.catalog().run_ids()
        ]
        return HTMLResponse(templates.get_template("index.html").render(base=base, runs=items))

    app.include_router(api)
    return app


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")
