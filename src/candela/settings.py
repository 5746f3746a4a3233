"""Typed platform settings, read from ``CANDELA_*`` environment variables.

With nothing set, everything runs on this machine under ``CANDELA_HOME`` (default ``./.candela``):
embedded PostgreSQL, local folder as object store, local runner. Configured, the same code uses
an external PostgreSQL, S3 and a Kubernetes cluster.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Port = Annotated[int, Field(ge=1, le=65535)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CANDELA_", extra="ignore")

    home: Path = Field(Path(".candela"), description="where the embedded platform keeps its state")
    port: int = Field(8080, description="port of the Airflow API server / UI (loopback)")
    # the other ports of the embedded platform; unset: a free port picked at the first `up` and
    # kept in HOME/run/ports.json (re-picked if another program took it while the platform was
    # down), so two platforms on one host never share one
    scheduler_health_port: Port | None = Field(
        None, description="scheduler health-check server (loopback; Airflow default 8974)"
    )
    worker_log_port: Port | None = Field(
        None, description="[logging] worker_log_server_port (Airflow default 8793)"
    )
    trigger_log_port: Port | None = Field(
        None, description="[logging] trigger_log_server_port (Airflow default 8794)"
    )
    s3_port: Port | None = Field(
        None, description="S3 port of `candela up --s3` (default 8333 if free, else a free one)"
    )
    token_lifetime_s: int = Field(
        3600,
        ge=60,
        description="lifetime of API tokens in seconds ([api_auth] jwt_expiration_time)",
    )
    users: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="platform users besides admin (comma separated): each gets its own S3 "
        "identity and workspace bucket with `candela up --s3`",
    )
    admins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["admin"],
        description="platform users who may act for another (`candela storage --user X`)",
    )
    runner: Literal["local", "kubernetes"] = Field(
        "local", description="how pipeline steps run: local subprocess or Kubernetes pod"
    )
    database_url: str | None = Field(
        None, description="external PostgreSQL for the platform tables (default: embedded)"
    )
    airflow_database_url: str | None = Field(
        None, description="external PostgreSQL for Airflow's metadata (default: embedded)"
    )
    storage_root: str | None = Field(
        None, description="where outputs go: file:// or s3:// (default: HOME/storage)"
    )
    airflow_url: str | None = Field(None, description="Airflow API server URL (default: local)")
    airflow_username: str = "admin"
    airflow_password: str | None = None

    # Kubernetes runner
    k8s_namespace: str = "candela"
    k8s_image_registry: str = "ghcr.io/candela-eo"
    k8s_image_tag: str = "0.1.0"
    k8s_in_cluster: bool = False
    k8s_config_file: str | None = None
    k8s_s3_secret: str = "candela-s3"
    k8s_service_account: str | None = None
    k8s_gpu_node_selector: dict[str, str] = Field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"}
    )
    k8s_gpu_toleration_key: str = "nvidia.com/gpu"
    k8s_deferrable: bool = Field(
        True, description="wait for pods in the triggerer instead of holding a worker slot"
    )
    k8s_startup_timeout: int = Field(
        900, description="seconds to wait for a pod to start (longer than a node scale-up)"
    )
    step_timeout_minutes: int = 120
    gpu_slots: int = Field(1, ge=1, description="size of the GPU pool (concurrent GPU steps)")

    @field_validator("users", "admins", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip().lower() for v in value.split(",") if v.strip()]
        return value

    @cached_property
    def home_abs(self) -> Path:
        return self.home.expanduser().absolute()

    @property
    def pgdata(self) -> Path:
        return self.home_abs / "pg"

    @property
    def airflow_home(self) -> Path:
        return self.home_abs / "airflow"

    @property
    def run_dir(self) -> Path:
        return self.home_abs / "run"

    @property
    def log_dir(self) -> Path:
        return self.home_abs / "logs"

    @property
    def storage(self) -> str:
        return self.storage_root or (self.home_abs / "storage").as_uri()

    @property
    def api_url(self) -> str:
        return (self.airflow_url or f"http://localhost:{self.port}").rstrip("/")


def get_settings() -> Settings:
    return Settings()
