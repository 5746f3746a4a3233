"""Settings: one class read by every package; precedence argument > environment > default."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from candela_sdk import storage
from candela_sdk.processes import group_alive, pid_alive, stop_group
from candela_sdk.settings import SdkSettings, embedded_dsn, platform_dsn


def test_precedence_argument_environment_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANDELA_S3_REGION", raising=False)
    assert SdkSettings().s3_region == "us-east-1"  # default
    monkeypatch.setenv("CANDELA_S3_REGION", "waw3-1")
    assert SdkSettings().s3_region == "waw3-1"  # environment
    assert SdkSettings(s3_region="eu-central-1").s3_region == "eu-central-1"  # argument
    monkeypatch.setenv("CANDELA_S3_REGION", "")  # empty counts as unset
    assert SdkSettings().s3_region == "us-east-1"


def test_the_services_s3_client_reads_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDELA_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("CANDELA_S3_ACCESS_KEY_ID", "")
    monkeypatch.delenv("CANDELA_S3_REGION", raising=False)
    monkeypatch.delenv("CANDELA_S3_SECRET_ACCESS_KEY", raising=False)
    assert storage.s3_settings() == {
        "endpoint_url": "http://127.0.0.1:9",
        "aws_access_key_id": None,
        "aws_secret_access_key": None,
        "region_name": "us-east-1",
    }


def test_storage_root_default_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANDELA_STORAGE_ROOT", raising=False)
    monkeypatch.setenv("CANDELA_HOME", str(tmp_path))
    assert SdkSettings().storage == (tmp_path / "storage").as_uri()
    monkeypatch.setenv("CANDELA_STORAGE_ROOT", "s3://results")
    assert SdkSettings().storage == "s3://results"


def test_platform_dsn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANDELA_DATABASE_URL", raising=False)
    assert embedded_dsn(tmp_path) is None  # no server
    (tmp_path / "pg").mkdir()
    pid_file = tmp_path / "pg" / "postmaster.pid"
    # postmaster.pid: pid, data dir, start time, port, socket dir, …
    pid_file.write_text(f"{os.getpid()}\n{tmp_path}/pg\n0\n5432\n/tmp/sock\n")
    expected = "postgresql://postgres@/candela?host=/tmp/sock"
    assert embedded_dsn(tmp_path) == expected
    assert platform_dsn(SdkSettings(home=tmp_path)) == expected
    # a configured database wins
    assert platform_dsn(SdkSettings(home=tmp_path, database_url="postgresql://db/x")) == (
        "postgresql://db/x"
    )
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pid_file.write_text(f"{dead.pid}\n{tmp_path}/pg\n0\n5432\n/tmp/sock\n")
    assert embedded_dsn(tmp_path) is None


def _group(script: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sh", "-c", script], start_new_session=True, stdout=subprocess.DEVNULL)


def test_stop_group_stops_a_process_and_its_children() -> None:
    proc = _group("sleep 30 & sleep 30 & wait")
    time.sleep(0.2)
    assert group_alive(proc.pid)
    assert stop_group(proc.pid, timeout=5) is True
    assert not group_alive(proc.pid)
    assert not pid_alive(proc.pid)


def test_stop_group_kills_what_ignores_sigterm() -> None:
    proc = _group("trap '' TERM; sleep 30 & wait; sleep 30")
    time.sleep(0.2)
    t0 = time.monotonic()
    assert stop_group(proc.pid, timeout=0.5, alive=lambda: proc.poll() is None) is False
    assert proc.wait(timeout=5) == -9
    assert time.monotonic() - t0 < 5
