"""docker-compose.yml takes every secret from the env file the user generates; none in the repo."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

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
