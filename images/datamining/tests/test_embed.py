"""The encoder embedding in NumPy gives Keras's numbers (a changedetect encoder saved in a
registry), and the service stores it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psycopg
import pytest

from candela_mine import embed
from candela_mine.service import SERVICE
from candela_sdk.contract import main

pytestmark = pytest.mark.slow  # imports TensorFlow (≈ 10 s)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from candela_changedetect.models.encoder import build_network

    root = tmp_path / "models"
    (root / "enc-test").mkdir(parents=True)
    net = build_network(10, 8, 2)
    net.save(root / "enc-test" / "model.keras")
    (root / "enc-test" / "metadata.json").write_text(json.dumps({"name": "enc-test"}))
    monkeypatch.setenv("CANDELA_MODEL_REGISTRY", str(root))
    return root


def test_numpy_forward_matches_keras(registry: Path) -> None:
    import keras

    enc = embed.load_registered("enc-test")
    assert (enc.bands, enc.halo, enc.size) == (10, 2, 16)
    net = keras.saving.load_model(registry / "enc-test" / "model.keras", compile=False)
    fwd = net.get_layer("forward")
    mix = keras.Model(fwd.inputs, fwd.get_layer("forward_mix").output)
    x = np.random.default_rng(1).normal(size=(20, 24, 10)).astype(np.float32)
    want = np.asarray(mix(x[None]))[0]
    got = enc.activations(x)
    assert got.shape == want.shape == (16, 20, 8)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_the_service_stores_the_embedding(
    registry: Path, stack: str, catalog_dsn: str, tmp_path: Path
) -> None:
    code = main(SERVICE, ["--stack", stack, "--size", "32", "--dsn", catalog_dsn,
                          "--quicklooks", str(tmp_path / "ql"), "--encoder", "enc-test"])  # fmt: skip
    assert code == 0
    with psycopg.connect(catalog_dsn) as conn:
        rows = conn.execute(
            "SELECT col_off, embedding FROM candela.mine_patches ORDER BY row_off, col_off"
        ).fetchall()
    assert len(rows) == 11 and all(len(e) == 16 for _, e in rows)
    # water (west) and forest (east) patches are far apart in the embedding
    water, forest = np.asarray(rows[3][1]), np.asarray(rows[-1][1])
    assert rows[3][0] == 0 and rows[-1][0] == 96
    assert np.linalg.norm(water - forest) > 0.1
