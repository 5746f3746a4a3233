"""The settings every Candela package shares, read from ``CANDELA_*`` environment variables.

One class, :class:`SdkSettings`: the services read it (S3, scratch folder, log level, where the
contract writes its result), the operators read it (``CANDELA_RUNNER``, the platform's database
for a local step), and the platform's own ``candela.settings.Settings`` extends it. Nothing else
reads ``os.environ`` for a setting. An empty variable counts as unset. Values are read when the
object is made (:func:`get_settings` makes a fresh one: a test or ``candela up --s3`` may change
the environment of a running process).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class SdkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CANDELA_", extra="ignore", env_ignore_empty=True)

    home: Path = Field(Path(".candela"), description="where the embedded platform keeps its state")
    storage_root: str | None = Field(
        None, description="where outputs go: file:// or s3:// (default: HOME/storage)"
    )
    database_url: str | None = Field(
        None, description="PostgreSQL of the platform tables (default: the embedded server)"
    )
    runner: Literal["local", "kubernetes"] = Field(
        "local", description="how pipeline steps run: local subprocess or Kubernetes pod"
    )

    # object storage (S3 API: SeaweedFS, MinIO, AWS, CREODIAS): the results, and every bucket
    # that is not an archive bucket
    s3_endpoint_url: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_region: str = "us-east-1"
    # the read-only archive (CDSE/CREODIAS ``eodata``): its own endpoint and keys; each unset
    # one falls back to the results' (CANDELA_S3_*), so one set still serves both
    eodata_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["eodata"],
        description="buckets read with the archive's S3 settings (comma-separated)",
    )
    eodata_s3_endpoint_url: str | None = None
    eodata_s3_access_key_id: str | None = None
    eodata_s3_secret_access_key: str | None = None
    eodata_s3_region: str | None = None

    gpu: bool = Field(
        True,
        description="whether the cluster has GPU nodes; false (a CPU-only cluster): models "
        "declared for a GPU run on CPU nodes with the plain images, slower but never waiting "
        "for a GPU that does not exist",
    )

    # services
    scratch: str | None = Field(None, description="folder for large temporaries (default: TMPDIR)")
    log_level: str = "INFO"
    result_path: Path | None = Field(
        None, description="where a service also writes its JSON result (set by the local runner)"
    )
    model_registry: str | None = Field(
        None, description="folder/S3 prefix of registered models (default: STORAGE/models)"
    )
    image: str = Field("", description="the container image a service runs in (provenance)")

    # knowledge base (candela_sdk.kb)
    kb_endpoint: str | None = Field(
        None,
        description="SPARQL 1.1 query endpoint of an external knowledge base (default: the "
        "embedded store under HOME/kb)",
    )
    kb_update_endpoint: str | None = Field(
        None,
        description="SPARQL 1.1 update endpoint of the external knowledge base (default: "
        "the query endpoint)",
    )
    kb_retries: int = Field(3, ge=1, le=10, description="attempts on an unreachable endpoint")
    kb_context: str | None = Field(
        None,
        description="JSON file listing the context sources the context_etl DAG (re)loads "
        "(default: the sample communes and weather shipped in the repository's data/)",
    )

    @field_validator("eodata_buckets", mode="before")
    @classmethod
    def _buckets(cls, v: object) -> object:
        if isinstance(v, str):
            return [b.strip() for b in v.split(",") if b.strip()]
        return v

    def s3_for(self, bucket: str) -> dict[str, str | None]:
        """boto3 client arguments for ``bucket``: the archive's settings for an archive bucket
        (each unset one: the results'), the results' for any other."""
        archive = bucket in self.eodata_buckets
        own_keys = archive and bool(self.eodata_s3_access_key_id)  # the key pair goes together
        return {
            "endpoint_url": (archive and self.eodata_s3_endpoint_url) or self.s3_endpoint_url,
            "aws_access_key_id": self.eodata_s3_access_key_id
            if own_keys
            else self.s3_access_key_id,
            "aws_secret_access_key": self.eodata_s3_secret_access_key
            if own_keys
            else self.s3_secret_access_key,
            "region_name": (archive and self.eodata_s3_region) or self.s3_region,
        }

    @property
    def eodata_separate(self) -> bool:
        """Whether the archive buckets have S3 settings of their own."""
        return bool(
            self.eodata_buckets and (self.eodata_s3_endpoint_url or self.eodata_s3_access_key_id)
        )

    @property
    def storage(self) -> str:
        """The storage root: ``CANDELA_STORAGE_ROOT``, else ``HOME/storage``."""
        return self.storage_root or (self.home.expanduser().absolute() / "storage").as_uri()


def get_settings() -> SdkSettings:
    return SdkSettings()


def embedded_dsn(home: Path) -> str | None:
    """DSN of the platform tables on the embedded PostgreSQL under ``home`` (``pg/``), or ``None``
    when that server is not running."""
    from candela_sdk.processes import pid_alive

    pid_file = home.expanduser().absolute() / "pg" / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    if len(lines) <= 4 or not lines[4] or not pid_alive(pid):
        return None
    return f"postgresql://postgres@/candela?host={lines[4]}"


def platform_dsn(settings: SdkSettings | None = None) -> str | None:
    """DSN of the platform tables: ``CANDELA_DATABASE_URL``, else the embedded server's
    ``candela`` database if it runs, else ``None``."""
    s = settings or get_settings()
    return s.database_url or embedded_dsn(s.home)
