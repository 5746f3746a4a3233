"""A real embedded platform for integration tests: `candela up` on a free loopback port under a
temporary CANDELA_HOME, driven through the CLI and the REST API as a user would."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from candela.workflows import ChangeDetectionConf

REPO = Path(__file__).resolve().parents[1]
CANDELA = [sys.executable, "-m", "candela.cli"]
DAG = "s2_change_detection"
BORDEAUX: dict[str, Any] = ChangeDetectionConf(
    collection="sentinel-2-l1c",
    bbox=[-0.68, 44.83, -0.56, 44.93],
    start=dt.date(2016, 1, 1),
    end=dt.date(2017, 12, 31),
    tile="T30TXQ",
    model="cva",
).conf()


def free_port() -> int:
    from candela.embedded import free_port as platform_free_port

    return platform_free_port()


class Platform:
    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.port = port
        self.base = f"http://localhost:{port}"
        self.up_output = ""  # what `candela up` printed
        self.catalog_added = ""  # what the first `candela catalog add` printed (shared platform)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CANDELA_"))}
        env["CANDELA_HOME"] = str(self.home)
        return env

    def candela(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CANDELA, *args],
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=REPO,
            timeout=timeout,
        )

    def up(self) -> subprocess.CompletedProcess[str]:
        r = self.candela("up", "--port", str(self.port))
        self.up_output = r.stdout
        return r

    def run(self, conf: dict[str, Any]) -> tuple[str, subprocess.CompletedProcess[str]]:
        r = self.candela("run", DAG, "--conf", json.dumps(conf))
        m = re.search(rf"triggered {DAG} run (\S+)", r.stdout)
        assert m, r.stdout + r.stderr
        return m.group(1), r

    def settings(self) -> Any:
        from candela.settings import Settings

        return Settings(home=self.home, port=self.port)

    def client(self) -> Any:
        from candela import embedded
        from candela.airflow_api import AirflowClient

        s = self.settings()
        return AirflowClient(s.api_url, "admin", embedded.admin_password(s))

    def token(self) -> str:
        import httpx

        from candela import embedded

        pw = embedded.admin_password(self.settings())
        r = httpx.post(f"{self.base}/auth/token", json={"username": "admin", "password": pw})
        r.raise_for_status()
        return str(r.json()["access_token"])

    def review_url(self, run_id: str) -> str:
        return f"{self.base}/candela/runs/{DAG}/{quote(run_id, safe='')}"


@contextmanager
def platform_with_bordeaux(home: Path, quiet: bool = False) -> Iterator[Platform]:
    """A platform up under ``home`` with the Bordeaux sample in its catalogue; down at exit.

    ``quiet``: the catalogue event starts no run of its own (``s2_new_products`` paused, the
    pipeline unpaused), so that only the runs a test or benchmark starts run there.
    """
    p = Platform(home, free_port())
    r = p.up()
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        if quiet:
            with p.client() as c:
                c.unpause(DAG)
                c.request("PATCH", "/api/v2/dags/s2_new_products", json={"is_paused": True})
        r = p.candela("catalog", "add", str(REPO / "data" / "oscd" / "bordeaux"))
        assert r.returncode == 0, r.stdout + r.stderr
        yield p
    finally:
        p.candela("down")
