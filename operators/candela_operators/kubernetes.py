"""The ``kubernetes`` runner: the service's image as a pod (KubernetesPodOperator).

The pod runs the same command line as the local runner. Resources come from the service's
declaration (``nvidia.com/gpu`` for GPU services, with the GPU node selector and toleration),
S3 and database credentials from Kubernetes Secrets, and the JSON result comes back through the
XCom sidecar (``/airflow/xcom/return.json``). Exit code 3 ("no data") skips the task; exit code
2 (bad input) fails it without retry, with the service's reason (:func:`pod_failure`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.secret import Secret
from airflow.sdk.exceptions import AirflowException, AirflowSkipException
from kubernetes.client import models as k8s

from candela_operators.command import (
    BAD_INPUT_EXIT_CODE,
    NO_DATA_EXIT_CODE,
    build_command,
    failure_reason,
    step_failure,
)


def pod_settings(service_name: str) -> dict[str, Any]:
    """KubernetesPodOperator arguments for a service, from the platform settings."""
    from candela_operators.settings import get_settings
    from candela_sdk.services import get_service

    s = get_settings()
    svc = get_service(service_name)
    image_name = svc.image or f"candela-{svc.name}"
    limits = {"cpu": svc.resources.cpu, "memory": svc.resources.memory}
    requests = dict(limits)
    node_selector: dict[str, str] | None = None
    tolerations: list[k8s.V1Toleration] | None = None
    if svc.resources.gpu:
        limits["nvidia.com/gpu"] = str(svc.resources.gpu)
        requests["nvidia.com/gpu"] = str(svc.resources.gpu)
        node_selector = dict(s.k8s_gpu_node_selector)
        tolerations = [
            k8s.V1Toleration(key=s.k8s_gpu_toleration_key, operator="Exists", effect="NoSchedule")
        ]
    secrets = [
        Secret("env", "CANDELA_S3_ACCESS_KEY_ID", s.k8s_s3_secret, "access_key_id"),
        Secret("env", "CANDELA_S3_SECRET_ACCESS_KEY", s.k8s_s3_secret, "secret_access_key"),
        Secret("env", "CANDELA_S3_ENDPOINT_URL", s.k8s_s3_secret, "endpoint_url"),
        Secret("env", "CANDELA_DATABASE_URL", "candela-db", "dsn"),
    ]
    return {
        "image": f"{s.k8s_image_registry.rstrip('/')}/{image_name}:{s.k8s_image_tag}",
        "namespace": s.k8s_namespace,
        "in_cluster": s.k8s_in_cluster,
        "config_file": s.k8s_config_file,
        "service_account_name": s.k8s_service_account,
        "container_resources": k8s.V1ResourceRequirements(limits=limits, requests=requests),
        "node_selector": node_selector,
        "tolerations": tolerations,
        "secrets": secrets,
        "startup_timeout_seconds": s.k8s_startup_timeout,
        "deferrable": s.k8s_deferrable,
        "labels": {"app.kubernetes.io/part-of": "candela", "candela.eo/service": svc.name},
        "image_pull_policy": "IfNotPresent",
        "env_vars": {
            "CANDELA_LOG_LEVEL": "INFO",
            # the knowledge base a pod loads into (rdf-etl): only an external endpoint is reachable
            **{
                f"CANDELA_{name.upper()}": value
                for name in ("kb_endpoint", "kb_update_endpoint")
                if (value := getattr(s, name, None))
            },
        },
        "security_context": k8s.V1PodSecurityContext(run_as_non_root=True, run_as_user=10001),
    }


class KubernetesStepOperator(KubernetesPodOperator):
    """Run a Candela processing service as a pod with the service's image."""

    template_fields: Sequence[str] = (*KubernetesPodOperator.template_fields, "service_args")
    ui_color = "#cfe8d5"

    def __init__(self, *, service: str, service_args: dict[str, Any], **kwargs: Any) -> None:
        merged = {**pod_settings(service), **kwargs}
        merged.setdefault("do_xcom_push", True)
        merged.setdefault("skip_on_exit_code", NO_DATA_EXIT_CODE)
        merged.setdefault("get_logs", True)
        merged.setdefault("on_finish_action", "delete_succeeded_pod")
        merged.setdefault("name", f"candela-{service}")
        # a failed container's termination message is its log tail: the service's reason
        merged.setdefault("termination_message_policy", "FallbackToLogsOnError")
        super().__init__(**merged)
        self.service = service
        self.service_args = service_args

    def _render_command(self) -> None:
        argv = build_command(self.service, dict(self.service_args))
        self.cmds = argv[:1]
        self.arguments = argv[1:]

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> k8s.V1Pod:
        self._render_command()
        return super().build_pod_request_obj(context, dry_run=dry_run)

    def cleanup(
        self,
        pod: k8s.V1Pod,
        remote_pod: k8s.V1Pod,
        xcom_result: dict[str, Any] | None = None,
        context: Any = None,
    ) -> None:
        try:
            super().cleanup(pod, remote_pod, xcom_result=xcom_result, context=context)
        except AirflowSkipException:
            raise
        except AirflowException as exc:
            failure = pod_failure(self.service, remote_pod, self.base_container_name, xcom_result)
            if failure is None:
                raise
            raise failure from exc


def _terminated(pod: k8s.V1Pod | None, container_name: str) -> Any:
    """The ``V1ContainerStateTerminated`` of a pod's container, ``None`` while it runs."""
    status = getattr(pod, "status", None)
    for cs in getattr(status, "container_statuses", None) or []:
        if cs.name == container_name:
            return cs.state.terminated if cs.state else None
    return None


def pod_failure(
    service: str, pod: k8s.V1Pod | None, container_name: str, xcom_result: Any = None
) -> AirflowException | None:
    """The non-retryable task failure for a pod whose service exited 2 (bad input), else ``None``.

    The reason is the ``error`` of the service's JSON result (XCom sidecar), else found in the
    container's termination message (its log tail, ``FallbackToLogsOnError``).
    """
    terminated = _terminated(pod, container_name)
    if terminated is None or terminated.exit_code != BAD_INPUT_EXIT_CODE:
        return None
    tail = (terminated.message or "").splitlines()
    result = xcom_result if isinstance(xcom_result, dict) else None
    return step_failure(service, BAD_INPUT_EXIT_CODE, failure_reason(result, tail))
