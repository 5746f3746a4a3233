"""The review page in a real browser, on a real run of a real embedded platform.

One platform for the module (``candela up`` on a free port, temporary CANDELA_HOME), the Bordeaux
pipeline run once, then headless Chromium (Debian ``chromium``, driven by Playwright) opens the
review page through the Airflow api-server (plugin mounted at ``/candela``), logged in with
Airflow's own JWT cookie. Screenshots (and a PDF print of the report) are written to
``$CANDELA_TEST_ARTIFACTS`` (default: the test's temporary folder) as test artefacts.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
CANDELA = [sys.executable, "-m", "candela.cli"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DAG = "s2_change_detection"
BORDEAUX: dict[str, Any] = {
    "collection": "sentinel-2-l1c",
    "bbox": [-0.68, 44.83, -0.56, 44.93],
    "start": "2016-01-01",
    "end": "2017-12-31",
    "tile": "T30TXQ",
    "model": "cva",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Platform:
    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.port = port
        self.base = f"http://localhost:{port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CANDELA_"))}
        env["CANDELA_HOME"] = str(self.home)
        return env

    def candela(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CANDELA, *args], capture_output=True, text=True, env=self.env(), cwd=REPO,
            timeout=timeout,
        )  # fmt: skip

    def run(self, conf: dict[str, Any]) -> tuple[str, subprocess.CompletedProcess[str]]:
        r = self.candela("run", DAG, "--conf", json.dumps(conf))
        m = re.search(rf"triggered {DAG} run (\S+)", r.stdout)
        assert m, r.stdout + r.stderr
        return m.group(1), r

    def token(self) -> str:
        import httpx

        from candela import embedded
        from candela.settings import Settings

        pw = embedded.admin_password(Settings(home=self.home, port=self.port))
        r = httpx.post(f"{self.base}/auth/token", json={"username": "admin", "password": pw})
        r.raise_for_status()
        return str(r.json()["access_token"])

    def review_url(self, run_id: str) -> str:
        return f"{self.base}/candela/runs/{DAG}/{quote(run_id, safe='')}"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    p = Platform(tmp_path_factory.mktemp("candela-review") / "home", free_port())
    r = p.candela("up", "--port", str(p.port))
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        r = p.candela("catalog", "add", str(REPO / "data" / "oscd" / "bordeaux"))
        assert r.returncode == 0, r.stdout + r.stderr
        yield p
    finally:
        p.candela("down")


@pytest.fixture(scope="module")
def bordeaux_run(platform: Platform) -> str:
    started = time.monotonic()
    run_id, r = platform.run(BORDEAUX)
    print(f"Bordeaux run {run_id} took {time.monotonic() - started:.0f} s")
    assert r.returncode == 0, r.stdout + r.stderr
    return run_id


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("CANDELA_TEST_ARTIFACTS")
    path = Path(env) / "review" if env else tmp_path_factory.mktemp("review-artefacts")
    path.mkdir(parents=True, exist_ok=True)
    print(f"review screenshots in {path}")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (Debian packages chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A logged-in page that records console errors, page errors and tile responses."""

    def __init__(self, browser: Any, platform: Platform) -> None:
        self.context = browser.new_context(viewport={"width": 1440, "height": 1000})
        self.context.add_cookies(
            [{"name": "_token", "value": platform.token(), "url": platform.base}]
        )
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.tiles: list[tuple[str, int]] = []
        self.failed: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))
        self.page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def _response(self, response: Any) -> None:
        if "/candela/tiles/" in response.url:
            self.tiles.append((response.url, response.status))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser: Any, platform: Platform) -> Iterator[Watched]:
    w = Watched(browser, platform)
    try:
        yield w
    finally:
        w.close()


def test_review_page_shows_the_change_map(
    watched: Watched, platform: Platform, bordeaux_run: str, artefacts: Path
) -> None:
    page = watched.page
    page.goto(platform.review_url(bordeaux_run))
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.wait_for_selector("#zones-table tr.zone", timeout=30_000)
    page.wait_for_selector("#histogram svg rect", timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(artefacts / "review-page.png"))

    layers = {re.search(r"/0/(\w+)/\d+/", u).group(1) for u, _ in watched.tiles}  # type: ignore[union-attr]
    assert {"before", "after", "probability"} <= layers
    assert watched.tiles and all(status == 200 for _, status in watched.tiles), watched.tiles
    assert watched.errors == []
    assert watched.failed == []
    # the tiles carry pixels: the change layer is drawn over the imagery
    loaded = page.evaluate(
        "() => [...document.querySelectorAll('#map img.leaflet-tile-loaded')].length"
    )
    assert loaded >= 4

    # click the zone with most change (the default order) → the map zooms to it
    zoom0 = page.evaluate("() => window.candelaMap.getZoom()")
    page.click("#zones-table tbody tr:first-child")
    page.wait_for_timeout(800)
    assert page.evaluate("() => window.candelaMap.getZoom()") > zoom0
    # sortable table: sort by zone name
    rows_before = page.locator("#zones-table tbody tr").all_inner_texts()
    page.click("#zones-table th[data-key='name']")
    rows_after = page.locator("#zones-table tbody tr").all_inner_texts()
    assert sorted(rows_before) == sorted(rows_after) and rows_before != rows_after
    # change mask over the before image, half transparent
    with page.expect_response(lambda r: "/0/mask/" in r.url, timeout=30_000):
        page.check("input[name=change][value=mask]")
    assert page.inner_text("#legend").startswith("Change mask")
    page.check("input[name=imagery][value=before]")
    page.fill("#change-opacity", "50")
    page.wait_for_function(
        "() => !document.querySelector('#map img.leaflet-tile:not(.leaflet-tile-loaded)')"
    )
    page.wait_for_timeout(500)
    page.screenshot(path=str(artefacts / "review-page-zone-mask.png"))
    assert any("/mask/" in u for u, _ in watched.tiles)
    assert all(status == 200 for _, status in watched.tiles)
    assert watched.errors == []

    # downloads: the COG link answers with a GeoTIFF
    href = page.locator("a[download]", has_text="change_probability.tif").get_attribute("href")
    r = page.request.get(href)
    assert r.status == 200 and r.body()[:4] in (b"II*\x00", b"MM\x00*")


def test_report_prints(
    watched: Watched, platform: Platform, bordeaux_run: str, artefacts: Path
) -> None:
    page = watched.page
    page.goto(platform.review_url(bordeaux_run) + "/report")
    page.wait_for_load_state("networkidle")
    assert page.locator("img.ql").evaluate("i => i.naturalWidth") > 100
    assert "Zone statistics" in page.content()
    page.screenshot(path=str(artefacts / "report.png"), full_page=True)
    page.emulate_media(media="print")
    pdf = page.pdf(format="A4")
    (artefacts / "report.pdf").write_bytes(pdf)
    assert pdf[:4] == b"%PDF" and len(pdf) > 20_000
    assert watched.errors == []


def test_review_tab_on_the_dag_run_in_airflow_ui(
    watched: Watched, platform: Platform, bordeaux_run: str, artefacts: Path
) -> None:
    import httpx

    plugins = httpx.get(
        f"{platform.base}/api/v2/plugins",
        headers={"Authorization": f"Bearer {platform.token()}"},
    ).json()["plugins"]
    (ours,) = [p for p in plugins if p["name"] == "candela_review"]
    views = {v["destination"]: v for v in ours["external_views"]}
    assert views["dag_run"]["href"] == "/candela/runs/{DAG_ID}/{RUN_ID}"
    assert ours["fastapi_apps"][0]["url_prefix"] == "/candela"

    page = watched.page
    page.goto(f"{platform.base}/dags/{DAG}/runs/{quote(bordeaux_run, safe='')}")
    page.get_by_role("link", name="Review").first.click(timeout=30_000)
    frame = page.frame_locator("iframe").first
    frame.locator("body[data-ready='1']").wait_for(timeout=30_000)
    frame.locator("#zones-table tr.zone").first.wait_for(timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(artefacts / "airflow-review-tab.png"))
    assert all(status == 200 for _, status in watched.tiles) and watched.tiles


def test_stac_api_with_airflow_token(platform: Platform, bordeaux_run: str) -> None:
    import httpx
    from pystac_client import Client

    headers = {"Authorization": f"Bearer {platform.token()}"}
    cat = Client.open(f"{platform.base}/candela/stac/", headers=headers)
    items = list(cat.search(collections=[DAG], bbox=BORDEAUX["bbox"]).items())
    # one result per parameter set; other runs of the platform (asset-triggered) may add theirs
    assert items and all(i.properties["candela:workflow"] == DAG for i in items)
    runs = httpx.get(f"{platform.base}/api/v2/dags/{DAG}/dagRuns", headers=headers).json()
    assert {i.properties["candela:run_id"] for i in items} <= {
        x["dag_run_id"] for x in runs["dag_runs"] if x["state"] == "success"
    }
    item = items[0]
    review = [link.href for link in item.links if link.rel == "alternate"]
    assert review and review[0].startswith(f"{platform.base}/candela/runs/{DAG}/")
    r = httpx.get(item.assets["change_mask"].href, headers=headers)
    assert r.status_code == 200 and r.content[:2] in (b"II", b"MM")
    assert httpx.get(f"{platform.base}/candela/stac/").status_code == 401


def test_no_data_run_says_so_and_why(
    watched: Watched, platform: Platform, bordeaux_run: str, artefacts: Path
) -> None:
    run_id, r = platform.run({**BORDEAUX, "bbox": [10.0, 50.0, 10.1, 50.1], "tile": None})
    assert r.returncode == 0, r.stdout + r.stderr
    page = watched.page
    resp = page.goto(platform.review_url(run_id))
    assert resp is not None and resp.status == 200
    status = page.locator("#run-status")
    assert status.get_attribute("data-status") == "no-data"
    text = status.inner_text()
    assert "No data" in text and "no data:" in text  # the reason, from the skipped task's log
    page.screenshot(path=str(artefacts / "review-no-data.png"))
    assert watched.errors == []


def test_unknown_run_is_404(watched: Watched, platform: Platform) -> None:
    resp = watched.page.goto(platform.review_url("no_such_run"))
    assert resp is not None and resp.status == 404
    assert "No such run" in watched.page.content()
