"""``candela-fusion train``: a network trained on a patch store, saved (and registered)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from candela_fusion import data as fdata
from candela_fusion.classes import from_json
from candela_fusion.models import metadata_for, register, save
from candela_fusion.train import train

if TYPE_CHECKING:
    from candela_fusion.params import TrainParams


def run_train(params: TrainParams) -> dict[str, Any]:
    from candela_sdk.errors import InputError

    table = from_json(params.classes)
    src = Path(params.data)
    if list(src.glob("*_LabelHand.tif")):
        scene = fdata.floods_scene(src)
        store: dict[str, Any] = fdata.scene_patches(scene, 64)
        described = f"Sen1Floods11 chip {src.name} (64x64 patches)"
    else:
        store = fdata.open_store(src)
        described = f"patch store {src}"
    top = int(max(v for v in store["labels"].reshape(-1)[:1_000_000] if v != fdata.LABEL_NODATA))
    if top >= len(table.classes):
        raise InputError(
            f"labels go up to {top} but class table {table.name!r} has {len(table.classes)} classes"
        )
    cloud = None
    if params.clouds:
        from candela_fusion.evaluate import CLOUD_ROI

        cloud = fdata.cloud_field(params.clouds, (512, 512), CLOUD_ROI)
    net, norm, record = train(
        store,
        params.model,
        len(table.classes),
        epochs=params.epochs,
        batch=params.batch,
        seed=params.seed,
        cloud=cloud,
        width=params.width,
    )
    record["data"] = described
    meta = metadata_for(
        params.register_as or params.model, params.model, "pixel", table, norm, record
    )
    with tempfile.TemporaryDirectory() as tmp:
        saved = save(tmp, net, meta)
        out = Path(params.output)
        out.mkdir(parents=True, exist_ok=True)
        for f in ("model.keras", "metadata.json"):
            (out / f).write_bytes((Path(tmp) / f).read_bytes())
        registered = register(params.register_as, tmp) if params.register_as else None
    return {
        "model": str(Path(params.output) / "model.keras"),
        "sha256": saved["sha256"],
        "training": record,
        "registered": registered["uri"] if registered else None,
    }
