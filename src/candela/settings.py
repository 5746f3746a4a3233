"""Typed platform settings, read from ``CANDELA_*`` environment variables.

With nothing set, everything runs on this machine under ``CANDELA_HOME`` (default ``./.candela``):
embedded PostgreSQL, local folder as object store, local runner. Configured, the same code uses
an external PostgreSQL, S3 and a Kubernetes cluster.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from candela_sdk.settings import SdkSettings


class Settings(SdkSettings):
    """The platform's settings: the SDK's (home, storage root, database, runner, S3, …) and
    those of the embedded platform, the Airflow client and the Kubernetes runner."""

    model_config = SettingsConfigDict(env_prefix="CANDELA_", extra="ignore", env_ignore_empty=True)

    port: int = Field(8080, description="port of the Airflow API server / UI (loopback)")
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
