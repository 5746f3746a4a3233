"""The OGC app's settings (``CANDELA_OGC_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OgcSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CANDELA_OGC_", extra="ignore")

    airflow_url: str | None = Field(
        None, description="where this API server answers (default: Airflow's [api] base_url)"
    )
    sync_wait: float = Field(
        60, description="seconds a synchronous execute waits before answering asynchronously"
    )
