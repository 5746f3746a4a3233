"""Where each model runs (CPU or GPU): the one declaration the pods, the pools and the images
follow (``candela_sdk.registry.MODEL_DEVICES``, ``Service.device_for``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from candela_sdk.registry import BUILTIN_NAMES, MODEL_DEVICES, UnknownModel, model_device
from candela_sdk.services import get_service


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "models"
    for name, meta in {
        "tuned-enc": {"architecture": "encoder"},  # a fine-tuned encoder: where the encoder runs
        "big-fused": {"service": "fusion", "architecture": "fusion-fused", "device": "gpu"},
        "small-s2": {"service": "fusion", "architecture": "fusion-s2"},
        "cpu-enc": {"architecture": "encoder", "device": "cpu"},
    }.items():
        (root / name).mkdir(parents=True)
        (root / name / "metadata.json").write_text(json.dumps({"name": name, **meta}))
    monkeypatch.setenv("CANDELA_MODEL_REGISTRY", str(root))
    return root


def test_every_builtin_model_has_a_device() -> None:
    import typing

    from candela_fusion.params import TrainParams  # its networks (nets.KINDS, without Keras)

    assert set(MODEL_DEVICES["changedetect"]) == set(BUILTIN_NAMES)
    kinds = typing.get_args(TrainParams.model_fields["model"].annotation)
    assert set(MODEL_DEVICES["fusion"]) == set(kinds) == {"s2", "s1", "fused"}
    assert [m for m, d in MODEL_DEVICES["changedetect"].items() if d == "gpu"] == ["encoder"]


def test_registered_models_run_where_their_metadata_says(registry: Path) -> None:
    assert model_device("changedetect", "tuned-enc") == "gpu"
    assert model_device("changedetect", "cpu-enc") == "cpu"
    assert model_device("fusion", "big-fused") == "gpu"
    assert model_device("fusion", "small-s2") == "cpu"
    with pytest.raises(UnknownModel):
        model_device("changedetect", "nosuch")


def test_a_step_runs_on_a_gpu_only_with_a_gpu_model(registry: Path) -> None:
    detect, fusion = get_service("changedetect"), get_service("fusion")
    args = {"before": "a.tif", "after": "b.tif", "output": "out"}
    assert detect.device_for({**args, "model": "encoder"}) == "gpu"
    assert detect.device_for({**args, "model": "cva"}) == "cpu"
    assert detect.device_for({**args, "model": "irmad"}) == "cpu"
    assert detect.device_for({**args, "model": "tuned-enc"}) == "gpu"
    assert fusion.device_for({"optical": "o", "radar": "r", "output": "x"}) == "cpu"  # fused
    assert fusion.device_for({"optical": "o", "radar": "r", "output": "x", "model": "big-fused"}) == "gpu"  # fmt: skip
    # services without GPUs, or without a model, never ask for one
    assert get_service("preprocess").device_for({"product": "p", "output": "o.tif"}) == "cpu"
    from candela_changedetect.service import EVALUATE

    assert EVALUATE.resources.gpu == 0 and EVALUATE.device_for({}) == "cpu"


def test_a_cpu_only_cluster_runs_gpu_models_on_cpu(
    registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CANDELA_GPU=false (infra/k8s/overlays/cpu): nothing asks for a GPU, unknown models are
    still refused."""
    detect = get_service("changedetect")
    args = {"before": "a.tif", "after": "b.tif", "output": "out"}
    monkeypatch.setenv("CANDELA_GPU", "false")
    assert detect.device_for({**args, "model": "encoder"}) == "cpu"
    assert detect.device_for({**args, "model": "tuned-enc"}) == "cpu"
    with pytest.raises(UnknownModel):
        detect.device_for({**args, "model": "nosuch"})
    monkeypatch.setenv("CANDELA_GPU", "true")
    assert detect.device_for({**args, "model": "encoder"}) == "gpu"
