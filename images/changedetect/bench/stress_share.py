"""Stress check of the encoder's automatic cut where much changed (issue 13).

The encoder trains on the pair at run time; where a large share of the scene changed, its
translators partly learn the change, changed pixels' scores shrink toward the bulk and a
spread-based cut (``robust_z``) flags too little while the score still ranks well. Our five
labelled OSCD cities have 0.3-2.6 % change, so leave-one-city-out cannot show it. This script
simulates cities with much more change: square patches of a city's date 2 are replaced by
date-2 content from elsewhere in the same image (same acquisition, so the radiometry is the
scene's own: land cover A becomes land cover B), their pixels labelled *change* (including the
few where the pasted content happens to look like the original: the true share is an upper
bound of the visible change, for every model alike). Then the encoder (defaults but the cut,
seed 0) and CVA (defaults) are run on the original and the altered pairs and every cut rule is
applied to the same score maps: flagged vs true share, F1 at the automatic cut and the best F1.

    nice .venv/bin/python images/changedetect/bench/stress_share.py --data ../shared/data/oscd \
        --cities nantes,rennes --added 0.04,0.12,0.25 --cache /tmp/candela-stress \
        --output docs/benchmarks/changedetect_stress.json

Score maps are cached per variant in ``--cache`` (the encoder's take about a minute per pair
on 2 cores).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from candela_changedetect import oscd
from candela_changedetect.calibration import log_histogram
from candela_changedetect.evaluate import _score_map, cut_metrics, score_best_f1

RULES: dict[str, dict[str, Any]] = {
    "cva nochange_z 2.5 (CVA shipped)": {"model": "cva", "threshold_rule": "nochange_z", "z": 2.5},
    "cva robust_z 3": {"model": "cva", "threshold_rule": "robust_z", "z": 3.0},
    "cva nochange_z 3": {"model": "cva", "threshold_rule": "nochange_z", "z": 3.0},
    "encoder robust_z 4 (old default)": {"threshold_rule": "robust_z", "z": 4.0},
    "encoder nochange_z 5": {"threshold_rule": "nochange_z", "z": 5.0},
    "encoder share_cva max, own nochange_z 5 (new default)": {
        "threshold_rule": "share_cva", "cva_rule": "nochange_z", "cva_z": 3.0,
        "share_combine": "max", "own_rule": "nochange_z", "z": 5.0,
    },
    "encoder share_cva geomean, own robust_z 4": {
        "threshold_rule": "share_cva", "cva_rule": "robust_z", "cva_z": 2.5,
        "share_combine": "geomean", "share_floor": 0.25, "z": 4.0,
    },
    "encoder share_cva cva (CVA's shipped share)": {
        "threshold_rule": "share_cva", "cva_rule": "nochange_z", "cva_z": 2.5,
        "share_combine": "cva", "z": 4.0,
    },
}  # fmt: skip


def paste(
    after: np.ndarray, labels: np.ndarray, added: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Date 2 with square patches (16-48 px) replaced by date-2 content from elsewhere in the
    image, until about ``added`` of the labelled pixels are newly changed; labels set to 2."""
    out, lab = after.copy(), labels.copy()
    _, h, w = after.shape
    labelled = np.isin(labels, (1, 2))
    target = added * labelled.sum()
    new = 0
    while new < target:
        s = int(rng.integers(16, 49))
        r, c = int(rng.integers(0, h - s)), int(rng.integers(0, w - s))
        for _ in range(100):  # a source far enough away (not overlapping the patch)
            r2, c2 = int(rng.integers(0, h - s)), int(rng.integers(0, w - s))
            if abs(r2 - r) >= 2 * s or abs(c2 - c) >= 2 * s:
                break
        src = after[:, r2 : r2 + s, c2 : c2 + s]
        if np.any(src == 0):  # nodata in the source: try elsewhere
            continue
        out[:, r : r + s, c : c + s] = src
        block = lab[r : r + s, c : c + s]
        new += int(np.sum(block == 1))
        lab[r : r + s, c : c + s] = np.where(np.isin(block, (1, 2)), 2, block)
    return out, lab


def evaluate_pair(
    cache: Path, name: str, before: Path, after: Path, labels: np.ndarray, seed: int
) -> dict[str, Any]:
    enc = _score_map(cache, name, before, after, "encoder", {"seed": seed})
    cva = _score_map(cache, name, before, after, "cva", {})
    cva_hist = log_histogram(cva)
    rows: dict[str, Any] = {}
    for label, rule in RULES.items():
        opts = {k: v for k, v in rule.items() if k != "model"}
        score = cva if rule.get("model") == "cva" else enc
        hist = log_histogram(score)
        use = np.isfinite(score) & np.isin(labels, (1, 2))
        s_use = score[use]
        ref = labels[use] == 2
        u = np.log(np.maximum(s_use.astype(np.float64), 1e-300))
        met = cut_metrics(u, ref, hist, opts, len(oscd.BANDS), cva_hist)
        bf, bflag = score_best_f1(s_use, ref)
        rows[label] = {
            "f1": round(met["f1"], 4),
            "flagged": round(met["flagged"], 5),
            "true_share": round(float(ref.mean()), 5),
            "best_f1": round(bf, 4),
            "best_flagged": round(bflag, 5),
            "rule_applied": met["rule_applied"],
        }
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/oscd")
    ap.add_argument("--cities", default="nantes,rennes")
    ap.add_argument("--added", default="0.04,0.12,0.25", help="shares of newly changed pixels")
    ap.add_argument("--seed", type=int, default=0, help="encoder seed (and paste seed)")
    ap.add_argument("--cache", default="/tmp/candela-stress")
    ap.add_argument("--output", default=None)
    args = ap.parse_args()
    root, cache = Path(args.data), Path(args.cache)
    result: dict[str, Any] = {"seed": args.seed, "rules": RULES, "pairs": {}}
    for city in args.cities.split(","):
        d = root / city
        work = cache / "stacks" / city
        work.mkdir(parents=True, exist_ok=True)
        before, after = work / "before.tif", work / "after.tif"
        if not after.exists():
            oscd.build_stack(d, 1, before)
            oscd.build_stack(d, 2, after, grid_date=None if oscd.same_grid(d) else 1)
        lab_path = oscd.labels_file(d)
        assert lab_path is not None
        with rasterio.open(lab_path) as lds:
            labels = lds.read(1)
        with rasterio.open(after) as ads:
            a = ads.read()
            profile = ads.profile
        variants: list[tuple[str, Path, np.ndarray]] = [(city, after, labels)]
        for added in (float(x) for x in args.added.split(",")):
            name = f"{city}+{round(100 * added)}pct"
            rng = np.random.default_rng(args.seed)
            a2, lab2 = paste(a, labels, added, rng)
            path = work / f"after_{name}.tif"
            if not path.exists():
                with rasterio.open(path, "w", **profile) as out:
                    out.write(a2)
            variants.append((name, path, lab2))
        for name, path, lab in variants:
            rows = evaluate_pair(cache, name, before, path, lab, args.seed)
            result["pairs"][name] = rows
            print(f"\n{name}: true {100 * next(iter(rows.values()))['true_share']:.2f} %")
            for label, r in rows.items():
                print(
                    f"  {label:48s} flagged {100 * r['flagged']:6.2f} %  F1 {r['f1']:.3f}  "
                    f"best F1 {r['best_f1']:.3f}"
                )
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
