"""`candela notebook` without a platform: what it hands the notebooks, and its refusals.
With a running platform: tests/test_client_platform.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from candela.cli_notebook import CLIENT_VARIABLES, notebook_env
from candela.settings import Settings
from candela_client.config import ClientConfig

REPO = Path(__file__).resolve().parents[1]


def test_env_configures_the_sdk_with_the_platform_s_storage(tmp_path: Path) -> None:
    s = Settings(
        home=tmp_path,
        port=18123,
        airflow_password="pw",
        s3_endpoint_url="http://127.0.0.1:8333",
        s3_access_key_id="k",
        s3_secret_access_key="s",
    )
    env = notebook_env(s)
    assert set(CLIENT_VARIABLES) <= set(env)
    cfg = ClientConfig.from_env(env)
    assert (cfg.url, cfg.username, cfg.password) == ("http://localhost:18123", "admin", "pw")
    assert cfg.s3 is not None and cfg.s3.endpoint_url == "http://127.0.0.1:8333"
    assert (cfg.s3.access_key_id, cfg.s3.secret_access_key) == ("k", "s")
    plain = notebook_env(Settings(home=tmp_path, port=18123, airflow_password="pw"))
    assert not any(k.startswith("CANDELA_S3_") for k in plain)


@pytest.mark.parametrize("args", [["notebook"], ["notebook", "--dry-run"]])
def test_refused_when_the_platform_is_not_running(tmp_path: Path, args: list[str]) -> None:
    from candela.embedded import free_port

    r = subprocess.run(
        [sys.executable, "-m", "candela.cli", *args, "--port", str(free_port())],
        capture_output=True,
        text=True,
        env={"CANDELA_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"},
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 1
    assert "Candela is not running" in r.stderr and "candela up" in r.stderr
