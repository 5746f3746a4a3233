"""The ``kubernetes`` runner: the service's image as a pod (KubernetesPodOperator).

The pod runs the same command line as the local runner. What it gets is decided here, in two
parts:

* :func:`pod_settings` (per service, when the DAG is parsed): namespace, labels, security
  context, and the environment every step needs (:func:`pod_environment`: storage root, model
  registry, log level, knowledge base; S3 endpoint and keys of the results and, separately, of the
  read-only archive; the platform DSN for a service that reads the platform's tables; each
  secret value from a Kubernetes Secret);
* :func:`step_pod` (per step, when its arguments are known): the image (the service's ``-gpu``
  variant only when the step's model runs on a GPU, :meth:`Service.device_for`), CPU/memory, the
  GPU request with the GPU node selector and toleration, and a scratch ``emptyDir`` sized from
  the step's inputs (:func:`scratch_bytes`), mounted as ``TMPDIR``, with the matching
  ``ephemeral-storage`` request and limit.

The JSON result comes back through the XCom sidecar (``/airflow/xcom/return.json``). Exit code 3
("no data") skips the task; exit code 2 (bad input) fails it without retry, with the service's
reason (:func:`pod_failure`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException
from kubernetes.client import models as k8s

from candela_operators.command import (
    BAD_INPUT_EXIT_CODE,
    NO_DATA_EXIT_CODE,
    build_command,
    failure_reason,
    step_failure,
)

log = logging.getLogger(__name__)

SCRATCH = "/scratch"  # the step's scratch emptyDir: TMPDIR and CANDELA_SCRATCH
RUN_AS_USER = 10001  # the images' non-root user
# besides the scratch space: the container's writable layer and its logs
EPHEMERAL_OVERHEAD = 1 << 30
_UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "": 1}


def parse_quantity(text: str) -> int:
    """Bytes of a Kubernetes binary quantity (``512Mi``, ``2Gi``, ``1000``)."""
    for unit in ("Ki", "Mi", "Gi", "Ti"):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * _UNITS[unit])
    return int(text)


def quantity(n: int) -> str:
    """``n`` bytes as a Kubernetes quantity, rounded up to whole MiB."""
    mib = max(1, math.ceil(n / (1 << 20)))
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def _secret_env(name: str, secret: str, key: str, *, optional: bool = False) -> k8s.V1EnvVar:
    return k8s.V1EnvVar(
        name=name,
        value_from=k8s.V1EnvVarSource(
            secret_key_ref=k8s.V1SecretKeySelector(name=secret, key=key, optional=optional)
        ),
    )


def pod_environment(service_name: str) -> list[k8s.V1EnvVar]:
    """Every setting a step of ``service_name`` needs, from one place: the platform's own values
    (storage root, model registry, log level, S3 regions and archive buckets, knowledge base)
    and Secret references for what is secret (S3 endpoints and keys of the results and of the
    archive, the DSN where the service reads the platform's tables)."""
    from candela_operators.settings import get_settings
    from candela_sdk.registry import registry_root
    from candela_sdk.services import get_service

    s = get_settings()
    svc = get_service(service_name)
    plain: dict[str, str | None] = {
        "CANDELA_STORAGE_ROOT": s.storage,
        "CANDELA_MODEL_REGISTRY": registry_root(),
        "CANDELA_LOG_LEVEL": s.log_level,
        "CANDELA_S3_REGION": s.s3_region,
        "CANDELA_EODATA_BUCKETS": ",".join(s.eodata_buckets),
        "CANDELA_EODATA_S3_REGION": s.eodata_s3_region,
        # the knowledge base a pod loads into (rdf-etl): only an external endpoint is reachable
        "CANDELA_KB_ENDPOINT": s.kb_endpoint,
        "CANDELA_KB_UPDATE_ENDPOINT": s.kb_update_endpoint,
    }
    env = [k8s.V1EnvVar(name=k, value=v) for k, v in plain.items() if v]
    for prefix, secret, optional in (
        ("CANDELA_S3", s.k8s_s3_secret, False),
        ("CANDELA_EODATA_S3", s.k8s_eodata_secret, True),
    ):
        for key in ("endpoint_url", "access_key_id", "secret_access_key"):
            env.append(_secret_env(f"{prefix}_{key.upper()}", secret, key, optional=optional))
    if svc.needs_database:
        env.append(_secret_env("CANDELA_DATABASE_URL", s.k8s_db_secret, "dsn"))
    return env


def pod_settings(service_name: str) -> dict[str, Any]:
    """KubernetesPodOperator arguments for a service that do not depend on a step's arguments
    (those come from :func:`step_pod` when the pod is built)."""
    from candela_operators.settings import get_settings
    from candela_sdk.images import service_image
    from candela_sdk.services import get_service

    s = get_settings()
    svc = get_service(service_name)
    return {
        # the CPU image until the step's arguments are known (step_pod)
        "image": service_image(svc, s.k8s_image_registry, s.k8s_image_tag),
        "namespace": s.k8s_namespace,
        "in_cluster": s.k8s_in_cluster,
        "config_file": s.k8s_config_file,
        "service_account_name": s.k8s_service_account,
        "startup_timeout_seconds": s.k8s_startup_timeout,
        "deferrable": s.k8s_deferrable,
        "labels": {"app.kubernetes.io/part-of": "candela", "candela.eo/service": svc.name},
        "image_pull_policy": "IfNotPresent",
        "env_vars": pod_environment(service_name),
        "security_context": k8s.V1PodSecurityContext(
            run_as_non_root=True, run_as_user=RUN_AS_USER, fs_group=RUN_AS_USER
        ),
    }


def scratch_bytes(service_name: str, service_args: dict[str, Any]) -> int:
    """The local scratch space a step gets: its service's ``scratch_min`` plus
    ``scratch_per_input`` times the bytes of its inputs (files, objects or whole SAFE folders,
    measured in storage), at most ``CANDELA_K8S_SCRATCH_MAX``. An input that cannot be measured
    is bad input: the step would not find it either."""
    from candela_operators.settings import get_settings
    from candela_sdk import storage
    from candela_sdk.services import get_service

    svc = get_service(service_name)
    res = svc.resources
    total = 0
    if res.scratch_per_input:
        for name in svc.inputs:
            value = service_args.get(name)
            for uri in value if isinstance(value, list | tuple) else [value]:
                if uri:
                    total += storage.size(str(uri))
    wanted = parse_quantity(res.scratch_min) + math.ceil(res.scratch_per_input * total)
    return min(wanted, parse_quantity(get_settings().k8s_scratch_max))


def step_pod(service_name: str, service_args: dict[str, Any]) -> dict[str, Any]:
    """The pod arguments that depend on the step's arguments: image (GPU variant or not),
    resources (GPU only where the model runs on one; ephemeral storage), node selection, the
    scratch volume and its environment."""
    from candela_operators.settings import get_settings
    from candela_sdk.images import service_image
    from candela_sdk.services import get_service

    s = get_settings()
    svc = get_service(service_name)
    gpu = svc.device_for(service_args) == "gpu"
    scratch = scratch_bytes(service_name, service_args)
    ephemeral = quantity(scratch + EPHEMERAL_OVERHEAD)
    limits = {"cpu": svc.resources.cpu, "memory": svc.resources.memory}
    limits["ephemeral-storage"] = ephemeral
    requests = dict(limits)
    node_selector: dict[str, str] = {}
    tolerations: list[k8s.V1Toleration] = []
    if gpu:
        limits["nvidia.com/gpu"] = requests["nvidia.com/gpu"] = str(svc.resources.gpu)
        node_selector = dict(s.k8s_gpu_node_selector)
        tolerations = [
            k8s.V1Toleration(key=s.k8s_gpu_toleration_key, operator="Exists", effect="NoSchedule")
        ]
    return {
        "image": service_image(svc, s.k8s_image_registry, s.k8s_image_tag, gpu=gpu),
        "container_resources": k8s.V1ResourceRequirements(limits=limits, requests=requests),
        "node_selector": node_selector,
        "tolerations": tolerations,
        "volumes": [
            k8s.V1Volume(
                name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=quantity(scratch))
            )
        ],
        "volume_mounts": [k8s.V1VolumeMount(name="scratch", mount_path=SCRATCH)],
        "env": {"TMPDIR": SCRATCH, "CANDELA_SCRATCH": SCRATCH},
        "gpu": gpu,
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
        self._base_env = list(merged.get("env_vars") or [])

    def _render_step(self) -> None:
        """Command, image, resources, node selection and scratch volume of this step."""
        from candela_operators import GPU_POOL
        from candela_operators.command import StepArgumentsError
        from candela_sdk.errors import InputError

        args = dict(self.service_args)
        argv = build_command(self.service, args)
        self.cmds = argv[:1]
        self.arguments = argv[1:]
        try:  # an unknown model, an input that is not there: bad input, not retried
            step = step_pod(self.service, args)
        except InputError as exc:
            raise StepArgumentsError(f"{self.service}: {exc}") from None
        self.image = step["image"]
        self.container_resources = step["container_resources"]
        self.node_selector = step["node_selector"]
        self.tolerations = step["tolerations"]
        self.volumes = step["volumes"]
        self.volume_mounts = step["volume_mounts"]
        self.env_vars = [
            *self._base_env,
            *(k8s.V1EnvVar(name=k, value=v) for k, v in step["env"].items()),
            k8s.V1EnvVar(name="CANDELA_IMAGE", value=step["image"]),
        ]
        self.labels = {**self.labels, "candela.eo/device": "gpu" if step["gpu"] else "cpu"}
        if step["gpu"] != (self.pool == GPU_POOL):
            log.warning(
                "%s: the step %s a GPU but its task is %s the %s pool",
                self.task_id,
                "needs" if step["gpu"] else "does not need",
                "not in" if step["gpu"] else "in",
                GPU_POOL,
            )

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> k8s.V1Pod:
        self._render_step()
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
