"""The review app (FastAPI), mounted by the Airflow plugin at ``/candela`` in the api-server.

Routes (all behind Airflow's own authentication: ``Authorization: Bearer <JWT>`` or the UI's
``_token`` cookie, validated by Airflow's auth manager), one router each (``routers/``):

- ``stac``: ``/stac/…``, read-only STAC API of results (documents from ``stac_api``)
- ``cog``: ``/cog/{dag_id}/{run_id}/{result}/{layer}/…``: titiler-core on a result's layers
  (map tiles drawn the Candela way by ``tiles``' colormaps and algorithm, TileJSON, WMTS,
  point values, statistics)
- ``tiles``: ``/legend/{layer}`` (JSON) and ``/legend/{layer}.png``
- ``downloads``: ``/runs/{dag_id}/{run_id}/download/{item_id}/{asset}``, ``…/stacks/{n}``,
  ``…/run.json``
- ``ops``: ``/metrics`` (Prometheus), ``/usage`` and ``/scaling`` (JSON or pages)
- ``pages``: ``/runs/{dag_id}/{run_id}``: review page; ``…/report``: printable report;
  ``…/zones``, ``…/histogram``: data of the page, as the pipeline stored them;
  ``/compare?a={dag_id}/{run_id}&b={dag_id}/{run_id}``: two runs side by side;
  ``/``: the runs with published results
- ``newrun``: ``/new``: start a run from a map (area, dates of catalogued products, model,
  zones), triggered through Airflow's REST API as the caller
- ``knowledge``: ``/sparql``: read-only SPARQL 1.1 Protocol endpoint of the knowledge base;
  ``/questions``, ``/questions/{name}``: ready-made questions (table + map) and YASGUI
- ``mining``: ``/mine``: EO image mining, the labelling page (active learning of a category)
  and its JSON API (``/mine/patches``, ``/mine/sessions/…``)
- ``mining_sql``: ``POST /mine/sql``: the data-mining SQL mode (read-only, timeout, row cap)

Errors: the :mod:`candela.web_errors` family, its status from the one table shared with the OGC
app; answered as ``{"code", "description"}`` JSON, or as a page to a browser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from candela.settings import Settings
from candela.web_errors import WebError
from candela_review.routers import (
    cog,
    downloads,
    knowledge,
    mining_sql,
    newrun,
    ops,
    pages,
    stac,
    tiles,
)
from candela_review.web import (
    HERE,
    Context,
    base_url,
    errors,
    remember_caller,
    templates,
    wants_html,
)

PREFIX = "/candela"
OPENAPI_MEDIA = "application/vnd.oai.openapi+json;version=3.1"  # FastAPI writes OpenAPI 3.1

__all__ = ["PREFIX", "Context", "create_app", "review_url"]


def airflow_user_dependency() -> Callable[..., Any]:
    """Airflow's own ``get_user`` dependency (bearer token or ``_token`` cookie)."""
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def review_url(base_url: str, dag_id: str, run_id: str) -> str:
    """The review page of a run, e.g. for ``candela run`` to print."""
    return f"{base_url.rstrip('/')}{PREFIX}/runs/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


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
        docs_url=None,  # Swagger UI loads from a CDN (blank offline): a page of our own below
        redoc_url=None,
        openapi_url=None,  # served below: JSON, or the OpenAPI media type when asked for
    )

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document(request: Request) -> JSONResponse:
        """The OpenAPI document, as ``application/vnd.oai.openapi+json;version=3.1`` to a client
        that asks for it (the STAC landing page's ``service-desc`` link), else as JSON."""
        accept = request.headers.get("accept", "")
        media = OPENAPI_MEDIA if OPENAPI_MEDIA.split(";")[0] in accept else "application/json"
        return JSONResponse(app.openapi(), media_type=media)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        """The API's operations from its OpenAPI document, as plain HTML (works offline)."""
        import html

        base = base_url(request)
        rows = "".join(
            f"<tr><td><code>{m.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
            f"<td>{html.escape(op.get('summary') or '')}</td></tr>"
            for path, ops in app.openapi().get("paths", {}).items()
            for m, op in ops.items()
            if isinstance(op, dict)
        )
        return HTMLResponse(
            "<!doctype html><meta charset=utf-8><title>Candela review API</title>"
            f'<link rel="stylesheet" href="{base}/static/review.css"><main>'
            f'<h1>Candela review API</h1><p>OpenAPI document: <a href="{base}/openapi.json">'
            f"openapi.json</a></p><table><tr><th>method</th><th>path</th><th>what</th></tr>"
            f"{rows}</table></main>"
        )

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    env = templates()

    @app.exception_handler(WebError)
    async def _web_error(request: Request, exc: WebError) -> Response:
        if wants_html(request):
            html = env.get_template("error.html").render(
                base=base_url(request), message=str(exc), status=exc.status
            )
            return HTMLResponse(html, status_code=exc.status)
        return JSONResponse({"code": exc.status, "description": str(exc)}, status_code=exc.status)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 401 and wants_html(request):
            return RedirectResponse(f"/auth/login/?next={quote(str(request.url), safe='')}")
        return JSONResponse({"code": exc.status_code, "description": exc.detail}, exc.status_code)

    auth_required = [Depends(user_dep), Depends(remember_caller)]
    common = errors(401, 503)  # every route: Airflow's login; the database or Airflow down
    app.include_router(stac.router(ctx), dependencies=auth_required, responses=common)
    app.include_router(tiles.router(ctx), dependencies=auth_required, responses=common)
    app.include_router(cog.router(ctx), dependencies=auth_required, responses=common)
    from rio_tiler.errors import PointOutsideBounds
    from titiler.core.errors import DEFAULT_STATUS_CODES, add_exception_handlers

    # rio-tiler's errors as titiler answers them (4xx: outside, bad band…); others stay ours
    codes = {k: v for k, v in DEFAULT_STATUS_CODES.items() if k is not Exception}
    add_exception_handlers(app, {**codes, PointOutsideBounds: 404})
    app.include_router(downloads.router(ctx), dependencies=auth_required, responses=common)
    app.include_router(pages.router(ctx, env), dependencies=auth_required, responses=common)
    app.include_router(knowledge.router(ctx, env), dependencies=auth_required, responses=common)
    app.include_router(ops.router(ctx, env), dependencies=auth_required, responses=common)
    app.include_router(newrun.router(ctx, env), dependencies=auth_required, responses=common)
    from candela_review.routers import mining

    app.include_router(
        mining.router(ctx, env, user_dep), dependencies=auth_required, responses=common
    )
    app.include_router(mining_sql.router(ctx), dependencies=auth_required, responses=common)
    return app
