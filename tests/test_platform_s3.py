"""`candela up --s3` for real: the pipeline writes its outputs to S3 with its own identity, each
user has a workspace bucket no other user's keys reach, and `down` stops SeaweedFS too."""

from __future__ import annotations

import json
import stat
import subprocess

import pytest

from candela import s3server
from tests.platform_helpers import BORDEAUX, CANDELA, REPO, Platform, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class S3Platform(Platform):
    s3_port = 0

    def env(self) -> dict[str, str]:
        env = super().env()
        env["CANDELA_USERS"] = "alice,bob"
        env["CANDELA_S3_PORT"] = str(self.s3_port)
        return env


def test_pipeline_outputs_and_workspaces_on_s3(tmp_path_factory: pytest.TempPathFactory) -> None:
    p = S3Platform(tmp_path_factory.mktemp("candela-s3") / "home", free_port())
    p.s3_port = free_port()
    r = p.candela("up", "--port", str(p.port), "--s3")
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        assert f"SeaweedFS S3: http://127.0.0.1:{p.s3_port}" in r.stdout
        users = p.home / "s3" / "users"
        assert {f.stem for f in users.iterdir()} == {"admin", "pipeline", "alice", "bob"}
        for f in users.iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600
        # the components hold the pipeline's keys, not the admin's
        server = s3server.running(p.home)
        assert server is not None
        pid = int((p.home / "run" / "scheduler.pid").read_text())
        environ = dict(
            kv.split("=", 1) for kv in open(f"/proc/{pid}/environ").read().split("\0") if "=" in kv
        )
        assert environ["CANDELA_S3_ACCESS_KEY_ID"] == server.identity("pipeline").access_key
        assert environ["CANDELA_STORAGE_ROOT"] == "s3://candela/"

        r = p.candela("catalog", "add", str(REPO / "data" / "oscd" / "bordeaux"))
        assert r.returncode == 0, r.stdout + r.stderr
        run_id, r = p.run(BORDEAUX)
        assert r.returncode == 0, r.stdout + r.stderr
        admin = server.client("admin")
        keys = [o["Key"] for o in admin.list_objects_v2(Bucket="candela").get("Contents", [])]
        summaries = [k for k in keys if k.endswith("/run.json")]
        assert summaries, keys
        found = [
            json.loads(admin.get_object(Bucket="candela", Key=k)["Body"].read()) for k in summaries
        ]
        assert run_id in {s["run_id"] for s in found}
        assert not (p.home / "storage" / "results").exists()  # nothing on local disk

        # workspaces: alice's own CLI works, bob's `--user alice` is refused
        f = tmp_path_factory.mktemp("ws") / "note.txt"
        f.write_text("alice only")
        env = {**p.env(), "CANDELA_USER": "alice"}
        cmd = [*CANDELA, "storage", "put", str(f), "note.txt"]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=120)
        assert r.returncode == 0 and "s3://ws-alice/note.txt" in r.stdout, r.stdout + r.stderr
        env["CANDELA_USER"] = "bob"
        cmd = [*CANDELA, "storage", "ls", "--user", "alice"]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=120)
        assert r.returncode == 2 and "only an admin" in r.stderr
    finally:
        r = p.candela("down")
    assert "seaweedfs" in r.stdout and "postgresql" in r.stdout
    assert s3server.running(p.home) is None
