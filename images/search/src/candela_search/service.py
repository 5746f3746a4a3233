"""The ``search`` service: its declaration (pydantic only at import time).

The parameters are in :mod:`candela_search.params`.
"""

from __future__ import annotations

from typing import Any

from candela_sdk.contract import Resources, Service
from candela_search.params import Collection, Provider, SearchParams


def _run(params: SearchParams) -> dict[str, Any]:
    from candela_search.core import run

    return run(params)


SERVICE = Service(
    name="search",
    summary="Find Sentinel products over an area and period (platform catalogue, STAC API, CDSE)",
    params=SearchParams,
    run=_run,
    command="candela-search",
    image="candela-search",
    resources=Resources(cpu="500m", memory="512Mi", scratch_min="512Mi"),
    needs_database=True,  # the platform's catalogue (candela.products)
    description=(
        "Searches the catalogue for products of one collection (Sentinel-2 L2A or L1C, "
        "Sentinel-1 GRD) that intersect an area of interest (exact geometry test), within a "
        "period, below a cloud cover, optionally on one MGRS tile. Results are sorted by date; "
        "when the same datatake was processed with several processing baselines only the "
        "newest is kept.\n\n"
        'Result: {"count": n, "items": [STAC items], "products": [{"id", "href", "datetime", '
        '"collection", "tile"}]}.\n'
        "Exit code 3 (no data) when nothing matches. "
        "`--format featurecollection` prints the items as a GeoJSON FeatureCollection instead "
        "(the result file keeps the contract's form)."
    ),
)

__all__ = ["SERVICE", "Collection", "Provider", "SearchParams"]
