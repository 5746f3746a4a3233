"""The datamining service declaration (light imports only); parameters in
:mod:`candela_mine.params`."""

from __future__ import annotations

from typing import Any

from candela_mine.params import MineParams
from candela_sdk.contract import Resources, Service


def _run(params: MineParams) -> dict[str, Any]:
    from candela_mine.core import run

    return run(params)


SERVICE = Service(
    name="datamining",
    summary="Cut a preprocessed stack into patches: features, embeddings, quicklooks in PostgreSQL",
    description=(
        "Tiles a Sentinel-2 stack (and the Sentinel-1 backscatter when given) into patches of "
        "--size pixels every --stride pixels; per patch with enough valid pixels: band "
        "statistics, spectral indices, texture, the registered change-detection encoder's "
        "embedding (--encoder), a quicklook PNG in storage and one row of "
        "candela.mine_patches (COPY, one transaction). A stack without valid pixels exits 3; "
        "a stack already mined at that size is skipped (exit 3), never rewritten."
    ),
    params=MineParams,
    run=_run,
    command="candela-mine",
    image="candela-datamining",
    resources=Resources(cpu="1", memory="2Gi"),
)
