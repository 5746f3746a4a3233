"""``/stac/…``: the read-only STAC API of results (documents built by ``stac_api``)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from candela.web_errors import BadRequest, NotFound
from candela_review import stac_api
from candela_review.web import Context, base_url, errors


def router(ctx: Context) -> APIRouter:
    api = APIRouter(prefix="/stac", tags=["STAC API"])

    @api.get("", include_in_schema=False)
    @api.get("/")
    def stac_landing(request: Request) -> JSONResponse:
        cols = ctx.catalog().collections()
        return JSONResponse(stac_api.StacRenderer(base_url(request)).landing(cols))

    @api.get("/conformance")
    def stac_conformance() -> dict[str, Any]:
        return {"conformsTo": stac_api.CONFORMANCE}

    @api.get("/collections")
    def stac_collections(request: Request) -> dict[str, Any]:
        r = stac_api.StacRenderer(base_url(request))
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
        raise NotFound(f"no collection {cid!r}")

    @api.get("/collections/{cid}", responses=errors(404, e404="no such collection"))
    def stac_collection(request: Request, cid: str) -> dict[str, Any]:
        return stac_api.StacRenderer(base_url(request)).collection(_collection(cid))

    def _geojson(doc: dict[str, Any]) -> JSONResponse:
        return JSONResponse(doc, media_type=stac_api.GEOJSON)

    @api.get("/collections/{cid}/items", responses=errors(400, 404))
    def stac_items(request: Request, cid: str) -> JSONResponse:
        _collection(cid)
        params = dict(request.query_params)
        q = stac_api.parse_query({k: v for k, v in params.items()})
        q.collections = [cid]
        rows, total = ctx.catalog().search(q)
        r = stac_api.StacRenderer(base_url(request))
        url = f"{r.stac}/collections/{quote(cid, safe='')}/items"
        return _geojson(r.item_collection(rows, total, q, url, params))

    @api.get("/collections/{cid}/items/{item_id}", responses=errors(404))
    def stac_item(request: Request, cid: str, item_id: str) -> JSONResponse:
        q = stac_api.Query(collections=[cid], ids=[item_id], limit=1)
        rows, _ = ctx.catalog().search(q)
        if not rows:
            raise NotFound(f"no item {item_id!r} in collection {cid!r}")
        w, run_id, item = rows[0]
        return _geojson(stac_api.StacRenderer(base_url(request)).item(w, run_id, item))

    @api.get("/search", responses=errors(400))
    def stac_search_get(request: Request) -> JSONResponse:
        params = dict(request.query_params)
        q = stac_api.parse_query(params)
        rows, total = ctx.catalog().search(q)
        r = stac_api.StacRenderer(base_url(request))
        return _geojson(r.item_collection(rows, total, q, f"{r.stac}/search", params))

    @api.post("/search", responses=errors(400))
    async def stac_search_post(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("the search body is not valid JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the search body must be a JSON object")
        q = stac_api.parse_query(body, body=True)
        from starlette.concurrency import run_in_threadpool

        rows, total = await run_in_threadpool(ctx.catalog().search, q)
        r = stac_api.StacRenderer(base_url(request))
        return _geojson(r.item_collection(rows, total, q, f"{r.stac}/search", body, "POST"))

    return api
