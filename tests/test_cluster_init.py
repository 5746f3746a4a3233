"""`candela cluster init`: what `candela up` prepares before Airflow starts, for a configured
platform (PostgreSQL, S3, Kubernetes), idempotent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from candela import embedded, s3server
from candela.cli import app
from candela.settings import Settings

CANDELA = str(Path(sys.executable).parent / "candela")


def test_needs_the_platform_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CANDELA_DATABASE_URL", raising=False)
    r = CliRunner().invoke(app, ["cluster", "init"])
    assert r.exit_code == 2 and "CANDELA_DATABASE_URL" in r.output


def test_a_bucket_is_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDELA_DATABASE_URL", "postgresql://nobody@/none")
    r = CliRunner().invoke(app, ["cluster", "init", "--bucket", "a/b"])
    assert r.exit_code == 2 and "bucket name" in r.output


def test_the_gpu_pool_has_one_definition(tmp_path: Path) -> None:
    """`candela up` and `cluster init` create the pool the DAG's GPU steps use."""
    from dags.s2_change_detection import GPU_POOL

    args = embedded.gpu_pool_args(Settings(home=tmp_path, gpu_slots=3))
    assert args[:4] == ("pools", "set", GPU_POOL, "3")
    assert (
        "embedded.gpu_pool_args(s)"
        in (Path(embedded.__file__).parent / "cli_cluster.py").read_text()
    )
    assert "gpu_pool_args(settings)" in Path(embedded.__file__).read_text()


def _airflow_row(meta: str, sql: str) -> tuple:
    with psycopg.connect(meta.replace("+psycopg", "")) as conn:
        return tuple(conn.execute(sql).fetchone() or ())


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CANDELA_"))}
    return {**env, "AIRFLOW_HOME": str(home / "airflow"), "CANDELA_HOME": str(home), **extra}


@pytest.mark.slow
@pytest.mark.integration
def test_init_prepares_postgres_airflow_pool_connection_and_buckets(
    tmp_path: Path, pg_server: str, s3_session: s3server.S3Server
) -> None:
    suffix = uuid.uuid4().hex[:8]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for db in (f"af_{suffix}", f"cd_{suffix}"):
            conn.execute(f"CREATE DATABASE {db}")
    platform = pg_server.replace("/postgres?", f"/cd_{suffix}?")
    meta = pg_server.replace("postgresql://", "postgresql+psycopg://").replace(
        "/postgres?", f"/af_{suffix}?"
    )
    results = f"results-{suffix}"
    fernet = Fernet.generate_key()
    env = _env(
        tmp_path,
        **s3_session.env(),
        CANDELA_DATABASE_URL=platform,
        CANDELA_STORAGE_ROOT=f"s3://{results}/candela",
        CANDELA_RUNNER="kubernetes",
        CANDELA_K8S_IN_CLUSTER="true",
        CANDELA_K8S_NAMESPACE="eo-steps",
        CANDELA_GPU_SLOTS="3",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=meta,
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=meta,
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__FERNET_KEY=fernet.decode(),
    )
    # no Airflow database configured: refused before anything is touched
    no_meta = {k: v for k, v in env.items() if not k.startswith("AIRFLOW__DATABASE__")}
    r = subprocess.run([CANDELA, "cluster", "init"], env=no_meta, capture_output=True, text=True)
    assert r.returncode == 1 and "SQL_ALCHEMY_CONN" in r.stderr, r.stderr
    with psycopg.connect(platform) as conn:
        assert conn.execute("SELECT to_regclass('candela.schema_migrations')").fetchone() == (None,)

    first = subprocess.run(
        [CANDELA, "cluster", "init", "--bucket", f"eodata-{suffix}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert "up to date" not in first.stdout and "connection kubernetes_default" in first.stdout
    with psycopg.connect(platform) as conn:
        assert conn.execute("SELECT count(*) FROM candela.schema_migrations").fetchone()[0] > 5
    assert _airflow_row(meta, "SELECT slots FROM slot_pool WHERE pool = 'candela_gpu'") == (3,)
    conn_type, extra = _airflow_row(
        meta, "SELECT conn_type, extra FROM connection WHERE conn_id = 'kubernetes_default'"
    )
    assert conn_type == "kubernetes"
    extra = Fernet(fernet).decrypt(extra.encode()).decode()
    assert json.loads(extra) == {"in_cluster": True, "namespace": "eo-steps"}
    names = {b["Name"] for b in s3_session.client().list_buckets()["Buckets"]}
    assert {results, f"eodata-{suffix}"} <= names

    # again, with a bigger pool: nothing redone, the pool resized
    again = subprocess.run(
        [CANDELA, "cluster", "init"],
        env={**env, "CANDELA_GPU_SLOTS": "5"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert (
        "up to date" in again.stdout
        and "kubernetes_default (in cluster, eo-steps): kept" in again.stdout
    )
    assert _airflow_row(meta, "SELECT slots FROM slot_pool WHERE pool = 'candela_gpu'") == (5,)
