"""Evaluation table: every model side by side on OSCD cities (``docs/benchmarks/changedetect_oscd.json``).

    .venv/bin/python images/changedetect/bench/evaluate_oscd.py --data ../shared/data/oscd \
        --report bordeaux,rennes,saclay_e --tuning nantes,paris --output docs/benchmarks/changedetect_oscd.json

For each city and model: ``candela-changedetect detect --threshold auto`` then
``candela-changedetect evaluate`` (precision, recall, F1, IoU, kappa at the automatic
threshold), plus the best F1 over all probability thresholds (from change_probability.tif), so
thresholding and score can be judged apart. Cities in ``--tuning`` were used to choose the
encoder's design and options; the means that count are over ``--report`` cities only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import io
import json
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from candela_changedetect.cli import dispatch

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("cd_conftest", HERE.parent / "tests" / "conftest.py")
assert spec and spec.loader
conftest = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conftest)

MODELS = ["cva", "irmad", "encoder"]
KEYS = ("precision", "recall", "f1", "iou", "kappa")


def _run(argv: list[str]) -> tuple[int, dict[str, Any]]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = dispatch(argv)
    return code, json.loads(buf.getvalue().strip().splitlines()[-1])


def best_f1(prob_path: Path, labels: Path) -> tuple[float, float]:
    """Best F1 over all thresholds of the change probability, and that threshold."""
    with rasterio.open(prob_path) as p, rasterio.open(labels) as lab:
        prob = p.read(1)
        ref = lab.read(1)
    use = (prob >= 0) & ((ref == 1) | (ref == 2))
    pr, rf = prob[use].astype(np.float64), ref[use] == 2
    order = np.argsort(-pr, kind="stable")
    tp = np.cumsum(rf[order])
    k = np.arange(1, len(order) + 1)
    f1 = 2 * tp / (k + rf.sum())
    i = int(np.argmax(f1))
    return float(f1[i]), float(pr[order][i])


def _same_grid(city_dir: Path) -> bool:
    grids = []
    for date in (1, 2):
        with rasterio.open(next((city_dir / f"imgs_{date}").glob("*_B02.tif"))) as src:
            grids.append((src.shape, src.crs, src.transform))
    return grids[0] == grids[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/oscd")
    ap.add_argument("--report", default="bordeaux,rennes,saclay_e")
    ap.add_argument("--tuning", default="nantes,paris")
    ap.add_argument("--output", default="docs/benchmarks/changedetect_oscd.json")
    ap.add_argument("--models", default=",".join(MODELS), help="models to run (comma list)")
    ap.add_argument(
        "--encoder-options", default=None, help="JSON --model-options for the encoder (experiments)"
    )
    ap.add_argument("--stacks", default=None, help="folder to keep the built stacks in (reuse)")
    args = ap.parse_args()
    report = [c for c in args.report.split(",") if c]
    tuning = [c for c in args.tuning.split(",") if c]
    models = args.models.split(",")
    aligned: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for city in report + tuning:
        d = Path(args.data) / city
        labels = next((d / "cm").glob("*-cm.tif"))
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            keep = Path(args.stacks) / city if args.stacks else t
            keep.mkdir(parents=True, exist_ok=True)
            before, after = keep / "before.tif", keep / "after.tif"
            grid_date = None
            if not _same_grid(d):
                # the dates are on different grids (saclay_e): align date 2 onto date 1, whose
                # grid the labels use — what `candela-preprocess --grid-like` does
                grid_date = 1
                aligned[city] = "date 2 resampled (bilinear) onto the B02 grid of date 1"
            if not before.exists():
                conftest.build_oscd_stack(d, 1, before)
            if not after.exists():
                conftest.build_oscd_stack(d, 2, after, grid_date=grid_date)
            for model in models:
                out = t / model
                extra = []
                if model == "encoder" and args.encoder_options:
                    extra = ["--model-options", args.encoder_options]
                code, res = _run(
                    ["detect", "--before", str(before), "--after", str(after), "--model", model,
                     "--output", str(out), *extra]
                )  # fmt: skip
                if code:
                    rows.append({"city": city, "model": model, "error": res.get("error")})
                    continue
                code, ev = _run(
                    ["evaluate", "--prediction", str(out / "change_mask.tif"),
                     "--labels", str(labels)]
                )  # fmt: skip
                m = ev["metrics"]
                bf, bt = best_f1(out / "change_probability.tif", labels)
                row = {
                    "city": city,
                    "role": "report" if city in report else "tuning",
                    "model": model,
                    **{k: m[k] for k in KEYS},
                    "best_f1": bf,
                    "best_threshold": bt,
                    "flagged": res["changed_fraction"],
                    "seconds": res["seconds"],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    means: dict[str, Any] = {}
    for group, cities in (("report", report), ("all", report + tuning)):
        means[group] = {}
        for model in models:
            sel = [r for r in rows if r["model"] == model and r["city"] in cities and "f1" in r]
            means[group][model] = {
                k: float(np.mean([r[k] for r in sel])) for k in (*KEYS, "best_f1", "flagged")
            }
        if "cva" in models and "encoder" in models:
            cva = means[group]["cva"]["f1"]
            means[group]["encoder_over_cva"] = means[group]["encoder"]["f1"] / cva if cva else None
    doc = {
        "benchmark": "changedetect OSCD accuracy (threshold auto; best_f1 over all thresholds)",
        "date": dt.date.today().isoformat(),
        "data": "OSCD, 10 bands B02 B03 B04 B08 B05 B06 B07 B8A B11 B12 resampled onto B02",
        "report_cities": report,
        "tuning_cities": tuning,
        "aligned": aligned,
        "models": {
            m: (args.encoder_options if m == "encoder" and args.encoder_options else "defaults")
            for m in models
        },
        "machine": f"{platform.processor() or platform.machine()}, CPU only (no GPU)",
        "rows": rows,
        "means": means,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(doc, indent=2) + "\n")
    print("| city | role | model | precision | recall | F1 | best F1 | IoU | kappa | flagged |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "f1" in r:
            print(
                f"| {r['city']} | {r['role']} | {r['model']} | {r['precision']:.3f} | "
                f"{r['recall']:.3f} | {r['f1']:.3f} | {r['best_f1']:.3f} | {r['iou']:.3f} | "
                f"{r['kappa']:.3f} | {r['flagged']:.3f} |"
            )
    for group in means:
        for model in models:
            m = means[group][model]
            print(
                f"| mean ({group}) | | {model} | {m['precision']:.3f} | {m['recall']:.3f} | "
                f"{m['f1']:.3f} | {m['best_f1']:.3f} | {m['iou']:.3f} | {m['kappa']:.3f} | "
                f"{m['flagged']:.3f} |"
            )


if __name__ == "__main__":
    main()
