"""The ``preprocess`` service declaration: parameters, description, entry function.

Top-level imports stay light (pydantic only): the platform imports this module to build its
service catalogue and command lines.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from candela_preprocess.bands import DEFAULT_BANDS, normalise_band
from candela_sdk.contract import Resources, Service, ServiceParams

Resampling = Literal["nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average"]

DESCRIPTION = """\
Extract the 10 m and 20 m bands of one Sentinel-2 product, resample them onto the grid of the
blue band (B02, 10 m) and stack them into one Cloud-Optimized GeoTIFF (uint16, nodata 0, band
descriptions = band names), with a STAC item <output stem>.json next to it.

Input layouts, recognised from --product: a Sentinel-2 L1C/L2A SAFE folder or .zip; an OSCD
band folder (<city>/imgs_1 with one …_B02.tif per band and <city>/dates.txt); a BigEarthNet S2
patch folder. L2A SAFE products also give <output stem>_valid.tif (1 valid, 0 invalid) from the
scene classification (SCL).

Quality gate (Great Expectations, on by default): band count and order, DN range per band,
share of valid pixels, identical grids with --grid-like; report <output stem>_quality/index.html.

Exit codes: 0 done; 2 bad input (missing/corrupt band, unknown band or layout, product not
found) or a failed quality gate (outcome quality_gate_failed); 3 no data (the AOI or the
--grid-like grid misses the product, or no valid pixel);
4 output cannot be written. Nothing is left at --output on failure.
"""


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


def run(params: PreprocessParams) -> dict[str, Any]:
    from candela_preprocess.core import preprocess

    return preprocess(params)


SERVICE = Service(
    name="preprocess",
    summary="Sentinel-2 10 m + 20 m bands resampled onto the B02 grid, stacked into one COG",
    params=PreprocessParams,
    run=run,
    command="candela-preprocess",
    image="candela-preprocess",
    resources=Resources(cpu="2", memory="2Gi"),
    description=DESCRIPTION,
)
