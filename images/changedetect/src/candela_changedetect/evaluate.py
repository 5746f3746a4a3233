"""``candela-changedetect evaluate``: accuracy of change detection against reference labels.

One mask (``--prediction``): the prediction is a ``change_mask.tif`` (1 change, 0 no change,
255 nodata). Labels use ``--label-change-value`` / ``--label-nochange-value`` (OSCD: 2 / 1);
any other label value and prediction nodata are left out. Labels without georeferencing (OSCD)
are matched by shape; georeferenced labels must be on the prediction's grid.

A dataset (``--labels DIR`` in the OSCD layout, no ``--prediction``): for every city the two
dates are stacked as the preprocessing service does (:mod:`candela_changedetect.oscd`; a date
on another grid is aligned onto date 1's, where the labels are), every model in ``--models``
runs ``detect`` and its mask is scored; the F1 at the best probability threshold is added
(so thresholding and score can be judged apart). Means over the reported cities (those not in
``--tuning``) and over all; a Markdown table on stderr and, with ``--output``, next to the
JSON (``.md``).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from candela_changedetect.params import EvaluateParams

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
    if params.prediction is None:
        return run_dataset(params)
    return run_mask(params.prediction, params)


def run_mask(prediction: str, params: EvaluateParams) -> dict[str, Any]:
    """Metrics of one change mask against one label raster."""
    import rasterio

    from candela_changedetect.blocks import row_windows
    from candela_sdk import storage
    from candela_sdk.errors import InputError, NoDataError

    if params.label_change_value == params.label_nochange_value:
        raise InputError("--label-change-value and --label-nochange-value must differ")
    for flag, uri in (("--prediction", prediction), ("--labels", params.labels)):
        if not storage.exists(uri):
            raise InputError(f"{flag} not found: {storage.to_uri(uri)}")
    tp = fp = fn = tn = 0
    with (
        storage.rasterio_env(),
        rasterio.open(storage.gdal_path(prediction)) as pds,
        rasterio.open(storage.gdal_path(params.labels)) as lds,
    ):
        if (pds.height, pds.width) != (lds.height, lds.width):
            raise InputError(
                f"grids differ: prediction is {pds.width}x{pds.height} pixels, "
                f"labels are {lds.width}x{lds.height}"
            )
        if pds.crs is not None and lds.crs is not None:
            from candela_sdk.grids import grids_match

            ok, why = grids_match(prediction, params.labels)
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
    metrics["prediction"] = storage.to_uri(prediction)
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


#: metrics compared side by side in dataset mode
KEYS = ("precision", "recall", "f1", "iou", "kappa")


def best_f1(
    probability: np.ndarray,
    labels: np.ndarray,
    change_value: int = 2,
    nochange_value: int = 1,
) -> tuple[float, float, float]:
    """(F1, probability threshold, flagged share) at the best cut of a change probability.

    Exact: every distinct probability value is a candidate cut (pixels >= it are change; ties
    stay together). IR-MAD's probabilities crowd just below 1, so a binned search would miss
    its best cut. Memory ~12 bytes per labelled pixel. Probabilities < 0 are nodata.
    """
    use = (probability >= 0) & ((labels == change_value) | (labels == nochange_value))
    values, inverse = np.unique(probability[use], return_inverse=True)
    ref = labels[use] == change_value
    total_pos = int(ref.sum())
    if values.size == 0 or total_pos == 0:
        return 0.0, 1.0, 0.0
    pos = np.bincount(inverse.ravel()[ref], minlength=values.size)[::-1].cumsum()
    flagged = np.bincount(inverse.ravel(), minlength=values.size)[::-1].cumsum()
    f1 = 2 * pos / (flagged + total_pos)
    i = int(np.argmax(f1))
    return float(f1[i]), float(values[::-1][i]), float(flagged[i] / flagged[-1])


def _names(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def run_dataset(params: EvaluateParams) -> dict[str, Any]:
    """Every model on every labelled city of an OSCD-layout folder, side by side."""
    import sys
    import tempfile
    import time
    from pathlib import Path

    import rasterio

    from candela_changedetect import oscd
    from candela_changedetect.detect import run_detect
    from candela_changedetect.models import is_known
    from candela_changedetect.params import DetectParams
    from candela_sdk import storage
    from candela_sdk.errors import InputError, NoDataError

    if params.labels.startswith("s3://"):
        raise InputError(
            "--labels: a dataset must be a local folder (or give --prediction with a label raster)"
        )
    root = Path(storage.to_uri(params.labels).removeprefix("file://"))
    if not root.exists():
        raise InputError(f"--labels not found: {root}")
    if root.is_file():
        raise InputError(
            f"--labels {root} is a file: give --prediction MASK to score one mask, or a dataset "
            "folder (<city>/imgs_1, imgs_2, cm/<city>-cm.tif) to compare models"
        )
    available = oscd.labelled_cities(root)
    if not available:
        raise InputError(
            f"no labelled city under {root} (expected <city>/imgs_1, imgs_2, cm/<city>-cm.tif)"
        )
    cities = _names(params.cities) or available
    tuning = _names(params.tuning)
    unknown = [c for c in cities + tuning if c not in available]
    if unknown:
        raise InputError(
            f"unknown or unlabelled cities {', '.join(unknown)} under {root}; labelled: "
            + ", ".join(available)
        )
    cities += [c for c in tuning if c not in cities]
    models = _names(params.models)
    if not models:
        raise InputError("--models is empty")
    bad = [m for m in models if not is_known(m)]
    if bad:
        raise InputError(f"unknown models {', '.join(bad)} (built-in or registered names)")
    stray = sorted(set(params.model_options) - set(models))
    if stray:
        raise InputError(f"--model-options for models not in --models: {', '.join(stray)}")

    rows: list[dict[str, Any]] = []
    aligned: dict[str, str] = {}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="candela-evaluate-") as tmp:
        for n, city in enumerate(cities, start=1):
            d = root / city
            work = Path(tmp) / city
            work.mkdir()
            grid_date = None
            if not oscd.same_grid(d):
                grid_date = 1
                aligned[city] = "date 2 resampled (bilinear) onto the B02 grid of date 1"
            try:
                before = oscd.build_stack(d, 1, work / "before.tif")
                after = oscd.build_stack(d, 2, work / "after.tif", grid_date=grid_date)
            except (FileNotFoundError, rasterio.errors.RasterioIOError) as exc:
                raise InputError(f"{city}: {exc}") from None
            labels = oscd.labels_file(d)
            assert labels is not None
            with rasterio.open(labels) as lds:
                ref = lds.read(1)
            for model in models:
                log.info("evaluate: city %d/%d %s, model %s", n, len(cities), city, model)
                out = work / model
                row: dict[str, Any] = {
                    "city": city,
                    "role": "tuning" if city in tuning else "report",
                    "model": model,
                }
                t0 = time.perf_counter()
                try:
                    res = run_detect(
                        DetectParams(
                            before=str(before),
                            after=str(after),
                            model=model,
                            output=str(out),
                            threshold=params.threshold,
                            model_options=params.model_options.get(model, {}),
                        )
                    )
                except NoDataError as exc:
                    row["error"] = str(exc)
                    rows.append(row)
                    log.warning("evaluate: %s / %s: %s", city, model, exc)
                    continue
                m = run_mask(
                    str(out / "change_mask.tif"),
                    params.model_copy(update={"labels": str(labels), "output": None}),
                )["metrics"]
                with rasterio.open(out / "change_probability.tif") as pds:
                    prob = pds.read(1)
                if prob.shape != ref.shape:
                    raise InputError(
                        f"{city}: labels are {ref.shape[1]}x{ref.shape[0]} pixels, the stack "
                        f"{prob.shape[1]}x{prob.shape[0]}"
                    )
                bf, bt, bflag = best_f1(
                    prob, ref, params.label_change_value, params.label_nochange_value
                )
                row.update({k: m[k] for k in KEYS})
                row.update(
                    {
                        "best_f1": bf,
                        "best_threshold": bt,
                        "best_flagged": bflag,
                        "flagged": res["changed_fraction"],
                        "threshold": res["threshold"],
                        "seconds": round(time.perf_counter() - t0, 2),
                    }
                )
                rows.append(row)
    means = _means(rows, cities, tuning, models)
    table = markdown_table(rows, means, models)
    sys.stderr.write(table + "\n")
    doc: dict[str, Any] = {
        "cities": cities,
        "report_cities": [c for c in cities if c not in tuning],
        "tuning_cities": tuning,
        "aligned": aligned,
        "models": {m: params.model_options.get(m) or "defaults" for m in models},
        "threshold": params.threshold,
        "rows": rows,
        "means": means,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    result: dict[str, Any] = {**doc, "outputs": {}}
    if params.output:
        storage.write_text(params.output, json.dumps(doc, indent=2) + "\n")
        md = params.output.rsplit(".", 1)[0] + ".md"
        storage.write_text(md, table + "\n")
        result["outputs"] = {"metrics": storage.to_uri(params.output), "table": storage.to_uri(md)}
    return result


def _mean(values: list[Any]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def _means(
    rows: list[dict[str, Any]], cities: list[str], tuning: list[str], models: list[str]
) -> dict[str, Any]:
    groups = {"report": [c for c in cities if c not in tuning], "all": cities}
    means: dict[str, Any] = {}
    for group, members in groups.items():
        if not members:
            continue
        means[group] = {}
        for model in models:
            sel = [r for r in rows if r["model"] == model and r["city"] in members and "f1" in r]
            if not sel:
                continue
            means[group][model] = {
                k: _mean([r[k] for r in sel]) for k in (*KEYS, "best_f1", "flagged")
            }
            means[group][model]["cities"] = len(sel)
        ratios = {}
        cva = means[group].get("cva", {}).get("f1")
        for model in models:
            if model != "cva" and cva and model in means[group]:
                ratios[f"{model}_over_cva"] = means[group][model]["f1"] / cva
        means[group].update(ratios)
    return means


def markdown_table(rows: list[dict[str, Any]], means: dict[str, Any], models: list[str]) -> str:
    def f(v: Any) -> str:
        return "–" if v is None else f"{v:.3f}"

    head = "| city | role | model | precision | recall | F1 | best F1 | IoU | kappa | flagged |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "f1" not in r:
            lines.append(f"| {r['city']} | {r['role']} | {r['model']} | {r['error']} |||||||")
            continue
        lines.append(
            f"| {r['city']} | {r['role']} | {r['model']} | {f(r['precision'])} | "
            f"{f(r['recall'])} | {f(r['f1'])} | {f(r['best_f1'])} | {f(r['iou'])} | "
            f"{f(r['kappa'])} | {f(r['flagged'])} |"
        )
    for group, per_model in means.items():
        for model in models:
            m = per_model.get(model)
            if not m:
                continue
            lines.append(
                f"| mean ({group}) | | {model} | {f(m['precision'])} | {f(m['recall'])} | "
                f"{f(m['f1'])} | {f(m['best_f1'])} | {f(m['iou'])} | {f(m['kappa'])} | "
                f"{f(m['flagged'])} |"
            )
    for group, per_model in means.items():
        for key, value in per_model.items():
            if key.endswith("_over_cva"):
                lines.append(f"\n{key.replace('_', ' ')} ({group} mean F1): {value:.2f}x")
    return "\n".join(lines)
