"""The mosaic service declaration (light imports only)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from candela_sdk.contract import Resources, Service, ServiceParams


class MosaicParams(ServiceParams):
    inputs: list[str] = Field(
        description="URIs of the tile COGs of one product (same CRS, pixel size, bands, grid)",
        min_length=1,
    )
    output: str = Field(
        description="URI of the merged COG (.tif); with a single input equal to it, nothing is "
        "rewritten"
    )
    block_size: int = Field(1024, ge=64, le=8192, description="rows/cols per written block")

    @field_validator("output")
    @classmethod
    def _tif(cls, v: str) -> str:
        if not v.lower().endswith((".tif", ".tiff")):
            raise ValueError(f"the output must be a .tif file: {v}")
        return v


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
    resources=Resources(cpu="1", memory="2Gi"),
)
