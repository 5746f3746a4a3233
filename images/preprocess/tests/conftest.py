"""Fixtures of the preprocess tests (helpers and SAFE builders: ``preprocess_helpers.py``)."""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from preprocess_helpers import BORDEAUX, build_safe_l1c, build_safe_l2a

# --- running the service ------------------------------------------------------------------------


@pytest.fixture
def run_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, Any]]:
    """Run the service through the contract's ``main``; returns (exit code, JSON result)."""
    from candela_preprocess.service import SERVICE
    from candela_sdk.contract import main

    def _run(*argv: Any) -> tuple[int, Any]:
        # the GX quality gate costs seconds per run: it is on only where a test asks for it
        # (tests/test_quality.py); the product default is on
        if not any(str(a) in ("--quality-gate", "--no-quality-gate") for a in argv):
            argv = (*argv, "--no-quality-gate")
        result = tmp_path / f"result-{uuid.uuid4().hex[:6]}.json"
        monkeypatch.setenv("CANDELA_RESULT_PATH", str(result))
        rc = main(SERVICE, [str(a) for a in argv])
        return rc, json.loads(result.read_text())

    return _run


# --- products


@pytest.fixture(scope="session")
def safe_l1c(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_safe_l1c(tmp_path_factory.mktemp("safe_l1c"))


@pytest.fixture(scope="session")
def safe_l2a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_safe_l2a(tmp_path_factory.mktemp("safe_l2a"))


@pytest.fixture
def oscd_copy(tmp_path: Path) -> Path:
    """A writable copy of the Bordeaux date-1 band folder (with its dates.txt)."""
    city = tmp_path / "bordeaux"
    shutil.copytree(BORDEAUX / "imgs_1", city / "imgs_1")
    shutil.copy(BORDEAUX / "dates.txt", city / "dates.txt")
    return city / "imgs_1"
