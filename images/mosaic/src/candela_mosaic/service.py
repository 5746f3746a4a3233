"""The mosaic service declaration (light imports only); parameters in :mod:`candela_mosaic.params`."""

from __future__ import annotations

from typing import Any

from candela_mosaic.params import MosaicParams
from candela_sdk.contract import Resources, Service


def _run(params: MosaicParams) -> dict[str, Any]:
    from candela_mosaic.core import run

    return run(params)


SERVICE = Service(
    name="mosaic",
    summary="Merge grid-aligned tiles of one product into one Cloud-Optimized GeoTIFF",
    description=(
        "A large area is preprocessed as several tiles in parallel; this step merges the tiles "
        "of each product (all cropped from the same 10 m grid, so they align on whole pixels) "
        "into one COG, block by block, with the band names, nodata and a STAC item."
    ),
    params=MosaicParams,
    run=_run,
    command="candela-mosaic",
    image="candela-mosaic",
    # an uncompressed stage, its overviews and the COG: about 2.5 times the pieces
    resources=Resources(cpu="1", memory="2Gi", scratch_per_input=2.5),
    inputs=("inputs",),
)
