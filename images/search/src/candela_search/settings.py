"""The search service's settings: the SDK's (database, S3, …) and its own ``CANDELA_*``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from candela_sdk.settings import SdkSettings


class SearchSettings(SdkSettings):
    model_config = SettingsConfigDict(env_prefix="CANDELA_", extra="ignore", env_ignore_empty=True)

    search_attempts: int = Field(
        4, ge=1, description="attempts of a remote request on throttling (429) and 5xx"
    )
    search_backoff_s: float = Field(0.5, description="first wait between attempts (doubled)")
    search_timeout_s: float = Field(30, description="seconds a remote catalogue may take")
    stac_url: str | None = Field(None, description="STAC API (default: Earth Search)")
    cdse_odata_url: str | None = Field(None, description="CDSE OData (default: the public one)")


def get_settings() -> SearchSettings:
    return SearchSettings()
