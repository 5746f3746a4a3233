"""Fixtures of the platform tests: a real S3 server (SeaweedFS on loopback)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from candela import s3server

# two workspace identities, each limited to its own bucket (see test_workspaces.py)
WORKSPACE_USERS = ("alice", "bob")
# two more, each limited to its own bucket, for the archive-vs-results test (test_s3_archive.py),
# so that its objects never show up in a workspace listing
BUCKET_USERS = (*WORKSPACE_USERS, "carol", "dave")


@pytest.fixture(scope="session")
def s3_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3server.S3Server]:
    """SeaweedFS with its S3 gateway for the whole session: free ports, temp dir, stopped after.

    Buckets ``eodata`` and ``candela`` exist; identities ``admin`` (everything) and one per
    :data:`BUCKET_USERS` that may use only the bucket ``ws-<user>``.
    """
    home = tmp_path_factory.mktemp("s3home")
    idents = [s3server.Identity.for_bucket(u, f"ws-{u}") for u in BUCKET_USERS]
    server = s3server.start(
        home,
        s3server.free_port(),
        identities=idents,
        buckets=["eodata", "candela", *[f"ws-{u}" for u in BUCKET_USERS]],
    )
    try:
        yield server
    finally:
        s3server.stop(home, timeout=2)


@pytest.fixture
def s3_server(s3_session: s3server.S3Server, monkeypatch: pytest.MonkeyPatch) -> s3server.S3Server:
    """The session's S3 server, with the admin's ``CANDELA_S3_*`` set for this test."""
    for key, value in s3_session.env().items():
        monkeypatch.setenv(key, value)
    return s3_session


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing answers on while the test runs: bound (no other process can take
    it) but not listening (a connection is refused), whatever else runs on this host (an
    Airflow on 8080)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
