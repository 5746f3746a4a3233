"""Training from a patch store, the registry round trip, class tables and the metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from candela_fusion import data as fdata
from candela_fusion.classes import BEN19, WATER, ben19_labels, check_matches, from_json
from candela_fusion.cli import dispatch
from candela_fusion.evaluate import confusion, scores
from candela_sdk.errors import InputError

REPO = Path(__file__).resolve().parents[3]
FLOODS = REPO / "data" / "fusion" / "sen1floods11"
CLOUDS = REPO / "data" / "fusion" / "sen12mscr"


def test_class_tables() -> None:
    assert len(BEN19.classes) == 19 and BEN19.classes[17].corine == ("511", "512")
    assert ben19_labels(["Water bodies", "Airports", "Pastures"]) == ["Pastures", "Inland waters"]
    with pytest.raises(InputError, match="unknown BigEarthNet label"):
        ben19_labels(["Lava"])
    assert from_json(json.dumps(WATER.to_json())) == WATER
    with pytest.raises(InputError, match="values must be 0..1"):
        from_json({"classes": [{"value": 1, "name": "a", "color": "#000000"}] * 2})
    with pytest.raises(InputError, match="predicts 2 classes"):
        check_matches(BEN19, WATER, "fused")


def test_real_cloud_masks_have_the_asked_share() -> None:
    field = fdata.cloud_field(CLOUDS, (512, 512), "ROIs1970_fall_139_p839")
    for share in (0.3, 0.6, 0.9):
        assert fdata.cloud_mask(field, share).mean() == pytest.approx(share, abs=0.01)
    # a real cloud is made of large connected blobs, not salt-and-pepper noise: neighbours agree
    m = fdata.cloud_mask(field, 0.3)
    assert (m[:, 1:] == m[:, :-1]).mean() > 0.97


def test_metrics() -> None:
    truth = np.array([0, 0, 1, 1, 1])
    pred = np.array([0, 1, 1, 1, 255], np.uint8)
    cm = confusion(truth, pred, 2)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 1]]
    s = scores(cm, ["Land", "Water"])
    assert s["overall_accuracy"] == 0.6 and s["coverage"] == 0.8
    assert s["f1"]["Water"] == pytest.approx(2 * 2 / (3 + 3), abs=1e-4)


def test_train_register_and_load(tmp_path, monkeypatch, capsys) -> None:

    monkeypatch.setenv("CANDELA_MODEL_REGISTRY", str(tmp_path / "registry"))
    scene = fdata.floods_scene(FLOODS)
    p = fdata.scene_patches(scene, 32, slice(0, 64))
    store = fdata.write_store(tmp_path / "store", p["optical"], p["radar"], p["labels"])
    code = dispatch([
        "train", "--data", str(store), "--model", "s1", "--epochs", "1",
        "--output", str(tmp_path / "m"), "--register-as", "my-radar",
    ])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    meta = json.loads((tmp_path / "registry" / "my-radar" / "metadata.json").read_text())
    assert meta["service"] == "fusion" and meta["kind"] == "s1"
    assert meta["training"]["patches"] == 32 and meta["training"]["patches_per_second"] > 0
    from candela_fusion.models import available, load

    assert "my-radar" in available()
    bundle = load("my-radar")
    assert bundle.kind == "s1" and bundle.classes == WATER
    # a tampered file is refused
    f = tmp_path / "registry" / "my-radar" / "model.keras"
    f.write_bytes(f.read_bytes() + b"x")
    with pytest.raises(InputError, match="digest mismatch"):
        load("my-radar")


def test_store_is_checked(tmp_path) -> None:
    with pytest.raises(InputError, match="not a patch store"):
        fdata.open_store(tmp_path)


def test_bigearthnet_pairs_reader() -> None:
    from candela_fusion.evaluate import bigearthnet_pairs

    (pair,) = bigearthnet_pairs(REPO / "data" / "bigearthnet", None)
    assert pair["optical"].shape == (120, 120, 10) and pair["radar"].shape == (120, 120, 2)
    assert pair["country"] == "Austria" and not pair["spoiled"]
    # v1 CORINE labels mapped to BigEarthNet-19
    assert pair["labels"] == [
        "Arable land",
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
    ]
    assert 0 < float(pair["optical"].mean()) < 1 and float(pair["radar"].mean()) < 0


@pytest.mark.slow
def test_pixel_evaluation_runs_held_out_under_clouds() -> None:
    """The evaluation protocol end to end with one epoch (the committed table uses 6)."""
    from candela_fusion.evaluate import pixel_evaluation

    report = pixel_evaluation(FLOODS, CLOUDS, epochs=1, shares=(0.0, 0.9))
    res = report["results"]
    assert set(res) == {"s2", "s2_unmasked", "s1", "fused"}
    # radar does not see clouds; the masked S2 product loses the clouded pixels; fused keeps all
    assert res["s1"]["0%"]["overall_accuracy"] == res["s1"]["90%"]["overall_accuracy"]
    assert res["s2"]["90%"]["coverage"] == pytest.approx(0.1, abs=0.02)
    assert res["fused"]["90%"]["coverage"] == 1.0
    labelled = res["s1"]["0%"]["pixels"]
    assert labelled == sum(map(sum, res["fused"]["90%"]["confusion_matrix"]))
    assert len(report["training"]) == 12  # 4 folds x 3 networks
