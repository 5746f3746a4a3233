"""User workspaces: one bucket per user on a real S3 server; one user cannot read another's."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from candela import cli_storage as ws
from candela import embedded, s3server
from candela.settings import Settings
from candela_sdk.errors import InputError, OutputError


def _as(monkeypatch: pytest.MonkeyPatch, server: s3server.S3Server, user: str) -> str:
    for k, v in server.env(user).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("CANDELA_USER", user)
    monkeypatch.setenv("CANDELA_STORAGE_ROOT", "s3://candela/")
    return ws.workspace_root(user, "s3://candela/")


def test_roots_and_paths(tmp_path: Path) -> None:
    assert ws.workspace_root("Alice", "s3://candela/x") == "s3://ws-alice/"
    assert (
        ws.workspace_root("bob", tmp_path.as_uri()) == (tmp_path / "workspaces/bob").as_uri() + "/"
    )
    assert ws.resolve("s3://ws-alice/", "a/./b.tif") == "s3://ws-alice/a/b.tif"
    for bad in ("../bob/x", "/etc/passwd", "s3://ws-bob/x", "a/../../x"):
        with pytest.raises(InputError):
            ws.resolve("s3://ws-alice/", bad)
    with pytest.raises(InputError):
        ws.current_user("Bob Smith!")


def test_put_ls_get_in_own_workspace(
    s3_session: s3server.S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = _as(monkeypatch, s3_session, "alice")
    src = tmp_path / "aoi.geojson"
    src.write_text('{"type": "Point", "coordinates": [0, 45]}')
    folder = tmp_path / "results"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a")
    assert ws.put(root, src, "uploads/") == ["s3://ws-alice/uploads/aoi.geojson"]
    ws.put(root, folder)
    assert ws.ls(root, "") == ["results", "uploads"]
    assert ws.ls(root, "results/sub") == ["a.txt"]
    got = ws.get(root, "uploads/aoi.geojson", tmp_path / "back")
    assert got.read_text() == src.read_text()


def test_other_user_cannot_read_or_write(
    s3_session: s3server.S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    alice = _as(monkeypatch, s3_session, "alice")
    secret = tmp_path / "secret.txt"
    secret.write_text("alice only")
    ws.put(alice, secret)
    _as(monkeypatch, s3_session, "bob")
    with pytest.raises(InputError, match="access denied"):
        ws.ls(alice, "")
    with pytest.raises(InputError, match="access denied"):
        ws.get(alice, "secret.txt", tmp_path / "stolen.txt")
    assert not (tmp_path / "stolen.txt").exists()
    with pytest.raises(OutputError, match="access denied"):
        ws.put(alice, secret, "from-bob.txt")
    # bob's own workspace works with the same credentials
    bob = ws.workspace_root("bob", "s3://candela/")
    ws.put(bob, secret, "mine.txt")
    assert "mine.txt" in ws.ls(bob)
    # and alice cannot see bob's either
    _as(monkeypatch, s3_session, "alice")
    with pytest.raises(InputError, match="access denied"):
        ws.ls(bob)


def test_storage_cli(
    s3_session: s3server.S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _as(monkeypatch, s3_session, "alice")
    f = tmp_path / "note.txt"
    f.write_text("hi")
    runner = CliRunner()
    r = runner.invoke(ws.app, ["put", str(f), "cli/note.txt"])
    assert r.exit_code == 0, r.output
    assert "s3://ws-alice/cli/note.txt" in r.output
    r = runner.invoke(ws.app, ["ls", "cli"])
    assert r.exit_code == 0 and r.output.split() == ["note.txt"]
    r = runner.invoke(ws.app, ["get", "cli/note.txt", str(tmp_path / "out.txt")])
    assert r.exit_code == 0 and (tmp_path / "out.txt").read_text() == "hi"
    r = runner.invoke(ws.app, ["ls", "../x"])
    assert r.exit_code == 2 and "leaves your workspace" in r.output
    r = runner.invoke(ws.app, ["ls", "--user", "bob"])  # alice is no admin: refused at once
    assert r.exit_code == 2 and "only an admin may use another user's workspace" in r.output
    assert "Traceback" not in r.output


def _modes(root: Path) -> dict[Path, int]:
    return {p: stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]}


def test_platform_s3_isolates_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`candela up --s3`: bob cannot read alice's workspace with the CLI, with boto3 and his
    own keys, nor through the filesystem; the pipeline's keys reach only the results bucket."""
    for key in ("CANDELA_S3_ENDPOINT_URL", "CANDELA_S3_ACCESS_KEY_ID", "CANDELA_STORAGE_ROOT"):
        monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("CANDELA_HOME", str(home))
    settings = Settings(home=home, users=["alice", "bob"], s3_port=s3server.free_port())
    with embedded.private_umask():
        server = s3server.platform_up(settings, export=False)
    try:
        runner = CliRunner()
        secret = tmp_path / "secret.txt"
        secret.write_text("alice only")

        def cli(user: str, *args: str) -> Result:
            # a fresh process' environment: only who runs the command and where the home is
            for key in list(os.environ):
                if key.startswith("CANDELA_S3_"):
                    monkeypatch.delenv(key)
            return runner.invoke(ws.app, list(args), env={"CANDELA_USER": user})

        r = cli("alice", "put", str(secret), "secret.txt")
        assert r.exit_code == 0 and "s3://ws-alice/secret.txt" in r.output, r.output
        # the CLI: another workspace only for an admin
        r = cli("bob", "ls", "--user", "alice")
        assert r.exit_code == 2 and "only an admin" in r.output
        r = cli("bob", "get", "secret.txt", str(tmp_path / "stolen.txt"), "--user", "alice")
        assert r.exit_code == 2 and not (tmp_path / "stolen.txt").exists()
        r = cli("admin", "ls", "--user", "alice")
        assert r.exit_code == 0 and r.output.split() == ["secret.txt"], r.output
        # boto3 with bob's own keys (as written for him under the home)
        bob = s3server.read_credentials(home, "bob")
        assert bob is not None
        import boto3
        from botocore.exceptions import ClientError

        client = boto3.client(
            "s3",
            endpoint_url=bob["CANDELA_S3_ENDPOINT_URL"],
            aws_access_key_id=bob["CANDELA_S3_ACCESS_KEY_ID"],
            aws_secret_access_key=bob["CANDELA_S3_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )
        for call in (
            lambda: client.get_object(Bucket="ws-alice", Key="secret.txt"),
            lambda: client.list_objects_v2(Bucket="ws-alice"),
            lambda: client.put_object(Bucket="ws-alice", Key="x", Body=b"x"),
            lambda: client.get_object(Bucket="candela", Key="anything"),
        ):
            with pytest.raises(ClientError) as exc:
                call()
            assert exc.value.response["Error"]["Code"] in ("AccessDenied", "403")
        client.put_object(Bucket="ws-bob", Key="mine.txt", Body=b"bob")  # his own works
        # the pipeline: results bucket yes, a workspace no
        pipe = server.client(s3server.PIPELINE)
        pipe.put_object(Bucket="candela", Key="results/x.json", Body=b"{}")
        with pytest.raises(ClientError):
            pipe.get_object(Bucket="ws-alice", Key="secret.txt")
        # the filesystem: credentials and volume files for their owner only (modes: root reads
        # everything anyway)
        modes = _modes(home / "s3")
        assert any(p.suffix == ".dat" for p in modes), sorted(modes)  # volume files exist
        # (SeaweedFS writes its volume-info files .vif 0644 whatever the umask: metadata only,
        # inside folders no one else may enter)
        loose = {
            p: oct(m)
            for p, m in modes.items()
            if m & 0o077 and not p.is_symlink() and (p.is_dir() or p.suffix != ".vif")
        }
        assert not loose, loose
        assert {p.stem for p in (home / "s3" / "users").iterdir()} == {
            "admin",
            "pipeline",
            "alice",
            "bob",
        }
        # the components get the pipeline's keys and write their outputs to S3
        env: dict[str, str] = {}
        monkeypatch.setattr(s3server.os, "environ", env)
        again = s3server.platform_up(settings)
        assert again.pid == server.pid  # same users: the running server is kept
        assert env["CANDELA_STORAGE_ROOT"] == "s3://candela/"
        assert env["CANDELA_S3_ACCESS_KEY_ID"] == server.identity("pipeline").access_key
        monkeypatch.undo()
    finally:
        s3server.stop(home, timeout=2)
