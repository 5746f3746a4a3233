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
from pydantic_settings import NoDecode, SettingsConfigDict

from candela_sdk.settings import SdkSettings

Port = Annotated[int, Field(ge=1, le=65535)]


class Settings(SdkSettings):
    """The platform's settings: the SDK's (home, storage root, database, runner, S3, …) and
    those of the embedded platform, the Airflow client and the Kubernetes runner."""

    model_config = SettingsConfigDict(env_prefix="CANDELA_", extra="ignore", env_ignore_empty=True)

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
    airflow_database_url: str | None = Field(
        None, description="external PostgreSQL for Airflow's metadata (default: embedded)"
    )
    airflow_url: str | None = Field(None, description="Airflow API server URL (default: local)")
    airflow_username: str = "admin"
    airflow_password: str | None = None
    user: str | None = Field(None, description="whose workspace (default: the login name)")

    # the Kubernetes runner's settings (CANDELA_K8S_*): candela_operators.settings
    step_timeout_minutes: int = 120
    gpu_slots: int = Field(1, ge=1, description="size of the GPU pool (concurrent GPU steps)")

    # the elastic cluster (candela.scaling, the cluster_autoscaler DAG)
    scaling_config: Path | None = Field(
        None, description="scaling configuration, TOML/JSON (default: candela.scaling.config)"
    )
    scaling_mode: Literal["plan", "act"] = Field(
        "plan", description="plan: decisions recorded, nothing created; act: OpenStack + k8s"
    )

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
    def api_url(self) -> str:
        return (self.airflow_url or f"http://localhost:{self.port}").rstrip("/")


def get_settings() -> Settings:
    return Settings()
