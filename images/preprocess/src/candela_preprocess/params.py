"""Parameters of the ``preprocess`` service (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from candela_sdk.contract import ServiceParams
from candela_sdk.sentinel2 import DEFAULT_BANDS, normalise_band

Resampling = Literal["nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average"]


class PreprocessParams(ServiceParams):
    """Parameters of ``candela-preprocess``."""

    product: str = Field(
        description="product URI: SAFE folder or .zip, OSCD imgs_N folder, BigEarthNet S2 patch"
    )
    output: str = Field(
        description="output COG URI (…/name.tif; a folder ending with / means <folder>/<product id>.tif)"
    )
    aoi: str | None = Field(
        default=None,
        description="area of interest: GeoJSON file/URI or inline GeoJSON (WGS 84); the output "
        "is cropped to it on whole pixels of the B02 grid",
    )
    grid_like: str | None = Field(
        default=None,
        description="a previous output COG: put this product onto exactly its grid "
        "(CRS, transform, shape) instead of its own B02 grid",
    )
    bands: list[str] = Field(
        default=list(DEFAULT_BANDS),
        description="bands to stack, in this order (default: the 10 m then the 20 m bands)",
    )
    resampling: Resampling = Field(
        default="bilinear",
        description="resampling of bands not already on the output grid (20 m -> 10 m). "
        "Default bilinear: smooth, no block artefacts (unlike nearest), never overshoots the "
        "range of its 4 neighbours (unlike cubic/lanczos) and keeps band means",
    )
    reflectance: bool = Field(
        default=False,
        description="record scale/offset so that reflectance = DN*scale + offset (from the MTD "
        "quantification value and baseline >= 04.00 offsets; OSCD/BigEarthNet: 1/10000, 0)",
    )
    block_size: int = Field(
        default=1024,
        ge=64,
        le=8192,
        description="processing window size in pixels (memory ~ bands*2*block_size^2 bytes)",
    )

    quality_gate: bool = Field(
        default=True,
        description="run the Great Expectations quality gate on the stack (--no-quality-gate to "
        "skip it); a failing gate fails the task (exit 2, outcome quality_gate_failed) and "
        "leaves only its report <output stem>_quality/index.html",
    )
    quality_report: bool = Field(
        default=False,
        description="gate: always validate with Great Expectations and publish its Data Docs "
        "(by default they are built only when an expectation is unmet; a passing gate publishes "
        "a small static report of the same checks)",
    )
    gate_min_valid_fraction: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="gate: least share of valid pixels (all bands with data and, for L2A, "
        "an SCL class counted valid)",
    )
    gate_min_value: int = Field(
        default=1, ge=0, le=65535, description="gate: lowest expected DN of a valid pixel"
    )
    gate_max_value: int = Field(
        default=20000,
        ge=1,
        le=65535,
        description="gate: highest expected DN (reflectance 2.0 at quantification 10000)",
    )
    gate_in_range_fraction: float = Field(
        default=0.99,
        ge=0,
        le=1,
        description="gate: least share of a band's valid pixels within the expected DN range",
    )
    gate_sample_pixels: int = Field(
        default=250_000,
        ge=1000,
        le=10_000_000,
        description="gate: about how many pixels (a regular grid) the expectations are "
        "evaluated on",
    )

    @model_validator(mode="after")
    def _gate_range(self) -> PreprocessParams:
        if self.gate_min_value > self.gate_max_value:
            raise ValueError("--gate-min-value is above --gate-max-value")
        return self

    @field_validator("bands")
    @classmethod
    def _known_bands(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one band is needed")
        names = [normalise_band(v) for v in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"band(s) listed twice: {', '.join(dupes)}")
        return names
