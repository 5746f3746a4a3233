"""The operators' settings: the SDK's (``CANDELA_RUNNER``, database, S3) and the Kubernetes
runner's (``CANDELA_K8S_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from candela_sdk.settings import SdkSettings


class OperatorSettings(SdkSettings):
    model_config = SettingsConfigDict(env_prefix="CANDELA_", extra="ignore", env_ignore_empty=True)

    # Kubernetes runner
    k8s_namespace: str = "candela"
    k8s_image_registry: str = "ghcr.io/candela-eo"
    k8s_image_tag: str = "0.1.0"
    k8s_in_cluster: bool = False
    k8s_config_file: str | None = None
    k8s_s3_secret: str = Field(
        "candela-s3", description="Secret with the results' S3 endpoint_url/access_key_id/…"
    )
    k8s_eodata_secret: str = Field(
        "candela-eodata",
        description="Secret with the archive's S3 endpoint_url/access_key_id/secret_access_key "
        "(optional: without it the archive is read with the results' settings)",
    )
    k8s_db_secret: str = Field("candela-db", description="Secret with the platform DSN (dsn)")
    k8s_scratch_max: str = Field(
        "200Gi", description="the largest scratch space (emptyDir) a step may ask for"
    )
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


def get_settings() -> OperatorSettings:
    return OperatorSettings()
