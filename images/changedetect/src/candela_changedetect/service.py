"""The change detection service declarations: ``detect`` (the pipeline step) and ``evaluate``.

Top-level imports stay light (pydantic and the SDK contract): the platform imports this module to
build its service catalogue.
"""

from __future__ import annotations

from typing import Any

from candela_changedetect.params import (
    THRESHOLD_HELP,
    DetectParams,
    EvaluateParams,
    parse_threshold,
)
from candela_sdk.contract import Resources, Service

__all__ = [
    "EVALUATE",
    "SERVICE",
    "THRESHOLD_HELP",
    "DetectParams",
    "EvaluateParams",
    "parse_threshold",
]


def _run_detect(params: DetectParams) -> dict[str, Any]:
    from candela_changedetect.detect import run_detect

    return run_detect(params)


def _run_evaluate(params: EvaluateParams) -> dict[str, Any]:
    from candela_changedetect.evaluate import run_evaluate

    return run_evaluate(params)


SERVICE = Service(
    name="changedetect",
    summary="Change probability and change mask from two co-registered Sentinel-2 stacks",
    params=DetectParams,
    run=_run_detect,
    command="candela-changedetect",
    subcommand="detect",
    image="candela-changedetect",
    # a GPU only for a model that runs on one (candela_sdk.registry.MODEL_DEVICES: the encoder)
    resources=Resources(cpu="2", memory="4Gi", gpu=1, scratch_per_input=0.5),
    model_param="model",
    inputs=("before", "after"),
    description=(
        "Compares two multi-band stacks on the same grid (from the preprocessing service) with a "
        "change model (cva: change vector analysis; irmad: iteratively reweighted MAD) and writes "
        "change_probability.tif (float32 0-1, nodata -1), change_mask.tif (uint8 1 change, "
        "0 no change, 255 nodata), quicklook.png, statistics.json, item.json (STAC) and, with "
        "--zones, zones.geojson and zones.csv. Exit 2: bad input (grids or bands differ); "
        "3: no valid pixel."
    ),
)

EVALUATE = Service(
    name="changedetect-evaluate",
    summary="Accuracy of a change mask against reference labels",
    params=EvaluateParams,
    run=_run_evaluate,
    command="candela-changedetect",
    subcommand="evaluate",
    image="candela-changedetect",
    resources=Resources(cpu="1", memory="1Gi", gpu=0),
    description=(
        "Precision, recall, F1, IoU, overall accuracy, Cohen's kappa and the confusion matrix of "
        "a change mask against labels (OSCD: 1 = no change, 2 = change); with a dataset folder "
        "as --labels, every model on every city side by side, per city and averaged, with the "
        "F1 at the best threshold."
    ),
)
