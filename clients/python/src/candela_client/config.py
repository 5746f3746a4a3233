"""Where the platform is and how to log in, and how to reach object storage: from arguments or
from the environment (what ``candela notebook`` and the JupyterHub pods set)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_URL = "http://localhost:8080"


@dataclass(frozen=True)
class S3Config:
    """An S3 endpoint and its credentials (SeaweedFS, MinIO, CREODIAS/CDSE ``eodata``, AWS).

    The variables are the platform's own: ``CANDELA_S3_ENDPOINT_URL``,
    ``CANDELA_S3_ACCESS_KEY_ID``, ``CANDELA_S3_SECRET_ACCESS_KEY``, ``CANDELA_S3_REGION``.
    """

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str = "us-east-1"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Config | None:
        """The configuration in ``env`` (default: ``os.environ``); ``None`` when no endpoint or
        key is set (GDAL's own ``AWS_*`` settings then apply)."""
        e = os.environ if env is None else env
        endpoint = e.get("CANDELA_S3_ENDPOINT_URL") or None
        key = e.get("CANDELA_S3_ACCESS_KEY_ID") or None
        if endpoint is None and key is None:
            return None
        return cls(
            endpoint_url=endpoint,
            access_key_id=key,
            secret_access_key=e.get("CANDELA_S3_SECRET_ACCESS_KEY") or None,
            region=e.get("CANDELA_S3_REGION") or "us-east-1",
        )

    def gdal_options(self) -> dict[str, str]:
        """The GDAL configuration options that make ``/vsis3/`` read from this endpoint."""
        opts: dict[str, str] = {"AWS_REGION": self.region}
        if self.endpoint_url:
            u = urlsplit(self.endpoint_url)
            if not u.scheme or not u.netloc:
                raise ValueError(f"S3 endpoint {self.endpoint_url!r} is not a URL (http[s]://host)")
            opts["AWS_S3_ENDPOINT"] = u.netloc
            opts["AWS_HTTPS"] = "YES" if u.scheme == "https" else "NO"
            opts["AWS_VIRTUAL_HOSTING"] = "FALSE"
        if self.access_key_id:
            opts["AWS_ACCESS_KEY_ID"] = self.access_key_id
            opts["AWS_SECRET_ACCESS_KEY"] = self.secret_access_key or ""
        else:
            opts["AWS_NO_SIGN_REQUEST"] = "YES"
        return opts


@dataclass(frozen=True)
class ClientConfig:
    """How to reach the platform's API server (Airflow's, which also serves ``/ogc`` and
    ``/candela``). Either a ``token`` (a JWT from ``POST /auth/token``) or a ``username`` and
    ``password`` to get one."""

    url: str = DEFAULT_URL
    token: str | None = None
    username: str | None = None
    password: str | None = None
    s3: S3Config | None = None
    timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ClientConfig:
        """``CANDELA_URL`` (default ``http://localhost:8080``), ``CANDELA_TOKEN`` or
        ``CANDELA_USERNAME`` + ``CANDELA_PASSWORD``, and :meth:`S3Config.from_env`."""
        e = os.environ if env is None else env
        url = e.get("CANDELA_URL") or e.get("CANDELA_AIRFLOW_URL") or DEFAULT_URL
        return cls(
            url=url.rstrip("/"),
            token=e.get("CANDELA_TOKEN") or None,
            username=e.get("CANDELA_USERNAME") or None,
            password=e.get("CANDELA_PASSWORD") or None,
            s3=S3Config.from_env(e),
        )
