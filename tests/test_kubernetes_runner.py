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
        "product": "{inputs}/S2A_MSIL2A_20170419.SAFE",
        "output": "{inputs}/out/a.tif",
    },
    "changedetect": {
        "before": "{inputs}/a.tif",
        "after": "{inputs}/b.tif",
        "model": "cva",
        "output": "{inputs}/out/a__b",
    },
}


@pytest.fixture(autouse=True)
def inputs(tmp_path, monkeypatch) -> Any:
    """The steps' input files (their sizes size the scratch space): 3 MB stacks, a 1 MB SAFE."""
    (tmp_path / "a.tif").write_bytes(b"\0" * 3_000_000)
    (tmp_path / "b.tif").write_bytes(b"\0" * 3_000_000)
    safe = tmp_path / "S2A_MSIL2A_20170419.SAFE" / "GRANULE"
    safe.mkdir(parents=True)
    (safe / "B02.jp2").write_bytes(b"\0" * 1_000_000)
    monkeypatch.setenv("CANDELA_HOME", str(tmp_path / "home"))
    return tmp_path


def args_for(service: str, inputs: Any, **changes: Any) -> dict[str, Any]:
    out = {k: v.format(inputs=inputs) if isinstance(v, str) else v
           for k, v in SAMPLE_ARGS[service].items()}  # fmt: skip
    return {**out, **changes}


def render(service: str, inputs: Any, **changes: Any) -> dict[str, Any]:
    Step = step_operator_class("kubernetes")
    args = args_for(service, inputs, **changes)
    op = Step(task_id=f"run_{service}", service=service, service_args=args)
    assert op.skip_on_exit_code == [NO_DATA_EXIT_CODE]
    pod = op.build_pod_request_obj(dry_run=True)
    return dict(ApiClient().sanitize_for_serialization(pod))


def _base(pod: dict[str, Any]) -> dict[str, Any]:
    (base,) = [c for c in pod["spec"]["containers"] if c["name"] == "base"]
    return base


@pytest.mark.parametrize("service", sorted(SAMPLE_ARGS))
def test_pod_runs_the_same_command_as_the_local_runner(service: str, inputs: Any) -> None:
    pod = render(service, inputs)
    base = _base(pod)
    assert [*base["command"], *base["args"]] == build_command(service, args_for(service, inputs))
    assert base["image"].endswith(f"/candela-{service}:0.1.0")
    env = {e["name"]: e for e in base["env"]}
    assert env["CANDELA_S3_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "candela-s3"
    assert ("CANDELA_DATABASE_URL" in env) is (service == "search")
    # the JSON result comes back through the XCom sidecar
    names = [c["name"] for c in pod["spec"]["containers"]]
    assert "airflow-xcom-sidecar" in names
    assert {"mountPath": "/airflow/xcom", "name": "xcom"} in base["volumeMounts"]
    assert pod["metadata"]["namespace"] == "candela"
    assert pod["metadata"]["labels"]["candela.eo/service"] == service
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_a_gpu_model_asks_for_a_gpu_and_the_gpu_image(inputs: Any) -> None:
    pod = render("changedetect", inputs, model="encoder")
    res = _base(pod)["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "1"
    assert _base(pod)["image"].endswith("/candela-changedetect:0.1.0-gpu")
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"


@pytest.mark.parametrize(("service", "model"), [("search", None), ("preprocess", None),
                                                ("changedetect", "cva"), ("changedetect", "irmad")])  # fmt: skip
def test_cpu_steps_do_not_ask_for_a_gpu(service: str, model: str | None, inputs: Any) -> None:
    pod = render(service, inputs, **({"model": model} if model else {}))
    assert "nvidia.com/gpu" not in (_base(pod)["resources"]["limits"] or {})
    assert not pod["spec"].get("nodeSelector")
    assert not _base(pod)["image"].endswith("-gpu")


def test_scratch_is_sized_from_the_inputs(inputs: Any, monkeypatch) -> None:
    from candela_operators.kubernetes import parse_quantity

    def scratch(pod: dict[str, Any]) -> int:
        (vol,) = [v for v in pod["spec"]["volumes"] if v["name"] == "scratch"]
        return parse_quantity(vol["emptyDir"]["sizeLimit"])

    def mib(n: float) -> int:  # a quantity in whole MiB, rounded up
        return -(-int(n) // (1 << 20)) << 20

    # changedetect: 1 GiB + 0.5 x the two 3 MB stacks; preprocess: 1 GiB + 8 x the 1 MB SAFE
    assert scratch(render("changedetect", inputs)) == mib((1 << 30) + 0.5 * 6_000_000)
    assert scratch(render("preprocess", inputs)) == mib((1 << 30) + 8 * 1_000_000)
    assert scratch(render("search", inputs)) == 512 << 20
    monkeypatch.setenv("CANDELA_K8S_SCRATCH_MAX", "1Gi")
    assert scratch(render("preprocess", inputs)) == 1 << 30
    from candela_operators.command import StepArgumentsError

    with pytest.raises(StepArgumentsError, match="no such file"):
        render("changedetect", inputs, before=str(inputs / "missing.tif"))
    with pytest.raises(StepArgumentsError, match="unknown change model"):
        render("changedetect", inputs, model="nosuch")


def test_settings_pick_registry_namespace_and_startup_timeout(monkeypatch, inputs: Any) -> None:
    monkeypatch.setenv("CANDELA_K8S_IMAGE_REGISTRY", "registry.example.eu/eo")
    monkeypatch.setenv("CANDELA_K8S_IMAGE_TAG", "2026.11")
    monkeypatch.setenv("CANDELA_K8S_NAMESPACE", "eo-prod")
    monkeypatch.setenv("CANDELA_K8S_STARTUP_TIMEOUT", "1200")
    Step = step_operator_class("kubernetes")
    op = Step(task_id="t", service="preprocess", service_args=args_for("preprocess", inputs))
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


def test_pod_keeps_the_log_tail_as_termination_message(inputs: Any) -> None:
    pod = render("preprocess", inputs)
    assert _base(pod)["terminationMessagePolicy"] == "FallbackToLogsOnError"
