"""Quality-gate cost benchmark (not a test): the demo stacks (OSCD Bordeaux, both dates)
preprocessed by the real ``candela-preprocess`` CLI, each in its own process as a DAG task runs
it, with the gate and without it (``--no-quality-gate``); the gate's overhead is the difference.

Each call records wall time and the child's CPU time (user + sys: less sensitive to a busy
machine than wall time). ``--label`` files the figures under ``before`` or ``after`` in one
JSON; once both are there, ``ratio`` compares the gate overheads (before / after).

    .venv/bin/python -m tests.benchmarks.quality_gate --label after [--repeat 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform as host
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BORDEAUX = REPO / "data" / "oscd" / "bordeaux"
CLI = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "candela-preprocess"


def products() -> list[str]:
    from candela_search import ingest

    return [r.href for r in sorted(ingest.recognise(BORDEAUX).records, key=lambda r: r.datetime)]


def one(product: str, out: Path, gate: bool) -> dict[str, float]:
    """One preprocess call in its own process: wall and CPU seconds."""
    argv = [str(CLI), "--product", product, "--output", str(out)]
    if not gate:
        argv.append("--no-quality-gate")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"preprocess failed ({r.returncode}): {r.stderr[-2000:]}")
    result = json.loads(r.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    gate_s = ((result.get("quality_gate") or {}).get("seconds")) if gate else None
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "gate_reported_s": gate_s}


def measure(repeat: int) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="candela-gate-bench-") as tmp:
        for i, product in enumerate(products()):
            for gate in (False, True):
                for k in range(repeat):
                    out = Path(tmp) / f"{i}-{gate}-{k}" / "stack.tif"
                    rows.append({"stack": i, "gate": gate, **one(product, out, gate)})
                    shutil.rmtree(out.parent, ignore_errors=True)

    def total(gate: bool, key: str) -> float:
        return round(sum(r[key] for r in rows if r["gate"] is gate) / repeat, 3)

    summary = {
        key: {
            "without_gate": total(False, key),
            "with_gate": total(True, key),
            "gate_overhead": round(total(True, key) - total(False, key), 3),
        }
        for key in ("wall_s", "cpu_s")
    }
    return {"calls": rows, "demo_stacks_total": summary, "repeat": repeat}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", choices=("before", "after"), required=True)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", default=str(REPO / "docs/benchmarks/quality_gate.json"))
    args = ap.parse_args()
    out = Path(args.out)
    doc: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    doc["what"] = (
        "preprocess of the two demo stacks (OSCD Bordeaux) by the candela-preprocess CLI, one "
        "process per stack, with and without the quality gate; seconds summed over both stacks"
    )
    doc[args.label] = {
        **measure(args.repeat),
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
        ).stdout.strip(),
        "host": {"cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2),
                 "python": host.python_version()},
    }  # fmt: skip
    if "before" in doc and "after" in doc:

        def gate_s(label: str) -> float:
            return sum(c["gate_reported_s"] or 0 for c in doc[label]["calls"] if c["gate"])

        b, a = doc["before"]["demo_stacks_total"], doc["after"]["demo_stacks_total"]
        doc["ratio"] = {
            "note": "before / after; the gate's overhead after is within the noise of two "
            "preprocess calls, so the gate's own seconds (as it reports them) are compared",
            "gate_seconds_reported": round(gate_s("before") / max(gate_s("after"), 1e-3), 1),
            "gate_seconds_reported_before_after": [
                round(gate_s("before"), 3),
                round(gate_s("after"), 3),
            ],
            "with_gate_cpu_s": round(b["cpu_s"]["with_gate"] / a["cpu_s"]["with_gate"], 2),
            "with_gate_wall_s": round(b["wall_s"]["with_gate"] / a["wall_s"]["with_gate"], 2),
        }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(
        json.dumps(
            {k: doc[k] for k in doc if k in ("ratio",)} or doc[args.label]["demo_stacks_total"],
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
