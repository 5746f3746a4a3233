"""``candela-changedetect evaluate``: accuracy of a change mask against reference labels.

The prediction is a ``change_mask.tif`` (1 change, 0 no change, 255 nodata). Labels use
``--label-change-value`` / ``--label-nochange-value`` (OSCD: 2 / 1); any other label value and
prediction nodata are left out. Labels without georeferencing (OSCD) are matched by shape;
georeferenced labels must be on the prediction's grid.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from candela_changedetect.service import EvaluateParams

log = logging.getLogger(__name__)


def confusion_metrics(tp: int, fp: int, fn: int, tn: int) -> dict[str, Any]:
    """Precision, recall, F1, IoU, overall accuracy and Cohen's kappa (None when undefined)."""
    n = tp + fp + fn + tn

    def ratio(a: float, b: float) -> float | None:
        return a / b if b else None

    precision = ratio(tp, tp + fp)
    recall = ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    po = ratio(tp + tn, n)
    pe = ratio((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn), n * n)
    kappa = None
    if po is not None and pe is not None and pe < 1:
        kappa = (po - pe) / (1 - pe)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "iou": ratio(tp, tp + fp + fn),
        "overall_accuracy": po,
        "kappa": kappa,
        "confusion_matrix": {
            "true_positive": tp,
            "false_positive": fp,
            "false_negative": fn,
            "true_negative": tn,
        },
        "pixels": n,
        "predicted_change_fraction": ratio(tp + fp, n),
        "reference_change_fraction": ratio(tp + fn, n),
    }


def evaluate_arrays(
    prediction: np.ndarray, labels: np.ndarray, change_value: int = 2, nochange_value: int = 1
) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of a 0/1/255 prediction against labels."""
    use = (prediction != 255) & ((labels == change_value) | (labels == nochange_value))
    pred = prediction[use] == 1
    ref = labels[use] == change_value
    tp = int(np.sum(pred & ref))
    fp = int(np.sum(pred & ~ref))
    fn = int(np.sum(~pred & ref))
    tn = int(np.sum(~pred & ~ref))
    return tp, fp, fn, tn


def run_evaluate(params: EvaluateParams) -> dict[str, Any]:
    import rasterio

    from candela_changedetect.blocks import row_windows
    from candela_sdk import storage
    from candela_sdk.errors import InputError, NoDataError

    if params.label_change_value == params.label_nochange_value:
        raise InputError("--label-change-value and --label-nochange-value must differ")
    for flag, uri in (("--prediction", params.prediction), ("--labels", params.labels)):
        if not storage.exists(uri):
            raise InputError(f"{flag} not found: {storage.to_uri(uri)}")
    tp = fp = fn = tn = 0
    with (
        storage.rasterio_env(),
        rasterio.open(storage.gdal_path(params.prediction)) as pds,
        rasterio.open(storage.gdal_path(params.labels)) as lds,
    ):
        if (pds.height, pds.width) != (lds.height, lds.width):
            raise InputError(
                f"grids differ: prediction is {pds.width}x{pds.height} pixels, "
                f"labels are {lds.width}x{lds.height}"
            )
        if pds.crs is not None and lds.crs is not None:
            from candela_sdk.grids import grids_match

            ok, why = grids_match(params.prediction, params.labels)
            if not ok:
                raise InputError(f"grids differ: {why} (--prediction and --labels)")
        for w in row_windows(pds.height, pds.width, 1024):
            counts = evaluate_arrays(
                pds.read(1, window=w.rasterio()),
                lds.read(1, window=w.rasterio()),
                params.label_change_value,
                params.label_nochange_value,
            )
            tp, fp, fn, tn = tp + counts[0], fp + counts[1], fn + counts[2], tn + counts[3]
    if tp + fp + fn + tn == 0:
        raise NoDataError("no pixel is both predicted (not nodata) and labelled")
    metrics = confusion_metrics(tp, fp, fn, tn)
    metrics["prediction"] = storage.to_uri(params.prediction)
    metrics["labels"] = storage.to_uri(params.labels)
    log.info(
        "precision %.3f recall %.3f F1 %.3f IoU %.3f kappa %.3f",
        *(metrics[k] or 0.0 for k in ("precision", "recall", "f1", "iou", "kappa")),
    )
    result: dict[str, Any] = {"metrics": metrics, "outputs": {}}
    if params.output:
        storage.write_text(params.output, json.dumps(metrics, indent=2))
        result["outputs"]["metrics"] = storage.to_uri(params.output)
    return result
