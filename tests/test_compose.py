"""docker-compose.yml takes every secret from the env file the user generates; none in the repo."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _keys(text: str) -> set[str]:
    return {ln.split("=", 1)[0] for ln in text.splitlines() if ln and not ln.startswith("#")}


def test_generated_env_file_covers_compose_and_example(tmp_path: Path) -> None:
    out = tmp_path / "env"
    subprocess.run([REPO / "scripts" / "compose-env", out], check=True, capture_output=True)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    generated = dict(ln.split("=", 1) for ln in out.read_text().splitlines() if "=" in ln)
    assert set(generated) == _keys((REPO / ".env.example").read_text())
    compose = (REPO / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", compose))
    assert used <= set(generated), used - set(generated)
    secrets = [v for k, v in generated.items() if k != "CANDELA_TOKEN_LIFETIME_S"]
    assert all(len(v) >= 16 for v in secrets)
    again = tmp_path / "env2"
    subprocess.run([REPO / "scripts" / "compose-env", again], check=True, capture_output=True)
    assert set(again.read_text().splitlines()[1:]) & set(out.read_text().splitlines()[1:]) == {
        "CANDELA_TOKEN_LIFETIME_S=3600"
    }
    r = subprocess.run([REPO / "scripts" / "compose-env", out], capture_output=True, text=True)
    assert r.returncode == 1 and "exists" in r.stderr


def test_compose_holds_no_fixed_secret() -> None:
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    for name, svc in doc["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|ACCESS_KEY", key) and not key.endswith("_FILE"):
                assert str(value).startswith("${"), f"{name}: {key} is fixed"
    weed = " ".join(doc["services"]["seaweedfs"]["command"])
    assert "-s3.config=" in weed
    text = (REPO / "docker-compose.yml").read_text()
    assert "candela:candela@" not in text and "POSTGRES_PASSWORD: candela" not in text


# --- the Compose Specification and the start order --------------------------------------------


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _compose_schema() -> dict:
    """The Compose Specification's JSON schema as check-jsonschema vendors it
    (check_jsonschema/builtin_schemas/vendor/compose-spec.json, from compose-spec/compose-spec,
    Apache-2.0), a dev dependency: not copied into this repository."""
    import json
    from importlib import resources

    ref = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    return json.loads(ref.read_text())


def test_compose_file_follows_the_compose_specification() -> None:
    import copy

    import jsonschema

    schema = _compose_schema()
    doc = _compose()
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)
    # the schema does refuse what Compose refuses
    bad = copy.deepcopy(doc)
    bad["services"]["scheduler"]["depends_on"] = {"init": {"condition": "service_done"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema, cls=jsonschema.Draft202012Validator)
    bad = copy.deepcopy(doc)
    bad["services"]["postgres"]["healthcheck"]["retry"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema, cls=jsonschema.Draft202012Validator)


def test_airflow_waits_for_init_which_waits_for_healthy_servers() -> None:
    services = _compose()["services"]
    airflow = ["api-server", "scheduler", "dag-processor", "triggerer"]
    for name in airflow:
        assert services[name]["depends_on"] == {
            "init": {"condition": "service_completed_successfully"}
        }, name
    init = services["init"]
    assert init["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "seaweedfs": {"condition": "service_healthy"},
    }
    assert (
        services["postgres"]["healthcheck"]["test"] and services["seaweedfs"]["healthcheck"]["test"]
    )
    assert init.get("restart") == "no"
    # init is `candela cluster init`, with the S3 identity that may create buckets
    assert init["entrypoint"] + init["command"][:2] == ["candela", "cluster", "init"]
    assert init["environment"]["CANDELA_S3_ACCESS_KEY_ID"].startswith("${S3_ADMIN_ACCESS_KEY")
    assert services["scheduler"]["environment"]["CANDELA_S3_ACCESS_KEY_ID"].startswith(
        "${S3_PIPELINE_ACCESS_KEY"
    )


def test_buckets_made_by_init_are_those_the_identities_allow() -> None:
    services = _compose()["services"]
    init = services["init"]
    root = init["environment"]["CANDELA_STORAGE_ROOT"]
    assert root.startswith("s3://")
    results = root.removeprefix("s3://").split("/")[0]
    extra = init["command"][init["command"].index("--bucket") + 1]
    weed = " ".join(services["seaweedfs"]["command"])
    # the pipeline's identity writes the results bucket, only reads the archive
    for action in ("Read", "Write", "List"):
        assert f"{action}:{results}" in weed
    assert f"Read:{extra}" in weed and f"Write:{extra}" not in weed


def test_compose_settings_exist() -> None:
    """A misspelt CANDELA_* or AIRFLOW__* variable would be ignored silently."""
    from airflow.configuration import conf

    from candela.settings import Settings

    known = {f"CANDELA_{n.upper()}" for n in Settings.model_fields}
    for name, svc in _compose()["services"].items():
        for key in svc.get("environment") or {}:
            if key.startswith("CANDELA_"):
                assert key in known or key == "CANDELA_ADMIN_PASSWORD", f"{name}: {key}"
            elif key.startswith("AIRFLOW__"):
                _, section, option = key.split("__", 2)
                options = conf.configuration_description.get(section.lower(), {}).get("options", {})
                assert option.lower() in options, f"{name}: {key}"
