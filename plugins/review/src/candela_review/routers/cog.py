"""``/cog/{dag_id}/{run_id}/{result}/{layer}/…``: titiler-core's COG endpoints on a result's
layers (``probability``, ``mask``, ``before``, ``after``): TileJSON, OGC API - Tiles tilesets,
tiles (the review map's own: Candela's colormaps ``candela_probability`` / ``candela_mask`` and
the ``candela_threshold`` algorithm registered, see ``tiles``), WMTS capabilities (``WMTSCapabilities.xml``, titiler-extensions' ``wmtsExtension``),
point values (the review page's pixel inspector), statistics of a GeoJSON area (POST
``/statistics``), info and bounds. The dataset is named by its place in a published run, never
by a path or URL: titiler's ``path_dependency`` resolves it to a URI recorded with the run."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from fastapi import APIRouter, Request

from candela_review import tiles
from candela_review.routers.tiles import layer_uri
from candela_review.web import Context, errors

PREFIX = "/cog/{dag_id}/{run_id}/{result}/{layer}"


def router(ctx: Context) -> APIRouter:
    from titiler.core.factory import TilerFactory
    from titiler.extensions import wmtsExtension

    from candela_sdk import storage

    def dataset(dag_id: str, run_id: str, result: int, layer: str) -> str:
        """The GDAL path of a layer of a published run's result (404 for anything else)."""
        return storage.gdal_path(layer_uri(ctx.published(dag_id, run_id), result, layer))

    class Factory(TilerFactory):  # type: ignore[misc]
        def url_for(self, request: Request, name: str, **path_params: Any) -> str:
            """titiler's URL under the app's mount (``/candela``: Starlette keeps it in
            ``root_path``, which ``request.base_url`` leaves out here)."""
            url = str(super().url_for(request, name, **path_params))
            root = request.scope.get("root_path", "").rstrip("/")
            base = str(request.base_url).rstrip("/")
            if root and not base.endswith(root) and url.startswith(base + "/"):
                url = base + root + url[len(base) :]
            return url

    factory = Factory(
        path_dependency=dataset,
        router_prefix=PREFIX,
        add_viewer=False,
        add_preview=False,
        add_part=False,
        add_ogc_maps=False,
        colormap_dependency=tiles.colormap_dependency,
        process_dependency=tiles.process_dependency,
        # WMTS layers named after the file (change_probability…), not its storage path
        extensions=[wmtsExtension(layer_identifier_provider=lambda p: PurePosixPath(str(p)).stem)],
    )
    api = APIRouter()
    # rio-tiler's errors as titiler answers them (outside the raster, bad band…), no such run
    api.include_router(
        factory.router, prefix=PREFIX, tags=["titiler (COG)"], responses=errors(400, 404)
    )
    return api
