"""The ``preprocess`` service declaration: parameters, description, entry function.

Top-level imports stay light (pydantic only): the platform imports this module to build its
service catalogue and command lines.
"""

from __future__ import annotations

from typing import Any

from candela_preprocess.params import PreprocessParams, Resampling
from candela_sdk.contract import Resources, Service

__all__ = ["DESCRIPTION", "SERVICE", "PreprocessParams", "Resampling", "run"]

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
    # a full-tile stack is 2.2 GB, staged uncompressed (2.4 GB) with overviews: about 8 times
    # the JPEG 2000 product it is made from
    resources=Resources(cpu="2", memory="2Gi", scratch_per_input=8.0),
    inputs=("product",),
    description=DESCRIPTION,
)
