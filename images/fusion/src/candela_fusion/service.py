"""The fusion service declarations: ``classify`` (the pipeline's ``fuse_landcover`` step),
``train`` and ``evaluate``.

Top-level imports stay light (pydantic and the SDK contract): the platform imports this module to
build its service catalogue.
"""

from __future__ import annotations

from typing import Any

from candela_fusion.params import ClassifyParams, EvaluateParams, TrainParams
from candela_sdk.contract import Resources, Service

__all__ = ["EVALUATE", "SERVICE", "TRAIN", "ClassifyParams", "EvaluateParams", "TrainParams"]


def _run_classify(params: ClassifyParams) -> dict[str, Any]:
    from candela_fusion.classify import run_classify

    return run_classify(params)


def _run_train(params: TrainParams) -> dict[str, Any]:
    from candela_fusion.trainer import run_train

    return run_train(params)


def _run_evaluate(params: EvaluateParams) -> dict[str, Any]:
    from candela_fusion.evaluate import run_evaluate

    return run_evaluate(params)


SERVICE = Service(
    name="fusion",
    summary="Land cover from Sentinel-1 radar and Sentinel-2 optical data, robust to clouds",
    params=ClassifyParams,
    run=_run_classify,
    command="candela-fusion",
    subcommand="classify",
    image="candela-fusion",
    # a GPU only for a model that runs on one (candela_sdk.registry.MODEL_DEVICES)
    resources=Resources(cpu="2", memory="4Gi", gpu=1, scratch_per_input=1.0),
    model_param="model",
    inputs=("optical", "radar"),
    description=(
        "Classifies a Sentinel-2 stack and a Sentinel-1 scene (resampled onto the stack's grid, "
        "co-registration reported) with the s2, s1 or fused model; where the optical pixels "
        "are invalid (--optical-mask: SCL, validity or cloud mask) the fused model uses the "
        "radar. Writes landcover.tif (class values, colour table), confidence.tif (percent per "
        "class), source.tif (1 radar, 2 optical, 3 both), classes.json, quicklook.png, "
        "statistics.json, zones.geojson/.csv (class areas per zone) and item.json (STAC, "
        "classification + mlm). Exit 2: bad input (dates further apart than --window-days, no "
        "overlap, missing band or polarisation, unknown unit, class table not the model's); "
        "3: no pixel classified."
    ),
)

TRAIN = Service(
    name="fusion-train",
    summary="Train an s2, s1 or fused land-cover network on a patch store (tf.data)",
    params=TrainParams,
    run=_run_train,
    command="candela-fusion",
    subcommand="train",
    image="candela-fusion",
    resources=Resources(cpu="2", memory="4Gi", gpu=0),
    description="Streams patches from a patch store with tf.data and saves model.keras + "
    "metadata.json (optionally registered in the model registry).",
)

EVALUATE = Service(
    name="fusion-evaluate",
    summary="S2-only, S1-only and fused side by side under 0-90 % real clouds, held out",
    params=EvaluateParams,
    run=_run_evaluate,
    command="candela-fusion",
    subcommand="evaluate",
    image="candela-fusion",
    resources=Resources(cpu="2", memory="4Gi", gpu=0),
    description="Pixel test on the Sen1Floods11 chip (leave-one-quadrant-out) with 0/30/60/90 "
    "% of the optical pixels under real cloud shapes; patch test on BigEarthNet pairs "
    "(leave-one-country-out). OA, per-class F1, confusion matrices.",
)
