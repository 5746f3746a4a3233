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


def _dataset(params: EvaluateParams) -> tuple[Any, list[str], list[str], list[str]]:
    """Validated (root, cities, tuning cities, models) of dataset mode; InputError else."""
    from pathlib import Path

    from candela_changedetect import oscd
    from candela_changedetect.models import is_known
    from candela_sdk import storage
    from candela_sdk.errors import InputError

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

    return root, cities, tuning, models


def run_dataset(params: EvaluateParams) -> dict[str, Any]:
    """Every model on every labelled city of an OSCD-layout folder, side by side."""
    import sys
    import tempfile
    import time
    from pathlib import Path

    import rasterio

    from candela_changedetect import oscd
    from candela_changedetect.detect import run_detect
    from candela_changedetect.params import DetectParams
    from candela_sdk import storage
    from candela_sdk.errors import InputError, NoDataError

    if params.protocol == "loo":
        return run_loo(params)
    root, cities, tuning, models = _dataset(params)
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


# --- leave-one-city-out protocol (--protocol loo) ------------------------------------------


def candidate_key(options: dict[str, Any]) -> str:
    return json.dumps(options, sort_keys=True)


def cut_metrics(
    u: np.ndarray,
    ref: np.ndarray,
    hist: np.ndarray,
    candidate: dict[str, Any],
    dof: int,
    cva_hist: np.ndarray | None = None,
) -> dict[str, Any]:
    """F1, precision, recall and flagged share of the automatic cut ``candidate`` applied to
    ``u = ln(score)`` (labelled valid pixels; ``ref`` True = change), the cut computed from
    ``hist`` (the log histogram of every valid pixel, as ``detect`` does); ``share_cva``
    rules also need ``cva_hist``, CVA's log histogram on the same pair."""
    from candela_changedetect.calibration import fit_cut, fit_share_cut

    opts = {k: v for k, v in candidate.items() if k != "threshold_rule"}
    if candidate["threshold_rule"] == "share_cva":
        if cva_hist is None:
            raise ValueError("share_cva needs CVA's histogram")
        cut = fit_share_cut(hist, cva_hist, **opts)
    else:
        cut = fit_cut(hist, str(candidate["threshold_rule"]), dof=dof, **opts)
    pred = u >= cut.t
    tp = int(np.sum(pred & ref))
    fp = int(np.sum(pred & ~ref))
    fn = int(np.sum(~pred & ref))
    m = confusion_metrics(tp, fp, fn, int(pred.size) - tp - fp - fn)
    return {
        "f1": m["f1"] or 0.0,
        "precision": m["precision"],
        "recall": m["recall"],
        "flagged": float(pred.mean()) if pred.size else 0.0,
        "cut": cut.t,
        "rule_applied": cut.rule,
    }


def score_best_f1(score: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(F1, flagged share) at the best cut of a non-negative score (exact, ties together)."""
    f1, _, flagged = best_f1(score, np.where(ref, 2, 1).astype(np.uint8))
    return f1, flagged


def loo_select(
    table: dict[str, dict[str, list[dict[str, Any]]]], cities: list[str]
) -> dict[str, Any]:
    """Leave-one-city-out choice among candidates.

    ``table[candidate][city]`` lists one metrics dict per seed. For each held-out city the
    candidate with the highest mean F1 over the *other* cities (and seeds) is chosen (ties: the
    earlier candidate) and its per-seed metrics on the held-out city are the result; the
    choice on all cities is returned too (what would ship)."""

    def mean_f1(cand: str, members: list[str]) -> float:
        vals = [m["f1"] for c in members for m in table[cand][c]]
        return float(np.mean(vals)) if vals else -1.0

    folds = {}
    for held in cities:
        others = [c for c in cities if c != held]
        best = max(table, key=lambda cand: mean_f1(cand, others))
        folds[held] = {
            "chosen": best,
            "train_f1": mean_f1(best, others),
            "seeds": table[best][held],
        }
    final = max(table, key=lambda cand: mean_f1(cand, cities))
    summary = {
        cand: {
            "mean_f1": mean_f1(cand, cities),
            "f1_per_city": {c: float(np.mean([m["f1"] for m in table[cand][c]])) for c in cities},
            "flagged_per_city": {
                c: float(np.mean([m["flagged"] for m in table[cand][c]])) for c in cities
            },
            "mean_f1_per_seed": {
                str(seed): float(
                    np.mean([m["f1"] for c in cities for m in table[cand][c] if m["seed"] == seed])
                )
                for seed in dict.fromkeys(m["seed"] for m in table[cand][cities[0]])
            },  # fmt: skip
        }
        for cand in table
    }
    return {
        "folds": folds,
        "final": final,
        "final_mean_f1_all_cities": mean_f1(final, cities),
        "candidates": summary,
    }


def rule_family(candidate: str) -> str:
    """The family of a candidate (its ``threshold_rule``; ``share_cva`` with its combination),
    within which leave-one-city-out chooses the parameters."""
    c = json.loads(candidate)
    rule = str(c.get("threshold_rule"))
    if rule != "share_cva":
        return rule
    return f"{rule}/{c['share_combine']}/{c.get('own_rule', 'robust_z')}"


def loo_families(
    table: dict[str, dict[str, list[dict[str, Any]]]], cities: list[str]
) -> dict[str, Any]:
    """Leave-one-city-out within each rule family (the rule fixed, its parameters and the grid
    setting chosen on the other cities): the LOO mean F1 a family would get, per seed too, and
    its mean flagged share, so families are compared on the same footing as models."""
    out: dict[str, Any] = {}
    for fam in dict.fromkeys(rule_family(c) for c in table):
        sub = {c: v for c, v in table.items() if rule_family(c) == fam}
        sel = loo_select(sub, cities)
        runs = [r for city in cities for r in sel["folds"][city]["seeds"]]
        per_seed: dict[str, list[float]] = {}
        for r in runs:
            per_seed.setdefault(str(r["seed"]), []).append(r["f1"])
        seed_means = {k: float(np.mean(v)) for k, v in per_seed.items()}
        out[fam] = {
            "loo_f1": float(np.mean([np.mean([r["f1"] for r in sel["folds"][c]["seeds"]])
                                     for c in cities])),
            "loo_f1_per_seed": seed_means,
            "seed_spread": max(seed_means.values()) - min(seed_means.values()),
            "loo_f1_per_city": {
                c: float(np.mean([r["f1"] for r in sel["folds"][c]["seeds"]])) for c in cities
            },
            "loo_flagged_per_city": {
                c: float(np.mean([r["flagged"] for r in sel["folds"][c]["seeds"]]))
                for c in cities
            },
            "final_choice": json.loads(sel["final"]),
        }  # fmt: skip
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["loo_f1"]))


#: options that only move the cut, not the score (left out of the score-map cache key)
CUT_OPTIONS = (
    "threshold_rule",
    "z",
    "z_floor",
    "alpha",
    "cva_rule",
    "cva_z",
    "share_combine",
    "share_floor",
    "own_rule",
)


def score_options(model: Any) -> dict[str, Any]:
    """The model's effective options that change its score (cache key of a score map)."""
    dump = model.options.model_dump(mode="json")
    return {k: v for k, v in dump.items() if k not in CUT_OPTIONS}


def _score_map(
    cache: Any, city: str, before: Any, after: Any, model: str, options: dict[str, Any]
) -> np.ndarray:
    """The model's score of every pixel (NaN where not valid), computed once per options."""
    import hashlib

    import rasterio

    from candela_changedetect import oscd
    from candela_changedetect.blocks import RasterPair
    from candela_changedetect.models import create_model

    m = create_model(model, options)
    effective = score_options(m)
    key = hashlib.sha1(candidate_key(effective).encode()).hexdigest()[:12]
    path = cache / model / key / f"{city}.npy"
    if path.exists():
        return np.asarray(np.load(path))
    with rasterio.open(before) as bds, rasterio.open(after) as ads:
        src = RasterPair(bds, ads, band_names=list(oscd.BANDS))
        m.fit(src)
        score = np.concatenate([m.score(blk) for blk in src.blocks()]).astype(np.float32)
        drop = getattr(m, "drop_cache", None)
        if drop is not None:
            drop()
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "options.json").write_text(candidate_key(effective) + "\n")
    np.save(path, score)
    return score


def _rule_candidates(model: Any) -> list[dict[str, Any]]:
    """The cut rules compared for a model: the shared ones (+ chi2 for IR-MAD) and, first, the
    model's own default (so ties keep it)."""
    from candela_changedetect.calibration import CANDIDATES, CHI2_CANDIDATES, SHARE_CANDIDATES

    o = model.options
    default: dict[str, Any] = {"threshold_rule": o.threshold_rule}
    if o.threshold_rule == "share_cva":
        default.update({"cva_rule": o.cva_rule, "cva_z": o.cva_z, "share_combine": o.share_combine})
        if o.share_combine == "geomean":
            default["share_floor"] = o.share_floor
        if o.own_rule != "robust_z":
            default["own_rule"] = o.own_rule
        default["z"] = o.z
    elif o.threshold_rule in ("robust_z", "nochange_z"):
        default["z"] = o.z
    elif o.threshold_rule == "mixture":
        default["z_floor"] = o.z_floor
    elif o.threshold_rule == "chi2":
        default["alpha"] = o.alpha
    pool = [dict(c) for c in CANDIDATES]
    if "alpha" in type(o).model_fields:
        pool += [dict(c) for c in CHI2_CANDIDATES]
    if "share_combine" in type(o).model_fields:
        pool += [dict(c) for c in SHARE_CANDIDATES]
    return [default] + [c for c in pool if c != default]


def run_loo(params: EvaluateParams) -> dict[str, Any]:
    """Leave-one-city-out: every choice (cut rule and its parameter, the ``--grid`` settings)
    is made on the other cities and scored on the held-out one; seeds (``--seeds``, models with
    a ``seed`` option) give the spread. Score maps are computed once per city, model, setting
    and seed (kept in ``--cache`` when given)."""
    import sys
    import tempfile
    import time
    from pathlib import Path

    import rasterio

    from candela_changedetect import oscd
    from candela_changedetect.calibration import log_histogram
    from candela_changedetect.models import create_model
    from candela_sdk import storage
    from candela_sdk.errors import InputError

    root, cities, tuning, models = _dataset(params)
    if tuning:
        raise InputError("--tuning does not apply to --protocol loo (every city is held out once)")
    if len(cities) < 2:
        raise InputError("--protocol loo needs at least 2 labelled cities")
    stray = sorted(set(params.grid) - set(models))
    if stray:
        raise InputError(f"--grid for models not in --models: {', '.join(stray)}")
    try:
        seeds = [int(s) for s in _names(params.seeds)] or [0]
    except ValueError:
        raise InputError(
            f"--seeds must be comma-separated integers, not {params.seeds!r}"
        ) from None
    probes = {m: create_model(m, params.model_options.get(m, {})) for m in models}
    for m in models:  # every setting must be valid options before anything runs
        for setting in params.grid.get(m, [{}]):
            create_model(m, {**params.model_options.get(m, {}), **setting})

    t_start = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="candela-loo-")
    cache = Path(params.cache) if params.cache else Path(tmp.name)
    try:
        data: dict[str, Any] = {}
        for city in cities:
            d = root / city
            work = cache / "stacks" / city
            work.mkdir(parents=True, exist_ok=True)
            before, after = work / "before.tif", work / "after.tif"
            if not after.exists():
                grid_date = None if oscd.same_grid(d) else 1
                try:
                    oscd.build_stack(d, 1, before)
                    oscd.build_stack(d, 2, after, grid_date=grid_date)
                except (FileNotFoundError, rasterio.errors.RasterioIOError) as exc:
                    raise InputError(f"{city}: {exc}") from None
            labels = oscd.labels_file(d)
            assert labels is not None
            with rasterio.open(labels) as lds:
                data[city] = (before, after, lds.read(1))
        report: dict[str, Any] = {}
        for m in models:
            base = params.model_options.get(m, {})
            seeded = "seed" in type(probes[m].options).model_fields  # type: ignore[attr-defined]
            dof = len(oscd.BANDS)
            rules = _rule_candidates(probes[m])
            table: dict[str, dict[str, list[dict[str, Any]]]] = {}
            for setting in params.grid.get(m, [{}]):
                for city in cities:
                    before, after, ref_all = data[city]
                    for seed in seeds if seeded else [None]:
                        opts = {**base, **setting} | ({} if seed is None else {"seed": seed})
                        log.info("evaluate loo: %s %s %s", city, m, candidate_key(opts))
                        score = _score_map(cache, city, before, after, m, opts)
                        if score.shape != ref_all.shape:
                            raise InputError(f"{city}: labels and stack differ in size")
                        hist = log_histogram(score)
                        cva_hist = None
                        if any(r["threshold_rule"] == "share_cva" for r in rules):
                            # CVA (default options) on the same pair, as share_cva runs it
                            cva_hist = log_histogram(
                                _score_map(cache, city, before, after, "cva", {})
                            )
                        use = np.isfinite(score) & ((ref_all == 1) | (ref_all == 2))
                        s_use = score[use]
                        u = np.log(np.maximum(s_use.astype(np.float64), 1e-300))
                        ref = ref_all[use] == 2
                        bf, bflag = score_best_f1(s_use, ref)
                        for rule in rules:
                            cand = candidate_key({**setting, **rule})
                            met = cut_metrics(u, ref, hist, rule, dof, cva_hist)
                            met.update(
                                {"seed": seed, "best_f1": bf, "best_flagged": bflag,
                                 "true_share": float(ref.mean())}
                            )  # fmt: skip
                            table.setdefault(cand, {}).setdefault(city, []).append(met)
            sel = loo_select(table, cities)
            # the model's defaults: the grid setting with its default score options (if any)
            plain = score_options(probes[m])
            same = [
                st
                for st in params.grid.get(m, [{}])
                if {k: v for k, v in score_options(create_model(m, {**base, **st})).items()
                    if k != "seed"} == {k: v for k, v in plain.items() if k != "seed"}
            ]  # fmt: skip
            default = candidate_key({**(same[0] if same else {}), **rules[0]})
            report[m] = {
                "selection": sel,
                "families": loo_families(table, cities),
                "default": default,
                "default_rows": {c: table[default][c] for c in cities} if default in table else {},
            }
        doc = _loo_document(report, cities, models, seeds)
    finally:
        tmp.cleanup()
    doc["seconds"] = round(time.perf_counter() - t_start, 1)
    doc["grid"] = {m: params.grid.get(m, [{}]) for m in models}
    doc["model_options"] = {m: params.model_options.get(m) or "defaults" for m in models}
    table_md = loo_markdown(doc)
    sys.stderr.write(table_md + "\n")
    result: dict[str, Any] = {**doc, "outputs": {}}
    if params.output:
        storage.write_text(params.output, json.dumps(doc, indent=2) + "\n")
        md = params.output.rsplit(".", 1)[0] + ".md"
        storage.write_text(md, table_md + "\n")
        result["outputs"] = {"metrics": storage.to_uri(params.output), "table": storage.to_uri(md)}
    return result


def _loo_document(
    report: dict[str, Any], cities: list[str], models: list[str], seeds: list[int]
) -> dict[str, Any]:
    rows = []
    means: dict[str, Any] = {}
    for m in models:
        sel = report[m]["selection"]
        per_seed: dict[str, list[float]] = {}
        for city in cities:
            fold = sel["folds"][city]
            runs = fold["seeds"]
            row = {
                "city": city,
                "model": m,
                "chosen": json.loads(fold["chosen"]),
                "true_share": runs[0]["true_share"],
            }
            for k in ("f1", "precision", "recall", "flagged", "best_f1", "best_flagged"):
                row[k] = _mean([r[k] for r in runs])
            row["per_seed"] = [
                {k: r[k] for k in ("seed", "f1", "best_f1", "flagged", "rule_applied")}
                for r in runs
            ]
            rows.append(row)
            for r in runs:
                per_seed.setdefault(str(r["seed"]), []).append(r["f1"])
        seed_means = {s: float(np.mean(v)) for s, v in per_seed.items()}
        sel_rows = [r for r in rows if r["model"] == m]
        means[m] = {
            "loo_f1": _mean([r["f1"] for r in sel_rows]),
            "loo_best_f1": _mean([r["best_f1"] for r in sel_rows]),
            "loo_flagged": _mean([r["flagged"] for r in sel_rows]),
            "true_share": _mean([r["true_share"] for r in sel_rows]),
            "loo_f1_per_seed": seed_means,
            "seed_spread": (max(seed_means.values()) - min(seed_means.values()))
            if seed_means
            else None,
            "final_choice": json.loads(sel["final"]),
            "final_choice_mean_f1_all_cities": sel["final_mean_f1_all_cities"],
            "candidates_all_cities": dict(
                sorted(sel["candidates"].items(), key=lambda kv: -kv[1]["mean_f1"])
            ),
            "default_options": json.loads(report[m]["default"]),
            "default_f1_per_city": {
                c: _mean([r["f1"] for r in v]) for c, v in report[m]["default_rows"].items()
            },
        }
        means[m]["rule_families"] = report[m]["families"]
        means[m]["default_mean_f1"] = _mean(list(means[m]["default_f1_per_city"].values()))
    cva = means.get("cva", {}).get("loo_f1")
    ratios = {f"{m}_over_cva": means[m]["loo_f1"] / cva for m in models if m != "cva" and cva}
    best = max(models, key=lambda m: means[m]["loo_f1"] or 0.0)
    return {
        "protocol": "loo",
        "cities": cities,
        "seeds": seeds,
        "rows": rows,
        "means": means,
        "ratios": ratios,
        "best_model_at_auto": best,
    }


def loo_markdown(doc: dict[str, Any]) -> str:
    def f(v: Any, pct: bool = False) -> str:
        if v is None:
            return "–"
        return f"{100 * v:.2f} %" if pct else f"{v:.3f}"

    lines = [
        "| city | model | F1 auto (LOO) | best F1 | flagged | true | chosen on the other cities |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        chosen = ", ".join(f"{k}={v}" for k, v in r["chosen"].items())
        lines.append(
            f"| {r['city']} | {r['model']} | {f(r['f1'])} | {f(r['best_f1'])} | "
            f"{f(r['flagged'], True)} | {f(r['true_share'], True)} | {chosen} |"
        )
    for m, v in doc["means"].items():
        seeds = " / ".join(f"{x:.3f}" for x in v["loo_f1_per_seed"].values())
        lines.append(
            f"| **mean** | {m} | **{f(v['loo_f1'])}** | {f(v['loo_best_f1'])} | "
            f"{f(v['loo_flagged'], True)} | {f(v['true_share'], True)} | seeds: {seeds} |"
        )
    for k, v in doc["ratios"].items():
        lines.append(f"\n{k.replace('_', ' ')} (LOO mean F1 at auto): {v:.2f}x")
    lines.append("\nLOO mean F1 at auto per rule family (parameters chosen on the other cities):")
    for m, v in doc["means"].items():
        fams = v.get("rule_families", {})
        if len(fams) > 1:
            lines.append(
                f"- {m}: "
                + "; ".join(
                    f"{fam} {x['loo_f1']:.3f} (seeds ±{x['seed_spread'] / 2:.3f})"
                    for fam, x in fams.items()
                )
            )
    lines.append(f"\nbest LOO mean F1 at the automatic threshold: {doc['best_model_at_auto']}")
    return "\n".join(lines)
