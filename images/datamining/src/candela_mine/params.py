"""Parameters of the ``datamining`` service (pydantic only: the platform imports this module)."""

from __future__ import annotations

from pydantic import Field, model_validator

from candela_sdk.contract import ServiceParams


class MineParams(ServiceParams):
    """Parameters of ``candela-mine`` (the ``mine_patches`` DAG's ``mine`` step)."""

    stack: str = Field(
        description="URI of the Sentinel-2 stack (preprocess/mosaic COG: bands B02…B12 as band "
        "descriptions, nodata 0, reflectance scales/offsets)"
    )
    radar: str | None = Field(
        None,
        description="URI of the Sentinel-1 backscatter (VV/VH GeoTIFF, dB or linear, or a "
        "BigEarthNet S1 folder), resampled onto the stack's grid; adds the radar features",
    )
    size: int = Field(64, ge=8, le=2048, description="patch size (pixels)")
    stride: int | None = Field(
        None, ge=1, le=2048, description="step between patches (pixels; default: --size)"
    )
    min_valid: float = Field(
        0.5, ge=0.0, le=1.0, description="smallest share of valid pixels a stored patch has"
    )
    dataset: str = Field(
        "sentinel-2",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="dataset the stack belongs to (oscd, bigearthnet, a pipeline's name …)",
    )
    truth: list[str] | None = Field(
        None, description="reference labels of the whole stack (e.g. BigEarthNet's), per patch"
    )
    encoder: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="registered change-detection encoder whose embedding is stored (default: "
        "no embedding)",
    )
    quicklooks: str | None = Field(
        None,
        description="folder/prefix URI of the quicklooks (default: STORAGE/mining/quicklooks/"
        "<hash of the stack URI>/s<size>)",
    )
    run_id: str | None = Field(None, description="the run that mines (provenance)")
    dsn: str | None = Field(
        None,
        description="PostgreSQL of the platform tables (default: CANDELA_DATABASE_URL, else the "
        "embedded server)",
    )

    @model_validator(mode="after")
    def _stride(self) -> MineParams:
        if self.stride is None:
            self.stride = self.size
        return self
