"""``candela cluster``: prepare a configured platform (Kubernetes, docker-compose) once.

``candela cluster init`` does on a cluster what ``candela up`` does for the embedded platform
before it starts Airflow, and nothing more: it migrates the platform tables
(``CANDELA_DATABASE_URL``) and Airflow's metadata database (the ``AIRFLOW__DATABASE__*`` of its
environment), creates or resizes the ``candela_gpu`` pool (the same arguments as ``candela up``:
:func:`candela.embedded.gpu_pool_args`), creates the ``kubernetes_default`` connection (in
cluster, the step namespace) when the steps run as pods, and the results bucket of
``CANDELA_STORAGE_ROOT`` (plus any ``--bucket``). Every step is idempotent: run it as the
init Job of each deployment or upgrade (infra/k8s/base/init-job.yaml) or the ``init`` service
of docker-compose.yml.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from candela import cli_console

app = typer.Typer(
    help="A configured platform (Kubernetes, docker-compose): one-time preparation.",
    no_args_is_help=True,
)
console = cli_console.console

K8S_CONNECTION = "kubernetes_default"


class InitError(Exception):
    """A step of ``cluster init`` failed; the message says which and why."""


def _airflow_bin() -> str:
    candidate = Path(sys.executable).parent / "airflow"
    return str(candidate) if candidate.exists() else (shutil.which("airflow") or "airflow")


def airflow(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """``airflow ARGS`` with this process's environment (the cluster's ``AIRFLOW__*``)."""
    res = subprocess.run(
        [_airflow_bin(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-10:])
        raise InitError(f"`airflow {' '.join(args)}` failed:\n{tail}")
    return res


def airflow_database() -> str:
    """Airflow's metadata DSN as Airflow resolves it; refuses SQLite (a pod's own file)."""
    out = airflow("config", "get-value", "database", "sql_alchemy_conn").stdout.strip()
    dsn = out.splitlines()[-1] if out else ""
    if not dsn or dsn.startswith("sqlite"):
        raise InitError(
            "Airflow's metadata database is not configured (it would be SQLite inside this "
            "container): set AIRFLOW__DATABASE__SQL_ALCHEMY_CONN to the cluster's PostgreSQL"
        )
    return dsn


def ensure_connection(namespace: str) -> str:
    """The in-cluster ``kubernetes_default`` connection (created once, never overwritten)."""
    if airflow("connections", "get", K8S_CONNECTION, "-o", "json", check=False).returncode == 0:
        return "kept"
    extra = json.dumps({"in_cluster": True, "namespace": namespace})
    airflow(
        "connections", "add", K8S_CONNECTION, "--conn-type", "kubernetes", "--conn-extra", extra
    )
    return "created"


@app.command("init")
def init_cmd(
    bucket: Annotated[
        list[str] | None,
        typer.Option(
            "--bucket", help="another bucket to create (repeatable), e.g. eodata on a private S3"
        ),
    ] = None,
) -> None:
    """Migrate the databases, create the GPU pool, the connection and the buckets (idempotent)."""
    from candela import embedded
    from candela.cli import fail
    from candela.cli_storage import ensure
    from candela.db import migrate
    from candela.settings import get_settings
    from candela_sdk.errors import InputError, OutputError

    s = get_settings()
    if not s.database_url:
        raise fail(
            "cluster init needs CANDELA_DATABASE_URL (the platform's PostgreSQL); the embedded "
            "platform prepares itself with `candela up`",
            2,
        )
    extra = [f"s3://{b}" for b in bucket or []]
    bad = [b for b in bucket or [] if not b or "/" in b]
    if bad:
        raise fail(f"--bucket takes a bucket name, not {bad[0]!r}", 2)
    try:
        airflow_database()
        applied = migrate(s.database_url)
        console.print(
            f"platform tables: {len(applied)} migration(s) applied"
            + (f" ({', '.join(applied)})" if applied else ", up to date")
        )
        airflow("db", "migrate")
        console.print("Airflow metadata database: migrated")
        pool = embedded.gpu_pool_args(s)
        airflow(*pool)
        console.print(f"pool {pool[2]}: {pool[3]} slot(s)")
        if s.runner == "kubernetes":
            from candela_operators.settings import get_settings as operator_settings

            ops = operator_settings()
            if ops.k8s_in_cluster:
                state = ensure_connection(ops.k8s_namespace)
                console.print(
                    f"connection {K8S_CONNECTION} (in cluster, {ops.k8s_namespace}): {state}"
                )
        for root in [s.storage, *extra]:
            ensure(root)
            console.print(f"storage {root}: ready")
    except InitError as exc:
        raise fail(str(exc)) from None
    except (InputError, OutputError) as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # a database that refuses: psycopg's errors, one line
        import psycopg

        if isinstance(exc, psycopg.Error):
            raise fail(
                f"the platform database refused: {str(exc).strip().splitlines()[0]}"
            ) from None
        raise
