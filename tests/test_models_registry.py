"""Model registry: ``candela models register|list|show`` against the real platform database,
and running a registered encoder by name with the changedetect service (folder and S3)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from candela.cli_models import app

REPO = Path(__file__).resolve().parents[1]
BANDS = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12"]
FAST: dict[str, Any] = {"epochs": 2, "patches": 64, "patch_size": 16, "features": 8, "depth": 2}

spec = importlib.util.spec_from_file_location(
    "cd_conftest", REPO / "images" / "changedetect" / "tests" / "conftest.py"
)
assert spec and spec.loader
cd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cd)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny encoder trained on a synthetic pair, saved as .keras, and the pair's stacks."""
    from candela_changedetect.blocks import ArrayPair
    from candela_changedetect.models.encoder import EncoderModel, EncoderOptions

    folder = tmp_path_factory.mktemp("trained")
    before, after, _ = cd.synthetic_pair(size=64, square=(20, 40, 20, 40))
    model = EncoderModel(EncoderOptions(**FAST))
    model.fit(ArrayPair(before, after, band_names=BANDS))
    model.save(str(folder / "tiny.keras"))
    return {
        "keras": folder / "tiny.keras",
        "before": cd.write_stack(folder / "before.tif", before),
        "after": cd.write_stack(folder / "after.tif", after),
        "before_reordered": cd.write_stack(
            folder / "before_r.tif", before[::-1].copy(), band_names=BANDS[::-1]
        ),
        "after_reordered": cd.write_stack(
            folder / "after_r.tif", after[::-1].copy(), band_names=BANDS[::-1]
        ),
    }


def _detect(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    from candela_changedetect.cli import dispatch

    code = dispatch(["detect", *argv])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_register_list_show_and_run_by_name(
    catalog_dsn: str,
    trained: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CANDELA_DATABASE_URL", catalog_dsn)
    monkeypatch.setenv("CANDELA_MODEL_REGISTRY", str(tmp_path / "registry"))
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    bands = ",".join(BANDS)

    res = runner.invoke(app, ["register", "tiny-enc", str(trained["keras"]), "--bands", bands,
                              "--description", "test model", "--training", '{"cities": ["synthetic"]}'])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0 and "tiny-enc" in res.output and "test model" in res.output
    res = runner.invoke(app, ["show", "tiny-enc"])
    assert res.exit_code == 0, res.output
    record = json.loads(res.output)
    assert record["bands"] == BANDS and record["training"] == {"cities": ["synthetic"]}
    assert len(record["sha256"]) == 64 and record["normalisation"].startswith("per date")
    assert (tmp_path / "registry" / "tiny-enc" / "model.keras").is_file()

    # bad registrations: wrong band count, built-in name, not a model, unknown name
    res = runner.invoke(app, ["register", "other", str(trained["keras"]), "--bands", "B02,B03"])
    assert res.exit_code == 2 and "model takes 10 input bands" in res.output
    res = runner.invoke(app, ["register", "cva", str(trained["keras"]), "--bands", bands])
    assert res.exit_code == 2 and "built-in" in res.output
    res = runner.invoke(app, ["register", "junk", str(trained["before"]), "--bands", bands])
    assert res.exit_code == 2 and "not a loadable .keras model" in res.output
    assert runner.invoke(app, ["show", "nope"]).exit_code == 2

    # run by name: pretrained weights (registered options + fine-tuning from --model-options)
    out = tmp_path / "out"
    code, result = _detect(
        ["--before", str(trained["before"]), "--after", str(trained["after"]),
         "--model", "tiny-enc", "--output", str(out)],
        capsys,
    )  # fmt: skip
    assert code == 0, result
    assert result["model"] == "tiny-enc"
    item = json.loads((out / "item.json").read_text())
    assert item["properties"]["candela:model_digest"] == record["sha256"]
    fit = item["properties"]["candela:model_fit"]
    assert fit["registered"]["name"] == "tiny-enc" and fit["options"]["mode"] == "pretrained"
    assert len(fit["train_loss"]) == 2  # fine-tuned 2 epochs on the pair by default

    # the model's bands are not the input's order -> clear error, nothing written
    bad = tmp_path / "bad"
    code, result = _detect(
        ["--before", str(trained["before_reordered"]), "--after", str(trained["after_reordered"]),
         "--model", "tiny-enc", "--output", str(bad)],
        capsys,
    )  # fmt: skip
    assert code == 2 and "expects the bands B02,B03" in result["error"]
    assert not bad.exists()

    # a file changed after registration -> digest mismatch
    stored = tmp_path / "registry" / "tiny-enc" / "model.keras"
    stored.write_bytes(stored.read_bytes() + b"x")
    code, result = _detect(
        ["--before", str(trained["before"]), "--after", str(trained["after"]),
         "--model", "tiny-enc", "--output", str(tmp_path / "o2")],
        capsys,
    )  # fmt: skip
    assert code == 2 and "digest mismatch" in result["error"]


def test_registry_on_s3(
    s3_server: Any, trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from candela_changedetect import registry

    monkeypatch.setenv("CANDELA_MODEL_REGISTRY", "s3://candela/models-test")
    rec = registry.register("s3-enc", trained["keras"], bands=BANDS)
    assert rec["uri"] == "s3://candela/models-test/s3-enc/model.keras"
    assert registry.names() == ["s3-enc"]
    code, result = _detect(
        ["--before", str(trained["before"]), "--after", str(trained["after"]),
         "--model", "s3-enc", "--output", str(tmp_path / "o"), "--model-options", '{"epochs": 1}'],
        capsys,
    )  # fmt: skip
    assert code == 0, result
    fit = json.loads((tmp_path / "o" / "statistics.json").read_text())["model_fit"]
    assert fit["registered"]["sha256"] == rec["sha256"] and len(fit["train_loss"]) == 1
    assert np.isfinite(fit["score_threshold"])
