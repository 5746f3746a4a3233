"""``/legend/…`` (the legends of the review map's layers) and ``layer_uri``, the COG each layer
of a result is drawn from (its tiles: titiler-core's, ``routers/cog``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from candela.web_errors import NotFound
from candela_review import runs as runs_mod
from candela_review import tiles
from candela_review.web import Context, errors

PNG: dict[int | str, dict[str, Any]] = {
    200: {"description": "a PNG image", "content": {"image/png": {}}}
}


def layer_uri(run: runs_mod.Run, result: int, layer: str) -> str:
    """The COG a layer of a result is drawn from (only URIs recorded with the run)."""
    res = run.result(result)
    if layer == "probability":
        key = "change_probability"
    elif layer == "mask":
        key = "change_mask"
    elif layer in ("before", "after"):
        uri = res.before if layer == "before" else res.after
        if not uri or uri not in run.stacks():
            raise NotFound(f"the {layer} stack of this result is not recorded")
        if not runs_mod._exists(uri):
            raise NotFound(f"the {layer} stack is missing from storage: {uri}")
        return uri
    else:
        raise NotFound(f"unknown layer {layer!r}; layers: {', '.join(tiles.LAYERS)}")
    if key in res.missing or key not in res.outputs:
        raise NotFound(f"output {key} of this result is missing from storage")
    return res.outputs[key]


def router(ctx: Context) -> APIRouter:
    api = APIRouter(tags=["legends"])

    @api.get("/legend/{layer}.png", responses={**PNG, **errors(404)})
    def legend_png(layer: str) -> Response:
        if layer not in tiles.LEGENDS:
            raise NotFound(f"unknown layer {layer!r}")
        return Response(tiles.legend_png(layer), media_type="image/png")

    @api.get("/legend/{layer}", responses=errors(404))
    def legend(layer: str) -> dict[str, Any]:
        if layer not in tiles.LEGENDS:
            raise NotFound(f"unknown layer {layer!r}; layers: {', '.join(tiles.LEGENDS)}")
        return tiles.LEGENDS[layer]

    return api
