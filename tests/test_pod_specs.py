"""The pods of the demo runs, rendered from the DAG's own tasks (``CANDELA_RUNNER=kubernetes``).

No cluster: the demo runs step by step in this process as Airflow would run it — the DAG's own
planning tasks (their Python callables) on the demo's real configuration, each step's service run
for real on the sample data (its JSON result is the XCom the next task reads) — and every step's
pod is built from the DAG's task (``partial_kwargs`` of the mapped task, with the arguments the
plan gave it), as the worker builds it. Each pod is checked: the image (the ``-gpu`` variant only
where the model runs on a GPU, names as ``infra/images.sh list`` prints them), resources (GPU,
ephemeral storage), node selection, pool, environment and scratch volume, and validated against
the Kubernetes schema of the client's version.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client import ApiClient

REPO = Path(__file__).resolve().parents[1]
DAG_FILE = REPO / "dags" / "s2_change_detection.py"
REGISTRY, TAG = "registry.example.eu/eo", "2026.12"
KB = "http://kb.candela.svc:7878/query"


class Demo:
    """One demo run, step by step: the XCom of each task and the pods of each step."""

    def __init__(self, dag: Any, conf: dict[str, Any]) -> None:
        self.dag = dag
        self.params = {name: dag.params[name] for name in dag.params.keys()} | conf
        self.run_id = f"manual__{uuid.uuid4().hex[:8]}"
        self.pods: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
        self.skipped: dict[str, str] = {}

    def call(self, task_id: str, *args: Any) -> Any:
        """A planning task's callable, with this run's context; ``None`` when it skips."""
        from airflow.sdk.exceptions import AirflowSkipException

        fn = self.dag.get_task(task_id).python_callable
        context = {"params": self.params, "dag": self.dag, "run_id": self.run_id, "ti": None}
        original = fn.__globals__["get_current_context"]
        fn.__globals__["get_current_context"] = lambda: context
        try:
            return fn(*args)
        except AirflowSkipException as exc:
            self.skipped[task_id] = str(exc)
            return None
        finally:
            fn.__globals__["get_current_context"] = original

    def step(self, task_id: str, jobs: list[dict[str, Any]] | None, run: bool = True) -> list:
        """Render the pod of each of the step's jobs from the DAG's task; run its service."""
        from candela_operators import step_operator_class
        from candela_sdk.contract import execute
        from candela_sdk.services import get_service

        task = self.dag.get_task(task_id)
        Step = step_operator_class("kubernetes")
        kw = dict(getattr(task, "partial_kwargs", None) or {})
        if not kw:  # not mapped: the DAG's operator itself
            assert isinstance(task, Step), task_id
        results = []
        for args in jobs or []:
            if kw:  # a mapped task: its partial arguments and this job's, as Airflow unmaps it
                op = Step(task_id=task_id, service_args=args, **kw)
            else:
                op, op.service_args = task, args
            pod = op.build_pod_request_obj(dry_run=True)
            # what the checks read of the operator, kept as it was for this job
            rec = SimpleNamespace(service=op.service, service_args=dict(args), pool=op.pool)
            self.pods.setdefault(task_id, []).append(
                (rec, ApiClient().sanitize_for_serialization(pod))
            )
            if run:
                svc = get_service(op.service)
                result = execute(svc, svc.params.model_validate(args))
                results.append(json.loads(json.dumps(result, default=str)))
        return results


@pytest.fixture(scope="module")
def demo_runs(
    pg_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Demo]]:
    """Both demos (`candela demo`, `candela demo --fusion`) and a CPU-model variant, run through
    the DAG's tasks with the kubernetes runner."""
    import psycopg

    from candela.db import migrate

    name = "t_" + uuid.uuid4().hex[:10]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    dsn = pg_server.replace("/postgres?", f"/{name}?")
    migrate(dsn)
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            "CANDELA_HOME": str(root / "home"),
            "CANDELA_STORAGE_ROOT": (root / "storage").as_uri(),
            "CANDELA_DATABASE_URL": dsn,
            "CANDELA_RUNNER": "kubernetes",
            "CANDELA_KB_ENDPOINT": KB,
            "CANDELA_LOG_LEVEL": "DEBUG",
            "CANDELA_K8S_IMAGE_REGISTRY": REGISTRY,
            "CANDELA_K8S_IMAGE_TAG": TAG,
        }.items():
            mp.setenv(key, value)
        yield _run_demos(dsn)


def _run_demos(dsn: str) -> dict[str, Demo]:
    from candela.cli import (
        DEMO_CONF,
        DEMO_FUSION_CONF,
        DEMO_FUSION_SAMPLE,
        DEMO_SAMPLE,
        register_products,
    )
    from candela.run_inputs import stage_zones
    from candela.settings import get_settings

    register_products(dsn, [DEMO_SAMPLE, DEMO_FUSION_SAMPLE])
    dag = runpy.run_path(str(DAG_FILE))["s2_change_detection"]()
    # what `candela demo` triggers: its conf, the zones file put into storage on the way
    conf = {**DEMO_CONF, "zones": stage_zones(get_settings(), DEMO_CONF["zones"])}
    runs = {"demo": _run(Demo(dag, conf)), "fusion": _run(Demo(dag, DEMO_FUSION_CONF))}
    # the same pairs with a CPU model: detect_changes instead of detect_changes_gpu
    cpu = Demo(dag, {**conf, "model": "cva"})
    demo = runs["demo"]
    stacks, prefix, zones = demo.stacks, demo.plan["prefix"], demo.plan["zones"]
    cpu.step("detect_changes", cpu.call("plan_changes", stacks, prefix, zones, "cpu"), run=False)
    cpu.step("detect_changes_gpu", cpu.call("plan_changes_gpu", stacks, prefix, zones, "gpu"))
    runs["cpu"] = cpu
    return runs


def _run(d: Demo) -> Demo:
    """The DAG's wiring, task by task (see dags/s2_change_detection.py)."""
    plan = d.plan = d.call("plan_run")
    (found,) = d.step("search_products", [plan["search"]])
    pieces = d.step("preprocess", d.call("plan_preprocess", found, plan["prefix"], plan["pieces"]))
    stacks = d.stacks = d.step("mosaic", d.call("plan_mosaics", pieces, plan["prefix"]))
    on_cpu = d.step(
        "detect_changes", d.call("plan_changes", stacks, plan["prefix"], plan["zones"], "cpu")
    )
    on_gpu = d.step(
        "detect_changes_gpu",
        d.call("plan_changes_gpu", stacks, plan["prefix"], plan["zones"], "gpu"),
        run=False,  # (the encoder's result is not needed below: its job names its item)
    )
    changes = d.call("changes_done", on_cpu, on_gpu)
    if d.pods.get("detect_changes_gpu"):  # the result rdf-etl is given: the job's item
        changes += [
            {"outputs": {"item": op.service_args["output"] + "/item.json"}}
            for op, _ in d.pods["detect_changes_gpu"]
        ]
    fusion_jobs = d.call("plan_fusion", found, stacks, plan["prefix"], plan["zones"])
    landcover = d.step("fuse_landcover", fusion_jobs)
    d.step("load_rdf", d.call("plan_rdf", changes, landcover, plan["key"]), run=False)
    return d


def _base(pod: dict[str, Any]) -> dict[str, Any]:
    (base,) = [c for c in pod["spec"]["containers"] if c["name"] == "base"]
    return base


def _all_pods(runs: dict[str, Demo]) -> list[tuple[str, Any, dict[str, Any]]]:
    return [(t, op, pod) for d in runs.values() for t, ps in d.pods.items() for op, pod in ps]


def test_every_step_of_the_demos_has_its_pod(demo_runs: dict[str, Demo]) -> None:
    demo, fusion, cpu = demo_runs["demo"], demo_runs["fusion"], demo_runs["cpu"]
    counts = {t: len(p) for t, p in demo.pods.items()}
    # Bordeaux: two dates, one pair, the encoder (GPU); no Sentinel-1 match, no land cover
    assert counts == {
        "search_products": 1,
        "preprocess": 2,
        "mosaic": 2,
        "detect_changes_gpu": 1,
        "load_rdf": 1,
    }, (counts, demo.skipped)
    assert "runs on a GPU" in demo.skipped["plan_changes"]
    assert "Sentinel-1" in demo.skipped["plan_fusion"]
    # BigEarthNet: one date (no pair), its S1 match: a land-cover map, loaded into the KB
    assert {t: len(p) for t, p in fusion.pods.items()} == {
        "search_products": 1,
        "preprocess": 1,
        "mosaic": 1,
        "fuse_landcover": 1,
        "load_rdf": 1,
    }, fusion.skipped
    assert {t: len(p) for t, p in cpu.pods.items()} == {"detect_changes": 1}
    assert "runs on a CPU" in cpu.skipped["plan_changes_gpu"]


def test_each_pod_runs_its_step_with_the_right_image_and_resources(
    demo_runs: dict[str, Demo],
) -> None:
    from candela_operators import GPU_POOL
    from candela_operators.command import build_command
    from candela_operators.kubernetes import parse_quantity
    from candela_sdk.images import all_images

    images = all_images(REGISTRY, TAG)
    for task_id, op, pod in _all_pods(demo_runs):
        base = _base(pod)
        service = op.service
        assert [*base["command"], *base["args"]] == build_command(service, op.service_args)
        limits, requests = base["resources"]["limits"], base["resources"]["requests"]
        gpu = task_id == "detect_changes_gpu"  # the encoder: the only model here on a GPU
        role = service + ("-gpu" if gpu else "")
        assert base["image"] == images[role], (task_id, base["image"])
        assert ("nvidia.com/gpu" in limits) is gpu, task_id
        assert (op.pool == GPU_POOL) is gpu, task_id
        assert bool(pod["spec"].get("nodeSelector")) is gpu, task_id
        assert bool(pod["spec"].get("tolerations")) is gpu, task_id
        assert pod["metadata"]["labels"]["candela.eo/device"] == ("gpu" if gpu else "cpu")
        if gpu:
            assert limits["nvidia.com/gpu"] == requests["nvidia.com/gpu"] == "1"
            assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        # scratch: an emptyDir with a size limit, used as TMPDIR, within the ephemeral storage
        (scratch,) = [v for v in pod["spec"]["volumes"] if v["name"] == "scratch"]
        assert {"mountPath": "/scratch", "name": "scratch"} in base["volumeMounts"]
        size = parse_quantity(scratch["emptyDir"]["sizeLimit"])
        assert parse_quantity(requests["ephemeral-storage"]) > size >= 512 << 20
        assert requests["ephemeral-storage"] == limits["ephemeral-storage"]
        env = {e["name"]: e for e in base["env"]}
        assert env["TMPDIR"]["value"] == env["CANDELA_SCRATCH"]["value"] == "/scratch"
        assert env["CANDELA_IMAGE"]["value"] == base["image"]


def test_scratch_grows_with_the_inputs(demo_runs: dict[str, Demo]) -> None:
    from candela_operators.kubernetes import parse_quantity
    from candela_sdk import storage
    from candela_sdk.services import get_service

    for _task_id, op, pod in _all_pods(demo_runs):
        svc = get_service(op.service)
        (scratch,) = [v for v in pod["spec"]["volumes"] if v["name"] == "scratch"]
        inputs = [
            u
            for name in svc.inputs
            for u in (
                op.service_args[name]
                if isinstance(op.service_args.get(name), list)
                else [op.service_args.get(name)]
            )
            if u
        ]
        measured = sum(storage.size(u) for u in inputs)
        expected = parse_quantity(svc.resources.scratch_min) + svc.resources.scratch_per_input * (
            measured
        )
        got = parse_quantity(scratch["emptyDir"]["sizeLimit"])
        assert expected <= got < expected + (1 << 20), (op.service, got, expected)
        if svc.resources.scratch_per_input:
            assert measured > 0, op.service


def test_every_setting_a_step_needs_reaches_its_pod(demo_runs: dict[str, Demo]) -> None:
    from candela.settings import get_settings
    from candela_sdk.registry import registry_root

    s = get_settings()
    for task_id, op, pod in _all_pods(demo_runs):
        env = {e["name"]: e for e in _base(pod)["env"]}
        value = {k: e.get("value") for k, e in env.items()}
        ref = {k: (e.get("valueFrom") or {}).get("secretKeyRef") for k, e in env.items()}
        assert value["CANDELA_STORAGE_ROOT"] == s.storage
        assert value["CANDELA_MODEL_REGISTRY"] == registry_root()
        assert value["CANDELA_LOG_LEVEL"] == "DEBUG"  # the platform's, as a local step gets it
        assert value["CANDELA_KB_ENDPOINT"] == KB
        assert value["CANDELA_EODATA_BUCKETS"] == "eodata"
        for key in ("ENDPOINT_URL", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY"):
            # results and archive: two Secrets, the archive's optional (else one set serves both)
            assert ref[f"CANDELA_S3_{key}"]["name"] == "candela-s3"
            assert not ref[f"CANDELA_S3_{key}"].get("optional")
            assert ref[f"CANDELA_EODATA_S3_{key}"]["name"] == "candela-eodata"
            assert ref[f"CANDELA_EODATA_S3_{key}"]["optional"] is True
        # the DSN only for the service that reads the platform's tables (the catalogue)
        assert ("CANDELA_DATABASE_URL" in env) is (op.service == "search"), task_id
        if op.service == "search":
            assert (ref["CANDELA_DATABASE_URL"]["name"], ref["CANDELA_DATABASE_URL"]["key"]) == (
                "candela-db",
                "dsn",
            )
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["metadata"]["namespace"] == "candela"


def test_zones_travel_as_a_storage_uri(demo_runs: dict[str, Demo]) -> None:
    from candela.settings import get_settings

    root = get_settings().storage.rstrip("/")
    demo = demo_runs["demo"]
    zones = demo.params["zones"]
    assert zones.startswith(root + "/run-inputs/zones/") and zones.endswith(
        "communes-33-gironde.geojson"
    )
    ((op, _),) = demo.pods["detect_changes_gpu"]
    assert op.service_args["zones"] == zones
    # a local path in the conf (a run not started by the CLI): plan_run puts it into storage
    local = Demo(demo.dag, {**demo.params, "zones": str(REPO / "data" / "oscd" / "bordeaux" /
                                                        "bordeaux.geojson")})  # fmt: skip
    staged = local.call("plan_run")["zones"]
    assert staged.startswith(root + "/run-inputs/zones/") and staged.endswith("bordeaux.geojson")
    missing = Demo(demo.dag, {**demo.params, "zones": "/nonexistent/zones.geojson"})
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="give a storage URI"):
        missing.call("plan_run")


def test_every_pod_passes_the_kubernetes_schema(demo_runs: dict[str, Demo]) -> None:
    import kubernetes

    kubernetes_validate = pytest.importorskip("kubernetes_validate")  # a dev dependency
    version = f"1.{kubernetes.__version__.split('.')[0]}"  # the API the client's models follow
    for task_id, _op, pod in _all_pods(demo_runs):
        try:
            kubernetes_validate.validate(pod, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{task_id}: {exc}") from exc


def test_pod_images_are_the_images_the_build_script_lists(demo_runs: dict[str, Demo]) -> None:
    """``infra/images.sh list`` (the build script) names every image a pod pulls, as the one
    Python rule does (:mod:`candela_sdk.images`)."""
    from candela_sdk.images import all_images

    script = REPO / "infra" / "images.sh"
    expected = all_images(REGISTRY, TAG)
    pulled = {_base(pod)["image"] for _t, _op, pod in _all_pods(demo_runs)}
    assert pulled <= set(expected.values())
    for image in expected.values():  # the contract's rule, whatever the script says
        assert re.fullmatch(rf"{re.escape(REGISTRY)}/candela-[a-z0-9-]+:{TAG}(-gpu)?", image)
    if not script.exists():
        pytest.skip("infra/images.sh is not in this checkout")
    out = subprocess.run(
        ["bash", str(script), "list", "--registry", REGISTRY, "--tag", TAG],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    ).stdout
    listed = {line.split()[0]: line.split()[2] for line in out.splitlines() if line.strip()}
    assert listed == expected
