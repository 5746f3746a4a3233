"""``/runs/{dag_id}/{run_id}/…`` downloads: ``run.json``, a result's assets, the input stacks.
Only files recorded with the run are served: no path is joined from the request."""

from __future__ import annotations

import mimetypes
import re

from fastapi import APIRouter
from fastapi.responses import Response

from candela.web_errors import NotFound
from candela_review import runs as runs_mod
from candela_review.web import Context, errors


def file_response(uri: str, filename: str) -> Response:
    from candela_sdk import storage
    from candela_sdk.errors import InputError

    try:
        data = storage.read_bytes(uri)
    except InputError:
        raise NotFound(f"{filename} is missing from storage") from None
    media = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if filename.endswith(".tif"):
        media = "image/tiff; application=geotiff; profile=cloud-optimized"
    disposition = "inline" if media.startswith(("image/png", "application/json")) else "attachment"
    return Response(
        data,
        media_type=media,
        headers={"Content-Disposition": f'{disposition}; filename="{filename}"'},
    )


def router(ctx: Context) -> APIRouter:
    api = APIRouter(prefix="/runs/{dag_id}/{run_id}", tags=["downloads"], responses=errors(404))

    @api.get("/run.json")
    def download_summary(dag_id: str, run_id: str) -> Response:
        run = ctx.published(dag_id, run_id)
        return file_response(f"{run.prefix}/run.json", "run.json")

    @api.get("/download/{item_id}/{asset}")
    def download(dag_id: str, run_id: str, item_id: str, asset: str) -> Response:
        run = ctx.published(dag_id, run_id)
        for res in run.results:
            if (res.item or {}).get("id") == item_id or str(res.index) == item_id:
                if asset not in runs_mod.ASSET_KEYS or asset not in res.outputs:
                    raise NotFound(f"no asset {asset!r}; assets: {', '.join(sorted(res.outputs))}")
                uri = res.outputs[asset]
                return file_response(uri, uri.rstrip("/").rsplit("/", 1)[-1])
        raise NotFound(f"no result {item_id!r} in run {run_id}")

    @api.get("/landcover/{n}/{asset}")
    def download_landcover(dag_id: str, run_id: str, n: int, asset: str) -> Response:
        maps = ctx.published(dag_id, run_id).landcover()
        if not 0 <= n < len(maps):
            raise NotFound(f"run {run_id} has {len(maps)} land-cover map(s); no map {n}")
        assets = maps[n].get("assets") or {}
        if asset not in assets:
            raise NotFound(f"no asset {asset!r}; assets: {', '.join(sorted(assets))}")
        uri = str(assets[asset]["href"])
        return file_response(uri, uri.rstrip("/").rsplit("/", 1)[-1])

    @api.get("/stacks/{n}")
    def download_stack(dag_id: str, run_id: str, n: int) -> Response:
        stacks = ctx.published(dag_id, run_id).stacks()
        if not 0 <= n < len(stacks):
            raise NotFound(f"run {run_id} has {len(stacks)} stack(s); no stack {n}")
        return file_response(stacks[n], stacks[n].rstrip("/").rsplit("/", 1)[-1])

    @api.get("/stacks/{n}/quality/{page:path}")
    def stack_quality(dag_id: str, run_id: str, n: int, page: str) -> Response:
        """The stack's quality-gate report (``<stem>_quality/``, beside the stack, as its STAC
        item links it): ``index.html`` and the files it links, inside that folder only."""
        stacks = ctx.published(dag_id, run_id).stacks()
        if not 0 <= n < len(stacks):
            raise NotFound(f"run {run_id} has {len(stacks)} stack(s); no stack {n}")
        page = page or "index.html"
        parts = page.split("/")
        if any(not SAFE_PART.match(x) or x in (".", "..") for x in parts):
            raise NotFound(f"no page {page!r} in the quality report")
        folder = stacks[n].rsplit(".", 1)[0] + "_quality"
        resp = file_response(f"{folder}/{page}", parts[-1])
        if page.endswith(".html"):
            resp.headers["Content-Disposition"] = f'inline; filename="{parts[-1]}"'
            resp.media_type = "text/html"
        return resp

    return api


SAFE_PART = re.compile(r"^[A-Za-z0-9_.-]+$")
