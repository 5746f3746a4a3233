"""Leave-one-city-out evaluation of every model on the labelled OSCD cities
(``docs/benchmarks/changedetect_oscd.json``).

    .venv/bin/python images/changedetect/bench/evaluate_oscd.py --data ../shared/data/oscd \
        --cache /tmp/candela-oscd-cache --output docs/benchmarks/changedetect_oscd.json \
        [--pretrained montpellier.keras]

A wrapper around ``candela-changedetect evaluate --labels DIR --protocol loo`` that passes the
grid of settings compared (IR-MAD ridge; encoder epochs and, with ``--pretrained``, weights
pre-trained on unlabelled pairs by ``train.py``), the encoder seeds, and adds the benchmark's
metadata. Every choice is made by leave-one-city-out: each city is scored with the cut rule,
its parameter and the setting that did best on the other cities; the LOO mean is the headline.
Score maps are cached in ``--cache`` (the encoder's take minutes per city on 2 cores; cut rules
are then compared in seconds).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import platform
from pathlib import Path
from typing import Any

from candela_changedetect.cli import dispatch

PROTOCOL = (
    "leave-one-city-out over the labelled cities: for each held-out city, the automatic-cut "
    "rule and its parameter (calibration.CANDIDATES; chi2 alpha for IR-MAD; share_cva rules for "
    "the encoder, calibration.SHARE_CANDIDATES) and the settings "
    "of --grid are chosen by the best mean F1 at the automatic threshold over the other cities "
    "(and seeds), then applied to the held-out city. 'final_choice' is the same choice made on "
    "all cities: what the models ship as defaults (so figures of the defaults on these cities "
    "are not independent; the LOO figures are). 'rule_families': the same within each rule "
    "family (the rule fixed, its parameters and settings chosen per fold)."
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/oscd")
    ap.add_argument("--models", default="cva,irmad,encoder")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--cache", default="/tmp/candela-oscd-cache")
    ap.add_argument("--pretrained", default=None, help="encoder weights from train.py")
    ap.add_argument("--output", default="docs/benchmarks/changedetect_oscd.json")
    args = ap.parse_args()
    grid: dict[str, Any] = {
        "irmad": [{"ridge": 0.01}, {"ridge": 0.03}, {"ridge": 0.1}],
        "encoder": [{"epochs": 4}, {"epochs": 8}],
    }
    if args.pretrained:
        grid["encoder"].append(
            {"epochs": 4, "mode": "pretrained", "weights": args.pretrained, "refine_epochs": 2}
        )
    grid = {m: v for m, v in grid.items() if m in args.models.split(",")}
    out = Path(args.cache) / "loo.json"
    argv = [
        "evaluate", "--labels", args.data, "--protocol", "loo", "--models", args.models,
        "--seeds", args.seeds, "--grid", json.dumps(grid), "--cache", args.cache,
        "--output", str(out),
    ]  # fmt: skip
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = dispatch(argv)
    if code:
        raise SystemExit(f"evaluate failed ({code}): {buf.getvalue().strip()}")
    doc = json.loads(out.read_text())
    doc = {
        "benchmark": "changedetect OSCD accuracy, leave-one-city-out (F1 at the automatic "
        "threshold; best_f1 over all thresholds of the same score)",
        "command": "candela-changedetect evaluate --labels DIR --protocol loo "
        "(via images/changedetect/bench/evaluate_oscd.py)",
        "date": dt.date.today().isoformat(),
        "data": "OSCD (Daudt et al. 2018), 10 bands B02 B03 B04 B08 B05 B06 B07 B8A B11 B12 "
        "resampled onto B02; saclay_e date 2 aligned onto date 1's grid",
        "machine": f"{platform.processor() or platform.machine()}, CPU only (no GPU)",
        "protocol_text": PROTOCOL,
        **doc,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(doc, indent=2) + "\n")
    print((Path(args.cache) / "loo.md").read_text())


if __name__ == "__main__":
    main()
