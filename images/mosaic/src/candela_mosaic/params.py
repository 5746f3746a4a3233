"""Parameters of the ``mosaic`` service (pydantic only)."""

from __future__ import annotations

from pydantic import Field, field_validator

from candela_sdk.contract import ServiceParams


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
