"""Train the built-in models (s2, s1, fused) shipped in candela_fusion/weights/.

Pixel models on the ``water`` class table, trained on the whole Sen1Floods11 chip of data/fusion
(the only pixel-labelled S1+S2 reference here) with the fused network's optical dropout drawn
from the real SEN12MS-CR cloud field. They demonstrate the code path (classify, the pipeline
step, the demo); they are not validated products: the held-out figures come from
``candela-fusion evaluate`` (docs/benchmarks/fusion_evaluation.md), which trains its own models
per fold and never uses these weights.

    .venv/bin/python images/fusion/bench/train_builtin.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from candela_fusion import data as fdata
from candela_fusion.classes import WATER
from candela_fusion.evaluate import CLOUD_ROI
from candela_fusion.models import WEIGHTS, metadata_for, save
from candela_fusion.train import train

REPO = Path(__file__).resolve().parents[3]
FLOODS = REPO / "data/fusion/sen1floods11"
CLOUDS = REPO / "data/fusion/sen12mscr"


def main() -> None:
    scene = fdata.floods_scene(FLOODS)
    store = fdata.scene_patches(scene, 64)
    field = fdata.cloud_field(CLOUDS, scene.labels.shape, CLOUD_ROI)
    for kind in ("s2", "s1", "fused"):
        net, norm, record = train(
            store,
            kind,
            len(WATER.classes),
            epochs=8,
            seed=0,
            cloud=field if kind == "fused" else None,
        )
        record["data"] = "Sen1Floods11 Spain_7370579 (whole chip, 64x64 patches)"
        meta = metadata_for(kind, kind, "pixel", WATER, norm, record)
        meta["description"] = (
            "built-in demonstration model: trained on one chip; see docs/benchmarks for held-out "
            "figures of the same recipe"
        )
        with tempfile.TemporaryDirectory() as tmp:
            save(tmp, net, meta)
            target = WEIGHTS / kind
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for f in ("model.keras", "metadata.json"):
                shutil.copy(Path(tmp) / f, target / f)
        print(kind, record["seconds"], "s", record["final_loss"])


if __name__ == "__main__":
    main()
