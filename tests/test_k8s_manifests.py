"""The cluster deployment: every manifest under infra/k8s (rendered by `kubectl kustomize`, the
kustomize built into the kubectl wheel) passes strict Kubernetes schema validation
(kubernetes-validate) for the Kubernetes version of the locked `kubernetes` client; the settings
the manifests carry exist and agree with the operators, the CLI, the image names, the Helm
values and the OpenStack node groups. No cluster here: nothing is applied."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "infra" / "k8s"
KUBECTL = str(Path(sys.executable).parent / "kubectl")
# the Kubernetes version the repository targets: that of its locked client (kubernetes 36.x is
# Kubernetes 1.36), the one the step pods are built with
K8S_VERSION = f"1.{kubernetes.__version__.split('.')[0]}.0"
KUSTOMIZATIONS = ["overlays/cpu", "overlays/gpu", "seaweedfs"]
# kubernetes-validate reads its schema files again for each resource: once is enough here
kubernetes_validate.utils.schema_contents = cache(kubernetes_validate.utils.schema_contents)


@cache
def render(path: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / path)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job")]


def patch_files() -> set[Path]:
    out = set()
    for k in K8S.rglob("kustomization.yaml"):
        for p in yaml.safe_load(k.read_text()).get("patches", []):
            out.add((k.parent / p["path"]).resolve())
    return out


def plain_manifests() -> list[Path]:
    patches = patch_files()
    return sorted(
        p
        for p in K8S.rglob("*.yaml")
        if p.name != "kustomization.yaml" and p.resolve() not in patches
    )


def config(overlay: str = "overlays/gpu") -> dict[str, str]:
    return find(render(overlay), "ConfigMap", "candela-config")["data"]


# --- schema ---------------------------------------------------------------------------------


def test_the_target_version_has_schemas() -> None:
    assert kubernetes_validate.utils.major_minor(K8S_VERSION) in {
        kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()
    }


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_rendered_manifests_pass_strict_validation(path: str) -> None:
    docs = render(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("path", plain_manifests(), ids=lambda p: str(p.relative_to(K8S)))
def test_each_manifest_file_passes_strict_validation(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_refuses_a_misspelt_field() -> None:
    deploy = json.loads(json.dumps(find(render("overlays/cpu"), "Deployment", "candela-scheduler")))
    deploy["spec"]["replica"] = deploy["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deploy, K8S_VERSION, strict=True)


# --- what the manifests say -----------------------------------------------------------------


def test_the_platform_components_run_on_the_platform_image() -> None:
    rows = subprocess.run(
        [str(REPO / "infra/images.sh"), "list", "platform"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout.split()
    platform_image = rows[2]
    for overlay in ("overlays/cpu", "overlays/gpu"):
        docs = render(overlay)
        names = {d["metadata"]["name"] for d in workloads(docs)}
        assert names == {
            "candela-api-server",
            "candela-scheduler",
            "candela-dag-processor",
            "candela-triggerer",
            "candela-init",
        }
        for w in workloads(docs):
            spec = w["spec"]["template"]["spec"]
            for c in spec.get("initContainers", []) + spec["containers"]:
                assert c["image"] == platform_image
        data = config(overlay)
        # the step images come from the same registry and tag as the platform's
        registry, _, tag = platform_image.rpartition(":")
        assert registry.rsplit("/", 1)[0] == data["CANDELA_K8S_IMAGE_REGISTRY"]
        assert tag == data["CANDELA_K8S_IMAGE_TAG"]


def test_every_pod_is_non_root_and_bounded() -> None:
    docs = render("overlays/gpu") + render("seaweedfs")
    for w in workloads(docs):
        spec = w["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["requests"] and c["resources"]["limits"]


def test_components_wait_for_init_and_init_runs_cluster_init() -> None:
    from typer.main import get_command

    from candela.cli import app

    docs = render("overlays/cpu")
    job = find(docs, "Job", "candela-init")
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["candela", "cluster", "init"]
    assert "init" in get_command(app).commands["cluster"].commands  # type: ignore[attr-defined]
    for d in (d for d in docs if d["kind"] == "Deployment"):
        (wait,) = d["spec"]["template"]["spec"]["initContainers"]
        assert wait["args"][:2] == ["db", "check-migrations"]


def test_pod_disruption_budgets_cover_the_replicated_components() -> None:
    docs = render("overlays/cpu")
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    covered = set()
    for pdb in pdbs:
        sel = pdb["spec"]["selector"]["matchLabels"]
        (target,) = [
            d
            for d in docs
            if d["kind"] == "Deployment"
            and sel.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert target["spec"]["replicas"] > pdb["spec"]["minAvailable"], "a drain must be possible"
        covered.add(target["metadata"]["name"])
    replicated = {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "Deployment" and d["spec"]["replicas"] > 1
    }
    assert covered == replicated


def operator_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The operators' settings as a pod with this environment reads them."""
    from candela_operators.settings import OperatorSettings

    for key, value in env.items():
        if key.startswith("CANDELA_"):
            monkeypatch.setenv(key, value)
    return OperatorSettings()


def test_every_setting_in_the_config_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt CANDELA_* or AIRFLOW__* key would be ignored silently by the platform."""
    from airflow.configuration import conf

    from candela.settings import Settings
    from candela_operators.settings import OperatorSettings

    known = {f"CANDELA_{n.upper()}" for n in Settings.model_fields}
    known |= {f"CANDELA_{n.upper()}" for n in OperatorSettings.model_fields}
    secrets = yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())
    platform_secret = next(s for s in secrets if s["metadata"]["name"] == "candela-platform")
    for overlay in ("overlays/cpu", "overlays/gpu"):
        for key in [*config(overlay), *platform_secret["stringData"]]:
            if key.startswith("CANDELA_"):
                assert key in known, f"{key}: no such setting"
            else:
                _, section, option = key.split("__", 2)
                options = conf.configuration_description.get(section.lower(), {}).get("options", {})
                assert option.lower() in options, f"{key}: no such option"
    # and the values parse as the platform's settings
    ops = operator_settings(config("overlays/gpu"), monkeypatch)
    assert ops.runner == "kubernetes" and ops.k8s_in_cluster
    assert ops.k8s_gpu_node_selector == {"nvidia.com/gpu.present": "true"}


def test_secrets_and_identities_referenced_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render("overlays/gpu")
    examples = {
        (s["metadata"]["namespace"], s["metadata"]["name"]): s
        for s in yaml.safe_load_all((K8S / "secrets.example.yaml").read_text())
    }
    for w in workloads(docs):
        ns = w["metadata"]["namespace"]
        spec = w["spec"]["template"]["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            for ref in c.get("envFrom", []):
                if "secretRef" in ref:
                    assert (ns, ref["secretRef"]["name"]) in examples
        for vol in spec.get("volumes", []):
            if "secret" in vol:
                assert (ns, vol["secret"]["secretName"]) in examples
        sa = spec["serviceAccountName"]
        assert find(docs, "ServiceAccount", sa)["metadata"]["namespace"] == ns
    # the step pods' Secrets live in the step namespace
    data = config()
    ops = operator_settings(data, monkeypatch)
    for field in ("k8s_s3_secret", "k8s_eodata_secret", "k8s_db_secret"):
        if hasattr(ops, field):
            assert (ops.k8s_namespace, getattr(ops, field)) in examples
    assert (ops.k8s_namespace, "candela-db") in examples
    # the step service account exists there, and Airflow's identity may run pods there
    step_sa = find(docs, "ServiceAccount", data["CANDELA_K8S_SERVICE_ACCOUNT"])
    assert step_sa["metadata"]["namespace"] == ops.k8s_namespace
    binding = find(docs, "RoleBinding", "candela-step-runner")
    assert binding["metadata"]["namespace"] == ops.k8s_namespace
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "candela-airflow", "namespace": "candela-platform"}
    ]
    role = find(docs, "Role", "candela-step-runner")
    assert any("pods" in r["resources"] and "create" in r["verbs"] for r in role["rules"])


# --- Helm values: the same settings -----------------------------------------------------------


def test_helm_values_agree_with_the_manifests() -> None:
    values = yaml.safe_load((REPO / "infra/helm/values.yaml").read_text())
    docs = render("overlays/cpu")
    data = config("overlays/cpu")
    image = find(docs, "Deployment", "candela-scheduler")["spec"]["template"]["spec"]["containers"][
        0
    ]["image"]
    assert (
        f"{values['images']['airflow']['repository']}:{values['images']['airflow']['tag']}" == image
    )
    assert values["executor"] == data["AIRFLOW__CORE__EXECUTOR"]
    helm_env = {e["name"]: e["value"] for e in values["env"]}
    assert helm_env == {k: v for k, v in data.items() if k.startswith("CANDELA_")}
    for option, value in values["config"]["core"].items():
        assert data[f"AIRFLOW__CORE__{option.upper()}"] == value, option
    assert yaml.safe_load(values["extraEnvFrom"]) == [{"secretRef": {"name": "candela-platform"}}]
    (login,) = [v for v in values["volumes"] if v["name"] == "login"]
    api = find(docs, "Deployment", "candela-api-server")["spec"]["template"]["spec"]
    assert login["secret"]["secretName"] in {
        v["secret"]["secretName"] for v in api["volumes"] if "secret" in v
    }
    job = find(docs, "Job", "candela-init")["spec"]["template"]["spec"]["containers"][0]
    assert (
        values["migrateDatabaseJob"]["command"] + values["migrateDatabaseJob"]["args"]
        == job["command"]
    )
    for key, name in [
        ("scheduler", "scheduler"),
        ("apiServer", "api-server"),
        ("dagProcessor", "dag-processor"),
        ("triggerer", "triggerer"),
    ]:
        deploy = find(docs, "Deployment", f"candela-{name}")
        assert values[key]["replicas"] == deploy["spec"]["replicas"], key
        assert (
            values[key]["serviceAccount"]["name"]
            == deploy["spec"]["template"]["spec"]["serviceAccountName"]
        )
    assert values["uid"] == api["securityContext"]["runAsUser"]


# --- OpenStack ------------------------------------------------------------------------------


def test_node_groups_load_and_match_the_gpu_overlay() -> None:
    from candela.scaling.config import load_config

    cfg = load_config(REPO / "infra/openstack/node-groups.toml")
    gpu = [g for g in cfg.groups if g.gpu]
    data = config("overlays/gpu")
    selector = json.loads(data["CANDELA_K8S_GPU_NODE_SELECTOR"])
    assert gpu and all(selector.items() <= g.labels.items() for g in gpu)
    assert int(data["CANDELA_GPU_SLOTS"]) == sum(g.max_nodes * g.gpus for g in gpu)
    assert all(g.flavor and g.image and g.network for g in cfg.groups)


@pytest.mark.parametrize("group", ["cpu", "gpu"])
def test_cloud_init_files_are_what_the_autoscaler_renders(group: str) -> None:
    from candela.scaling.cloud import user_data
    from candela.scaling.config import load_config

    cfg = load_config(REPO / "infra/openstack/node-groups.toml")
    lines = (REPO / f"infra/openstack/cloud-init-{group}.yaml").read_text().split("\n")
    body = [lines[0], *[ln for ln in lines[1:] if not ln.startswith("# ")]]
    expected = user_data(
        cfg.provision, cfg.group(group), "NODE-NAME", "JOIN-TOKEN", "sha256:CA-CERT-HASH"
    )
    assert "\n".join(body) == expected
    assert yaml.safe_load("\n".join(lines))["hostname"] == "NODE-NAME"


def test_security_groups_open_what_a_node_join_needs() -> None:
    doc = yaml.safe_load((REPO / "infra/openstack/security-groups.yaml").read_text())
    res = doc["resources"]
    node = {(r["protocol"], r["port_range_min"]) for r in res["node"]["properties"]["rules"]}
    assert {("tcp", 10250), ("udp", 8472)} <= node
    api = res["api_from_nodes"]["properties"]
    assert (api["port_range_min"], api["remote_group"]) == (6443, {"get_resource": "node"})
    # nothing is open to the world
    for sg in ("node", "control_plane"):
        for rule in res[sg]["properties"]["rules"]:
            assert rule.get("remote_ip_prefix") != "0.0.0.0/0"


def test_seaweedfs_identities_let_init_create_only_the_results_bucket() -> None:
    """The example identities parse, and the platform's may create the results bucket of the
    config (bucket-scoped Admin: SeaweedFS 4.48 creates that bucket and refuses any other)."""
    doc = yaml.safe_load((K8S / "seaweedfs/secret.example.yaml").read_text())
    identities = {i["name"]: i for i in json.loads(doc["stringData"]["s3.json"])["identities"]}
    bucket = config("overlays/cpu")["CANDELA_STORAGE_ROOT"].removeprefix("s3://").split("/")[0]
    actions = set(identities["candela"]["actions"])
    assert {f"Admin:{bucket}", f"Write:{bucket}", "Read:eodata"} <= actions
    assert not any(a in actions for a in ("Admin", "Write", "Write:eodata"))
    args = find(render("seaweedfs"), "StatefulSet", "seaweedfs")["spec"]["template"]["spec"]
    assert "-s3.config=/etc/seaweedfs/s3.json" in args["containers"][0]["args"]
