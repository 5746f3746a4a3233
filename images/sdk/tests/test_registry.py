"""The one rule for a change-model name (``candela_sdk.registry``): built-in, plug-in or
registered, where it is, and one message for a name that is none of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from candela_sdk import registry
from candela_sdk.errors import InputError


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    for name in ("my-enc", "other"):
        (folder / name).mkdir(parents=True)
        (folder / name / "metadata.json").write_text(json.dumps({"name": name}))
    (folder / "half").mkdir()  # no metadata.json: not a registered model
    monkeypatch.setenv("CANDELA_MODEL_REGISTRY", str(folder))
    return folder


def test_builtin_plugin_and_registered_names(root: Path) -> None:
    assert registry.find_model("cva") == registry.KnownModel("cva", "builtin")
    assert registry.find_model("encoder").kind == "builtin"
    found = registry.find_model("my-enc")
    assert found.kind == "registered" and found.uri == (root / "my-enc").as_uri()
    assert registry.check_model_name("other") == "other"
    assert registry.registered_names() == ["my-enc", "other"]
    assert set(registry.BUILTIN_NAMES) <= set(registry.builtin_names())


@pytest.mark.parametrize("name", ["nosuch", "half", "MY-ENC", "../my-enc", "x; drop", ""])
def test_unknown_names_are_bad_input_with_one_message(root: Path, name: str) -> None:
    with pytest.raises(registry.UnknownModel) as exc:
        registry.find_model(name)
    assert isinstance(exc.value, InputError) and isinstance(exc.value, ValueError)
    assert str(exc.value) == (
        f"unknown change model {name!r}: not built in (cva, encoder, irmad) and not registered "
        f"in {root.as_uri()} (registered: my-enc, other; see `candela models list`)"
    )


def test_registry_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("CANDELA_MODEL_REGISTRY", "CANDELA_STORAGE_ROOT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CANDELA_HOME", str(tmp_path / "home"))
    assert registry.registry_root() == (tmp_path / "home" / "storage" / "models").as_uri()
    assert registry.registry_root("s3://bucket/base") == "s3://bucket/base/models"
    monkeypatch.setenv("CANDELA_STORAGE_ROOT", "s3://b/x")
    assert registry.registry_root() == "s3://b/x/models"
    monkeypatch.setenv("CANDELA_MODEL_REGISTRY", str(tmp_path / "reg"))
    assert registry.registry_root() == (tmp_path / "reg").as_uri()
    assert registry.registered_names() == []  # an absent registry has no model


def test_the_name_rule_imports_nothing_heavy(root: Path) -> None:
    code = (
        "import sys\n"
        "from candela_sdk.registry import find_model\n"
        "find_model('my-enc')\n"
        "print(','.join(m for m in ('tensorflow', 'keras', 'numpy', 'rasterio') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
