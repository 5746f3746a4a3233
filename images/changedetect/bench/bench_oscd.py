"""Accuracy of the change models on OSCD cities (the numbers in the README).

    .venv/bin/python images/changedetect/bench/bench_oscd.py data/oscd/bordeaux [CITY_DIR ...]

Builds a 10-band stack per date with the tests' helper (bands resampled onto B02's grid), runs
``candela-changedetect detect`` and ``evaluate`` for each model (and a few model options), and
prints one row per run: precision, recall, F1, IoU, kappa and the flagged share of the scene.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

from candela_changedetect.cli import dispatch
from candela_changedetect.oscd import build_stack

RUNS = [
    ("cva", {}),
    ("cva", {"threshold_rule": "otsu"}),
    ("cva", {"standardise": "per_date"}),
    ("irmad", {}),
    ("irmad", {"threshold_rule": "chi2", "alpha": 0.01}),
    ("irmad", {"ridge": 0.0, "max_iterations": 30}),
]


def _run(argv: list[str]) -> tuple[int, dict]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = dispatch(argv)
    return code, json.loads(buf.getvalue().strip().splitlines()[-1])


def main(cities: list[str]) -> None:
    print("| city | model | options | precision | recall | F1 | IoU | kappa | flagged | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for city in map(Path, cities):
        labels = next((city / "cm").glob("*-cm.tif"))
        with tempfile.TemporaryDirectory() as tmp:
            t = Path(tmp)
            before = build_stack(city, 1, t / "before.tif")
            after = build_stack(city, 2, t / "after.tif")
            for i, (model, options) in enumerate(RUNS):
                out = t / f"run{i}"
                code, res = _run(
                    ["detect", "--before", str(before), "--after", str(after), "--model", model,
                     "--output", str(out), "--model-options", json.dumps(options)]
                )  # fmt: skip
                if code:
                    print(f"| {city.name} | {model} | {options} | failed: {res.get('error')} |")
                    continue
                code, ev = _run(
                    [
                        "evaluate",
                        "--prediction",
                        str(out / "change_mask.tif"),
                        "--labels",
                        str(labels),
                    ]
                )
                m = ev["metrics"]
                print(
                    f"| {city.name} | {model} | {json.dumps(options) if options else 'default'} | "
                    f"{m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['iou']:.3f} | "
                    f"{m['kappa']:.3f} | {res['changed_fraction']:.3f} | {res['seconds']:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main(sys.argv[1:] or ["data/oscd/bordeaux"])
