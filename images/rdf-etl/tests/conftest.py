from __future__ import annotations

from pathlib import Path

import pytest

from tests.kb_helpers import make_change_result


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh CANDELA_HOME (embedded knowledge base under home/kb)."""
    h = tmp_path / "home"
    monkeypatch.setenv("CANDELA_HOME", str(h))
    monkeypatch.delenv("CANDELA_KB_ENDPOINT", raising=False)
    return h


@pytest.fixture
def change_result(tmp_path) -> dict:
    return make_change_result(tmp_path)
