"""The kubernetes runner renders the same command as the local runner into a pod spec.

No cluster: pods are built with ``build_pod_request_obj(dry_run=True)`` and checked.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import ApiClient

from candela_operators import step_operator_class
from candela_operators.command import NO_DATA_EXIT_CODE, build_command

SAMPLE_ARGS: dict[str, dict[str, Any]] = {
    "search": {"collection": "sentinel-2-l2a", "bbox": [-0.68, 44.83, -0.56, 44.93]},
    "preprocess": {
        "product": "s3://eodata/Sentinel-2/MSI/L2A/2017/04/19/S2A_MSIL2A_20170419.SAFE",
        "output": "s3://candela-results/runs/x/stacks/a.tif",
    },
    "changedetect": {
        "before": "s3://candela-results/runs/x/stacks/a.tif",
        "after": "s3://candela-results/runs/x/stacks/b.tif",
        "model": "cva",
        "output": "s3://candela-results/runs/x/changes/a__b",
    },
}


def render(service: str, **settings_env: str) -> dict[str, Any]:
    Step = step_operator_class("kubernetes")
    op = Step(task_id=f"run_{service}", service=service, service_args=SAMPLE_ARGS[service])
    assert op.skip_on_exit_code == [NO_DATA_EXIT_CODE]
    pod = op.build_pod_request_obj(dry_run=True)
    return dict(ApiClient().sanitize_for_serialization(pod))


def _base(pod: dict[str, Any]) -> dict[str, Any]:
    (base,) = [c for c in pod["spec"]["containers"] if c["name"] == "base"]
    return base


@pytest.mark.parametrize("service", sorted(SAMPLE_ARGS))
def test_pod_runs_the_same_command_as_the_local_runner(service: str) -> None:
    pod = render(service)
    base = _base(pod)
    assert [*base["command"], *base["args"]] == build_command(service, SAMPLE_ARGS[service])
    assert base["image"].endswith(f"/candela-{service}:0.1.0")
    env = {e["name"]: e for e in base["env"]}
    assert env["CANDELA_S3_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "candela-s3"
    assert env["CANDELA_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "candela-db"
    # the JSON result comes back through the XCom sidecar
    names = [c["name"] for c in pod["spec"]["containers"]]
    assert "airflow-xcom-sidecar" in names
    assert {"mountPath": "/airflow/xcom", "name": "xcom"} in base["volumeMounts"]
    assert pod["metadata"]["namespace"] == "candela"
    assert pod["metadata"]["labels"]["candela.eo/service"] == service
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_change_detection_pod_asks_for_a_gpu() -> None:
    pod = render("changedetect")
    res = _base(pod)["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"


@pytest.mark.parametrize("service", ["search", "preprocess"])
def test_cpu_steps_do_not_ask_for_a_gpu(service: str) -> None:
    pod = render(service)
    assert "nvidia.com/gpu" not in (_base(pod)["resources"]["limits"] or {})
    assert not pod["spec"].get("nodeSelector")


def test_settings_pick_registry_namespace_and_startup_timeout(monkeypatch) -> None:
    monkeypatch.setenv("CANDELA_K8S_IMAGE_REGISTRY", "registry.example.eu/eo")
    monkeypatch.setenv("CANDELA_K8S_IMAGE_TAG", "2026.11")
    monkeypatch.setenv("CANDELA_K8S_NAMESPACE", "eo-prod")
    monkeypatch.setenv("CANDELA_K8S_STARTUP_TIMEOUT", "1200")
    Step = step_operator_class("kubernetes")
    op = Step(task_id="t", service="preprocess", service_args=SAMPLE_ARGS["preprocess"])
    assert op.startup_timeout_seconds == 1200
    pod = ApiClient().sanitize_for_serialization(op.build_pod_request_obj(dry_run=True))
    assert _base(pod)["image"] == "registry.example.eu/eo/candela-preprocess:2026.11"
    assert pod["metadata"]["namespace"] == "eo-prod"


def test_bad_arguments_fail_before_a_pod_is_built() -> None:
    from candela_operators.command import StepArgumentsError

    Step = step_operator_class("kubernetes")
    op = Step(task_id="t", service="changedetect", service_args={"before": "x"})
    with pytest.raises(StepArgumentsError, match="--after"):
        op.build_pod_request_obj(dry_run=True)


def test_runner_setting(monkeypatch) -> None:
    from candela_operators.local import LocalStepOperator

    monkeypatch.delenv("CANDELA_RUNNER", raising=False)
    assert step_operator_class() is LocalStepOperator
    monkeypatch.setenv("CANDELA_RUNNER", "kubernetes")
    assert step_operator_class().__name__ == "KubernetesStepOperator"
    monkeypatch.setenv("CANDELA_RUNNER", "ssh")
    with pytest.raises(ValueError, match="CANDELA_RUNNER"):
        step_operator_class()


def test_every_step_of_a_whole_run_renders_a_pod(monkeypatch) -> None:
    """Parse the pipeline with CANDELA_RUNNER=kubernetes and render each step's pod."""
    import runpy
    from pathlib import Path

    monkeypatch.setenv("CANDELA_RUNNER", "kubernetes")
    dag_file = Path(__file__).resolve().parents[1] / "dags" / "s2_change_detection.py"
    ns = runpy.run_path(str(dag_file))
    dag = ns["s2_change_detection"]() if callable(ns.get("s2_change_detection")) else None
    assert dag is not None
    Step = step_operator_class("kubernetes")
    steps = {
        t.task_id: t
        for t in dag.tasks
        if t.task_id in ("search_products", "preprocess", "detect_changes")
    }
    assert set(steps) == {"search_products", "preprocess", "detect_changes"}
    rendered = {}
    for task_id, task in steps.items():
        kw = getattr(task, "partial_kwargs", None)
        service = kw["service"] if kw else task.service
        op = Step(
            task_id=task_id,
            service=service,
            service_args=SAMPLE_ARGS[service],
            pool=(kw or {}).get("pool") or getattr(task, "pool", None),
        )
        assert op.deferrable is True
        assert op.startup_timeout_seconds >= 600  # longer than a node scale-up
        rendered[task_id] = (
            op,
            ApiClient().sanitize_for_serialization(op.build_pod_request_obj(dry_run=True)),
        )
    gpu = [
        t
        for t, (_, pod) in rendered.items()
        if "nvidia.com/gpu" in (_base(pod)["resources"]["limits"] or {})
    ]
    assert gpu == ["detect_changes"]
    assert rendered["detect_changes"][0].pool == "candela_gpu"


def _finished_pod(exit_code: int | None, message: str | None = None) -> Any:
    from kubernetes.client import models as k8s

    state = (
        k8s.V1ContainerState(running=k8s.V1ContainerStateRunning())
        if exit_code is None
        else k8s.V1ContainerState(
            terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code, message=message)
        )
    )
    status = k8s.V1ContainerStatus(
        name="base", state=state, image="x", image_id="x", ready=False, restart_count=0
    )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="candela-preprocess-abc", namespace="candela"),
        status=k8s.V1PodStatus(phase="Failed", container_statuses=[status]),
    )


_LOG_TAIL = (
    "2026-12-01 10:00:00 ERROR candela_sdk.contract: band B04 missing\n"
    "candela-preprocess: bad input: band B04 missing from product\n"
    '{"error": "band B04 missing from product", "outcome": "bad_input"}\n'
)


def test_bad_input_exit_code_maps_to_a_failure_without_retry() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from candela_operators.kubernetes import pod_failure

    # the reason from the termination message (the log tail of the failed container) ...
    failure = pod_failure("preprocess", _finished_pod(2, _LOG_TAIL), "base")
    assert isinstance(failure, AirflowFailException)
    assert "bad input" in str(failure) and "band B04 missing from product" in str(failure)
    # ... or from the JSON result the XCom sidecar brought back
    failure = pod_failure("preprocess", _finished_pod(2), "base", {"error": "AOI is empty"})
    assert isinstance(failure, AirflowFailException) and "AOI is empty" in str(failure)
    # a plain last line when there is no JSON
    failure = pod_failure("preprocess", _finished_pod(2, "x\nthreshold must be <= 1\n"), "base")
    assert failure is not None and str(failure).endswith("threshold must be <= 1")
    # other exit codes, a running container, another container: not this function's business
    assert pod_failure("preprocess", _finished_pod(1, _LOG_TAIL), "base") is None
    assert pod_failure("preprocess", _finished_pod(137), "base") is None
    assert pod_failure("preprocess", _finished_pod(None), "base") is None
    assert pod_failure("preprocess", _finished_pod(2, _LOG_TAIL), "sidecar") is None
    assert pod_failure("preprocess", None, "base") is None


@pytest.mark.parametrize(
    ("exit_code", "outcome"), [(2, "fail"), (3, "skip"), (1, "retry"), (0, None)]
)
def test_pod_cleanup_maps_exit_codes_to_task_outcomes(
    monkeypatch: pytest.MonkeyPatch, exit_code: int, outcome: str | None
) -> None:
    """Through the provider's own ``cleanup``: 2 fails for good, 3 skips, others are retried."""
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowSkipException,
    )

    Step = step_operator_class("kubernetes")
    op = Step(task_id="t", service="preprocess", service_args=SAMPLE_ARGS["preprocess"])
    # no cluster: reading, labelling and deleting the pod are not what is tested here
    monkeypatch.setattr(op, "is_istio_enabled", lambda *a, **k: False)
    monkeypatch.setattr(op, "process_pod_deletion", lambda *a, **k: None)
    monkeypatch.setattr(op, "patch_already_checked", lambda *a, **k: None)
    op.do_xcom_push = False
    pod = _finished_pod(exit_code, _LOG_TAIL)
    pod.status.phase = "Succeeded" if exit_code == 0 else "Failed"
    if outcome is None:
        op.cleanup(pod, pod)
        return
    with pytest.raises(AirflowException) as raised:
        op.cleanup(pod, pod)
    exc = raised.value
    assert isinstance(exc, AirflowFailException) == (outcome == "fail")
    assert isinstance(exc, AirflowSkipException) == (outcome == "skip")
    if outcome == "fail":
        assert "band B04 missing from product" in str(exc)


def test_pod_keeps_the_log_tail_as_termination_message() -> None:
    pod = render("preprocess")
    assert _base(pod)["terminationMessagePolicy"] == "FallbackToLogsOnError"
