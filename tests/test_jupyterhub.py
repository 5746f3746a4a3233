"""infra/jupyterhub: the zero-to-jupyterhub values parse and carry what they claim (one pod per
user with its workspace PVC, the SDK's whole configuration, S3 keys from the user's Secret), and
the single-user image installs the SDK from the lock without the platform.

The chart itself (helm, its values schema) is not installable here: what a cluster checks at
`helm install` is not checked by these tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from candela_client.config import ClientConfig

REPO = Path(__file__).resolve().parents[1]
HUB = REPO / "infra" / "jupyterhub"


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return dict(yaml.safe_load((HUB / "values.yaml").read_text()))


def _spawn_env(values: dict[str, Any], user: str) -> dict[str, Any]:
    """The environment KubeSpawner gives ``user``'s pod: the chart's extraEnv, then the hook of
    hub.extraConfig run as the hub runs it (``c`` its configuration)."""
    c = SimpleNamespace(KubeSpawner=SimpleNamespace())
    for code in values["hub"]["extraConfig"].values():
        exec(compile(code, "extraConfig", "exec"), {"c": c})
    spawner = SimpleNamespace(
        user=SimpleNamespace(name=user), environment=dict(values["singleuser"]["extraEnv"])
    )
    c.KubeSpawner.pre_spawn_hook(spawner)
    return spawner.environment


def test_one_pod_per_user_with_its_workspace(values: dict[str, Any]) -> None:
    single = values["singleuser"]
    assert single["image"]["name"].endswith("/candela-notebook")
    storage = single["storage"]
    assert storage["type"] == "dynamic" and storage["homeMountPath"] == "/home/jovyan"
    assert "{username}" in storage["dynamic"]["pvcNameTemplate"]
    assert storage["dynamic"]["pvcNameTemplate"].startswith("candela-workspace-")
    assert single["uid"] != 0
    assert values["hub"]["config"]["JupyterHub"]["authenticator_class"] not in ("dummy", "null")


def test_the_sdk_finds_its_whole_configuration(values: dict[str, Any]) -> None:
    env = _spawn_env(values, "alice")
    secrets = {k: v for k, v in env.items() if isinstance(v, dict)}
    for var, ref in secrets.items():
        key = ref["valueFrom"]["secretKeyRef"]
        assert key["name"] == "candela-user-alice" and key["optional"] is False, var
    assert set(secrets) == {
        "CANDELA_PASSWORD",
        "CANDELA_S3_ACCESS_KEY_ID",
        "CANDELA_S3_SECRET_ACCESS_KEY",
    }
    # what the pod sees once Kubernetes resolved the Secret: the SDK is fully configured
    resolved = {k: (f"<{k}>" if isinstance(v, dict) else str(v)) for k, v in env.items()}
    cfg = ClientConfig.from_env(resolved)
    assert cfg.url.startswith("http://candela-api-server.") and cfg.username == "alice"
    assert cfg.password == "<CANDELA_PASSWORD>" and cfg.token is None
    assert cfg.s3 is not None and cfg.s3.endpoint_url and cfg.s3.access_key_id
    assert cfg.s3.gdal_options()["AWS_SECRET_ACCESS_KEY"] == "<CANDELA_S3_SECRET_ACCESS_KEY>"
    # no credential is written in the values themselves
    text = (HUB / "values.yaml").read_text()
    assert not re.search(r"(?i)(password|secret_access_key|access_key_id)\s*:\s*\S", text)


def test_singleuser_image_installs_the_sdk_from_the_lock() -> None:
    docker = (HUB / "singleuser.Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", docker, re.M)
    assert froms[-1].startswith("quay.io/jupyter/")
    users = re.findall(r"^USER (\S+)", docker, re.M)
    assert users and users[-1] == "1000"  # the last user is jovyan (NB_UID 1000), not root
    for src in re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+) \S+$", docker, re.M):
        for path in src.split():
            assert (REPO / path).exists(), path
    uv = shutil.which("uv") or os.path.expanduser("~/.local/bin/uv")
    if not os.path.exists(uv):
        pytest.skip("uv is not installed")
    cmd = re.search(r"uv export [^&]+", docker.replace("\\\n", " "))
    assert cmd
    args = cmd.group(0).split()[2:]
    args = [a for i, a in enumerate(args) if a != "-o" and (i == 0 or args[i - 1] != "-o")]
    r = subprocess.run([uv, "export", *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    names = {
        line.split("==")[0].strip().lower()
        for line in r.stdout.splitlines()
        if line and not line.startswith(("#", " "))
    }
    assert {"httpx", "rasterio", "tqdm", "xarray", "rioxarray", "numpy"} <= names
    assert not {n for n in names if n.startswith(("apache-airflow", "tensorflow", "candela"))}
