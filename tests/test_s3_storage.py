"""The SDK's storage layer against a real S3 server (SeaweedFS on loopback)."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from candela import s3server
from candela_sdk import storage
from candela_sdk.errors import InputError, OutputError


def _prefix() -> str:
    return f"s3://candela/t-{uuid.uuid4().hex[:8]}"


def test_server_listens_on_loopback_only(s3_server: s3server.S3Server) -> None:
    import psutil

    ports = [
        c.laddr
        for c in psutil.Process(s3_server.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert ports, "SeaweedFS listens on nothing"
    assert {a.ip for a in ports} == {"127.0.0.1"}
    assert s3_server.port in {a.port for a in ports}


def test_round_trip_atomic_write(s3_server: s3server.S3Server) -> None:
    base = _prefix()
    uri = f"{base}/a/b.txt"
    assert not storage.exists(uri)
    storage.write_text(uri, "hello")
    assert storage.read_text(uri) == "hello"
    assert storage.exists(uri)
    assert storage.exists(f"{base}/a")  # a prefix with objects is a folder
    # the temporary key of the upload is gone: only the final object is listed
    keys = [
        o["Key"]
        for o in s3_server.client().list_objects_v2(Bucket="candela", Prefix=base[13:])["Contents"]
    ]
    assert keys == [f"{base[13:]}/a/b.txt"]


def test_failed_write_leaves_nothing(s3_server: s3server.S3Server) -> None:
    uri = f"{_prefix()}/half.bin"
    with pytest.raises(RuntimeError), storage.writing(uri) as tmp:
        tmp.write_bytes(b"x" * 1000)
        raise RuntimeError("writer failed")
    assert not storage.exists(uri)


def test_writing_folder_and_list_names(s3_server: s3server.S3Server) -> None:
    base = _prefix()
    with storage.writing_folder(f"{base}/out") as stage:
        (stage / "one.json").write_text("{}")
        (stage / "sub").mkdir()
        (stage / "sub" / "two.tif").write_bytes(b"II*\x00")
    assert storage.list_names(f"{base}/out") == ["one.json", "sub"]
    assert storage.list_names(f"{base}/out/sub") == ["two.tif"]
    assert storage.read_bytes(f"{base}/out/sub/two.tif") == b"II*\x00"


def test_multipart_upload_with_checksum(s3_server: s3server.S3Server, tmp_path) -> None:
    # above the 64 MiB threshold boto3 splits the upload in parts
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        f.truncate(70 * 1024 * 1024)
    uri = f"{_prefix()}/big.bin"
    storage.upload_file(big, uri)
    head = s3_server.client().head_object(Bucket="candela", Key=storage.parse(uri).path)
    assert head["ContentLength"] == 70 * 1024 * 1024


def test_wrong_credentials_is_one_clear_error(
    s3_server: s3server.S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.write_text("s3://candela/creds/x.txt", "x")
    monkeypatch.setenv("CANDELA_S3_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(InputError, match="wrong S3 credentials") as err:
        storage.read_text("s3://candela/creds/x.txt")
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="wrong S3 credentials"):
        storage.exists("s3://candela/creds/y.txt")
    with pytest.raises(OutputError, match="wrong S3 credentials"):
        storage.write_text("s3://candela/creds/z.txt", "z")
    monkeypatch.setenv("CANDELA_S3_ACCESS_KEY_ID", "NOBODY")
    with pytest.raises(InputError, match="unknown access key"):
        storage.list_names("s3://candela/creds")


def test_missing_bucket_is_one_clear_error(s3_server: s3server.S3Server) -> None:
    with pytest.raises(InputError, match=r"no such bucket \(no-such-bucket\)"):
        storage.read_text("s3://no-such-bucket/x.txt")
    with pytest.raises(InputError, match="no such bucket"):
        storage.list_names("s3://no-such-bucket/a")
    with pytest.raises(InputError, match="no such bucket"):
        storage.exists("s3://no-such-bucket/a")


def test_service_reports_wrong_credentials_without_a_traceback(
    s3_server: s3server.S3Server,
) -> None:
    env = {**s3_server.env(), "CANDELA_S3_SECRET_ACCESS_KEY": "wrong"}
    import os

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "candela_preprocess.cli",
            "--product",
            "s3://eodata/Sentinel-2/MSI/L1C/2016/05/04/x/imgs_1",
            "--output",
            "s3://candela/out/x.tif",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    # the service says what failed in one line (its layout check reports the unreadable prefix)
    assert '"outcome": "bad_input"' in proc.stdout


def test_up_for_the_platform_is_idempotent(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``candela up --s3`` calls ``s3server.up``: a second call finds the running server."""
    import os

    for key in ("CANDELA_S3_ENDPOINT_URL", "CANDELA_S3_ACCESS_KEY_ID"):
        monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    try:
        first = s3server.up(home, s3server.free_port())
        assert os.environ["CANDELA_S3_ENDPOINT_URL"] == first.endpoint_url
        assert (home / "run" / "seaweedfs.pid").read_text() == str(first.pid)
        again = s3server.up(home)
        assert again.pid == first.pid and again.admin == first.admin
        assert "SeaweedFS S3: http://127.0.0.1:" in s3server.status_line(home)
        storage.write_text("s3://candela/up/x.txt", "x")
    finally:
        assert s3server.stop(home, timeout=2)
    assert s3server.running(home) is None
    assert not s3server.stop(home, timeout=2)
    assert s3server.status_line(home) == "SeaweedFS S3: not running"
