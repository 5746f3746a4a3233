"""User workspaces: one bucket per user on a real S3 server; one user cannot read another's."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from candela import cli_storage as ws
from candela import s3server
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
    r = runner.invoke(ws.app, ["ls", "--user", "bob"])  # alice's keys, bob's workspace
    assert r.exit_code == 2 and "access denied" in r.output
    assert "Traceback" not in r.output
