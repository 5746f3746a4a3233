"""The review page in a real browser, on a real run of a real embedded platform.

The test session's shared platform (``shared_platform`` in the root conftest: ``candela up`` on a
free port, temporary CANDELA_HOME) and its Bordeaux run (``shared_bordeaux_run``), then headless Chromium (Debian ``chromium``, driven by Playwright) opens the
review page through the Airflow api-server (plugin mounted at ``/candela``), logged in with
Airflow's own JWT cookie. Screenshots (and a PDF print of the report) are written to
``$CANDELA_TEST_ARTIFACTS`` (default: the test's temporary folder) as test artefacts.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from candela.workflows import ChangeDetectionConf
from tests.platform_helpers import BORDEAUX, DAG, Platform

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def platform(shared_platform: Platform) -> Platform:
    return shared_platform


@pytest.fixture(scope="module")
def bordeaux_run(shared_bordeaux_run: tuple[str, Any]) -> str:
    """The session's Bordeaux run (``BORDEAUX``), shared with tests/test_platform.py."""
    return shared_bordeaux_run[0]


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


def _blank_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (256, 256), (0, 0, 0, 0)).save(buf, "PNG")
    return buf.getvalue()


_BLANK_PNG = _blank_png()


class Watched:
    """A logged-in page that records console errors, page errors and tile responses."""

    def __init__(self, browser: Any, platform: Platform) -> None:
        self.context = browser.new_context(viewport={"width": 1440, "height": 1000})
        self.context.add_cookies(
            [{"name": "_token", "value": platform.token(), "url": platform.base}]
        )
        self.page = self.context.new_page()
        # no network here: the review map's basemap (OpenStreetMap by default) answers blank
        # tiles, as a reachable tile server would, so that errors below are the page's own
        # (the offline case itself: test_review_app's browser walk)
        self.page.route(
            "https://tile.openstreetmap.org/**",
            lambda route: route.fulfill(status=200, content_type="image/png", body=_BLANK_PNG),
        )
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
        # the map's tiles: titiler-core's (``/candela/cog/…/tiles/WebMercatorQuad/…``)
        if "/candela/cog/" in response.url and "/tiles/WebMercatorQuad/" in response.url:
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

    layers = {re.search(r"/0/(\w+)/tiles/", u).group(1) for u, _ in watched.tiles}  # type: ignore[union-attr]
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
    # (the mask at the slider's threshold: the probability through ``candela_threshold``)
    with page.expect_response(lambda r: "candela_threshold" in r.url, timeout=30_000):
        page.check("input[name=change][value=mask]")
    assert page.inner_text("#legend").startswith("Change mask")
    page.check("input[name=imagery][value=before]")
    page.fill("#change-opacity", "50")
    page.wait_for_function(
        "() => !document.querySelector('#map img.leaflet-tile:not(.leaflet-tile-loaded)')"
    )
    page.wait_for_timeout(500)
    page.screenshot(path=str(artefacts / "review-page-zone-mask.png"))
    assert any("candela_threshold" in u for u, _ in watched.tiles)
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
    # every picture of the report loaded: location map, before, after, quicklook
    images = page.locator("img.ql")
    assert images.count() == 4
    for alt in (
        "location map",
        "before",
        "after",
        "quicklook: changes in red over the after image",
    ):
        width = page.locator(f'img.ql[alt="{alt}"]').evaluate("i => i.naturalWidth")
        assert width > 100, alt
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


# --- the analyst's walk: draw an area, start a run, watch it, review it ------------------------

SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"


def _wait_for_review(page: Any, url: str, shots: Path, timeout: float = 900) -> list[str]:
    """Open the run's page until the run is published (the page is then the review); answers
    the task states seen. Reopened every 4 s (before the status page's own 10 s refresh)."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    shot = False
    while time.monotonic() < deadline:
        page.goto(url)
        status = page.locator("#run-status")
        if not status.count():
            return seen
        state = status.get_attribute("data-status")
        assert state == "running", page.inner_text("main")
        rows = page.locator("table tr").all_inner_texts()
        seen.append(" | ".join(r.replace("\t", " ") for r in rows[1:]))
        if not shot and any("success" in r for r in rows):  # some tasks done, others not yet
            page.screenshot(path=str(shots / "walk-3-running.png"), full_page=True)
            shot = True
        page.wait_for_timeout(4000)
    raise AssertionError(f"the run was not published in {timeout:.0f} s: {seen[-1:]}")


def test_an_analyst_draws_an_area_starts_a_run_and_reviews_it(
    watched: Watched, platform: Platform, artefacts: Path
) -> None:
    """The whole walk on the real platform, in headless Chromium: draw a polygon on the "New
    run" map, pick the two dates among the products over it, start the run (Airflow's REST
    API, as the logged-in user), follow it on its page until it is published, then on the
    review page swipe between the dates, click a pixel (its values), move the threshold (the
    mask and the changed area follow), take the statistics of a drawn area, and download the
    change polygons as GeoPackage, opened with GDAL (pyogrio). Screenshots in docs/screenshots
    when CANDELA_DOCS_SCREENSHOTS is set, else with the test's artefacts."""
    import pyogrio
    import pyogrio.raw
    import shapely
    from shapely.geometry import shape

    shots = SCREENSHOTS if os.environ.get("CANDELA_DOCS_SCREENSHOTS") else artefacts / "walk"
    shots.mkdir(parents=True, exist_ok=True)
    page = watched.page
    started = time.monotonic()

    # 1. the "New run" page opens on the catalogued products (Bordeaux): draw a polygon there
    page.goto(f"{platform.base}/candela/new")
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.wait_for_function("document.getElementById('catalogue-text').textContent")
    assert "2 products catalogued" in page.inner_text("#catalogue-text")
    page.wait_for_timeout(500)  # (the map fitted on them)
    box = page.locator("#map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.click("#draw-polygon")
    for dx, dy in ((-130, -100), (110, -120), (140, 50), (-20, 120)):
        page.mouse.click(cx + dx, cy + dy)
    page.mouse.dblclick(cx - 140, cy + 30)
    aoi = json.loads(page.input_value("#aoi"))
    assert aoi["type"] == "Polygon" and len(aoi["coordinates"][0]) == 6, aoi
    assert page.inner_text("#aoi-text").startswith("Polygon of 5 corners")
    # 2. the dates: the products over the polygon, before and after
    page.wait_for_selector("#product-table")
    dates = page.locator("#product-table tr[data-date]").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.date)"
    )
    assert dates == ["2016-05-04", "2017-10-26"]
    page.check("input[name=pick-before][value='0']")
    page.check("input[name=pick-after][value='1']")
    assert page.input_value("#tile") == BORDEAUX["tile"]
    page.select_option("#model", "cva")
    page.screenshot(path=str(shots / "walk-1-new-run.png"), full_page=True)

    # 3. start it: the browser goes to the run's page
    with page.expect_navigation(timeout=60_000):
        page.click("#submit")
    run_url = page.url.split("#")[0]
    assert f"/candela/runs/{DAG}/" in run_url, run_url
    page.screenshot(path=str(shots / "walk-2-started.png"), full_page=True)
    with platform.client() as c:
        runs = c.request("GET", f"/api/v2/dags/{DAG}/dagRuns", params={"limit": 100}).json()
    (run,) = [r for r in runs["dag_runs"] if (r.get("conf") or {}).get("aoi") == aoi]
    assert run["triggering_user_name"] == "admin" and run["conf"]["model"] == "cva", run

    # 4. watch it until it is published; the page becomes the review
    seen = _wait_for_review(page, run_url, shots)
    print(f"walk: run {run['dag_run_id']} published after {time.monotonic() - started:.0f} s")
    assert seen, "the run's page never showed it running"
    page.wait_for_selector("body[data-ready='1']", timeout=60_000)
    page.wait_for_function("document.getElementById('threshold-area').dataset.ha", timeout=30_000)
    assert "covers" in page.inner_text("#coverage")  # the requested polygon, the result's share
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shots / "walk-4-review.png"))

    # 5. swipe between the dates: the after pane clipped at the slider
    page.fill("#swipe", "50")
    page.dispatch_event("#swipe", "input")
    clip = page.evaluate("window.candelaMap.getPane('afterPane').style.clip")
    assert clip.startswith("rect("), clip
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "walk-5-swipe.png"))

    # 6. click a pixel inside the result: probability, before and after values (titiler)
    box = page.locator("#map").bounding_box()
    centre = shape(aoi).intersection(shapely.box(*view_bounds(page))).representative_point()
    xy = page.evaluate(
        "([lat, lon]) => { const p = window.candelaMap.latLngToContainerPoint([lat, lon]);"
        " return [p.x, p.y]; }",
        [centre.y, centre.x],
    )
    page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
    page.wait_for_selector("#pixel-values")
    rows = page.locator("#pixel-values tr").all_inner_texts()
    assert [r.split("\t")[0] for r in rows] == ["probability", "before", "after"]
    assert all(any(ch.isdigit() for ch in r.split("\t")[1]) for r in rows), rows
    page.screenshot(path=str(shots / "walk-6-pixel.png"))
    page.keyboard.press("Escape")

    # 7. the threshold: a lower one flags more area; the mask is redrawn at it
    area_at = {}
    for t in ("0.9", "0.3"):
        page.fill("#threshold", t)
        page.dispatch_event("#threshold", "input")
        area_at[t] = float(page.get_attribute("#threshold-area", "data-ha"))
    assert area_at["0.3"] > area_at["0.9"] >= 0, area_at
    page.wait_for_function(
        "[...document.querySelectorAll('#map img.leaflet-tile')]"
        ".some((i) => i.src.includes(encodeURIComponent('{\"threshold\":0.3}')) && i.complete)"
    )
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "walk-7-threshold.png"))

    # 8. statistics of a drawn area (titiler, POST statistics)
    page.click("#draw-area")
    for dx, dy in ((-40, -40), (40, -40), (40, 40)):
        page.mouse.click(box["x"] + xy[0] + dx, box["y"] + xy[1] + dy)
    page.mouse.dblclick(box["x"] + xy[0] - 40, box["y"] + xy[1] + 40)
    page.wait_for_function("document.getElementById('area-stats').dataset.mean", timeout=30_000)
    assert "mean probability" in page.inner_text("#area-stats")
    page.screenshot(path=str(shots / "walk-8-area-statistics.png"))

    # 9. the change polygons as GeoPackage, opened with a GIS library (GDAL through pyogrio)
    with page.expect_download(timeout=30_000) as dl:
        page.click("a[href$='/change_polygons_gpkg']")
    gpkg = artefacts / "walk-change-polygons.gpkg"
    dl.value.save_as(gpkg)
    info = pyogrio.read_info(gpkg)
    assert info["crs"] == "EPSG:4326" and info["features"] > 0, info
    assert {"area_ha", "mean_probability"} <= set(info["fields"]), info["fields"]
    _meta, _fids, geometries, fields = pyogrio.raw.read(gpkg)
    polygons = [shapely.from_wkb(g) for g in geometries]
    # within the drawn polygon (its bounding box is read, the pixels outside it are nodata),
    # give or take the pixels on its edge (10 m, about 1e-4 degree)
    assert all(shape(aoi).buffer(3e-4).contains(p) for p in polygons)
    names = list(info["fields"])
    area_ha = fields[names.index("area_ha")]
    assert (area_ha > 0).all()
    assert watched.errors == [], watched.errors
    assert all(status == 200 for _, status in watched.tiles), watched.tiles[:5]
    print(f"walk: {len(polygons)} change polygons; whole walk {time.monotonic() - started:.0f} s")


def view_bounds(page: Any) -> list[float]:
    """W, S, E, N of the review map's view (it opens fitted on the result)."""
    b = page.evaluate(
        "(() => { const b = window.candelaMap.getBounds();"
        " return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()]; })()"
    )
    return [float(v) for v in b]


def test_stac_api_validator_on_the_platform(platform: Platform, bordeaux_run: str) -> None:
    """stac-api-validator (core, collections, features, item-search) on the results STAC API
    as the platform serves it (Airflow's api-server, the plugin at /candela, Airflow's token);
    only the offline schema fetches listed in the README are left out."""
    import httpx

    from tests import stac_conformance

    root = f"{platform.base}/candela/stac/"
    token = platform.token()
    found = httpx.get(
        f"{root}search",
        params={"collections": DAG, "limit": 1},
        headers={"Authorization": f"Bearer {token}"},
    ).json()["features"]
    assert found, "no published item"
    real, offline = stac_conformance.validate(root, DAG, found[0], token=token)
    print(f"{len(offline)} offline-only schema fetch error(s) left out")
    assert not real, "\n".join(real)


# --- the Airflow UI entry point: login form, DAG trigger form, schema refusals -------------------


def _set_json_param(page: Any, dialog: Any, name: str, text: str) -> None:
    """Replace the content of a JSON (Monaco) editor of the trigger form."""
    editor = dialog.locator("[role=group]").filter(has=page.locator("label", has_text=name))
    editor.locator(".monaco-editor").first.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.insert_text(text)
    # Monaco auto-closes the bracket typed first: drop whatever is left after the cursor
    page.keyboard.press("Shift+ControlOrMeta+End")
    page.keyboard.press("Delete")


def _submit(page: Any, dialog: Any) -> tuple[int, dict[str, Any]]:
    """Click Trigger; the status of Airflow's answer and the conf the form sent."""
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith(f"/dags/{DAG}/dagRuns"),
        timeout=30_000,
    ) as answer:
        dialog.get_by_test_id("trigger-dag-submit").click()
    sent = json.loads(answer.value.request.post_data or "{}")
    return answer.value.status, dict(sent.get("conf") or {})


def test_trigger_from_the_airflow_ui(browser: Any, platform: Platform, artefacts: Path) -> None:
    from candela.airflow_api import AirflowClient

    # the login `candela up` printed is the one in the passwords file
    m = re.search(r"login: (\S+) / (\S+)", platform.up_output)
    assert m, platform.up_output
    user, password = m.groups()
    stored = json.loads((platform.home / "airflow" / "passwords.json").read_text())
    assert user == "admin" and stored[user] == password

    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    try:
        page = context.new_page()
        page.goto(f"{platform.base}/dags/{DAG}")
        page.wait_for_url("**/auth/login**", timeout=30_000)  # not logged in: the login form

        # a wrong password is refused: still on the login page, with an error
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(password + "x")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("Invalid credentials").wait_for(timeout=30_000)
        assert "/auth/login" in page.url
        page.screenshot(path=str(artefacts / "ui-login-refused.png"))

        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"**/dags/{DAG}", timeout=30_000)

        # the Trigger dialog shows our params, with their descriptions
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Run Parameters").wait_for(timeout=30_000)
        with AirflowClient(platform.base, user, password) as c:
            r = c.request("GET", f"/api/v2/dags/{DAG}/details")
            r.raise_for_status()
            params = r.json()["params"]
        # labelled by the titles of the typed run configuration (candela.workflows)
        titles = {k: f.title for k, f in ChangeDetectionConf.model_fields.items()}
        for name in ("collection", "bbox", "tile", "tile_size_km", "model", "zones", "threshold"):
            label = re.escape(str(titles[name]))
            field = dialog.locator("[role=group]").filter(
                has=page.locator("label", has_text=re.compile(rf"^{label}\W*$"))
            )
            assert field.count() == 1, name
            assert params[name]["description"] in field.inner_text(), name
        page.screenshot(path=str(artefacts / "ui-trigger-form.png"))

        # max_cloud is bounded by the schema: the number field clamps 150 to its maximum
        max_cloud = dialog.get_by_label(str(titles["max_cloud"]))
        max_cloud.fill("150")
        max_cloud.blur()
        assert max_cloud.input_value() == "100"

        # values that fail the run configuration are refused at the call (the API server's run
        # guard, before Airflow creates a run); the dialog shows the reason naming the field
        _set_json_param(page, dialog, str(titles["bbox"]), "[-0.68, 44.83, -0.56]")
        status, conf = _submit(page, dialog)
        assert status == 400 and conf["bbox"] == [-0.68, 44.83, -0.56]
        error = dialog.get_by_text("bad parameters for s2_change_detection: bbox")
        error.wait_for(timeout=10_000)
        assert "at least 4 items" in error.inner_text()

        _set_json_param(page, dialog, str(titles["bbox"]), json.dumps(BORDEAUX["bbox"]))
        dialog.locator("#element_tile").fill("T30TX")
        status, conf = _submit(page, dialog)
        assert status == 400 and conf["tile"] == "T30TX"
        error = dialog.get_by_text("bad parameters for s2_change_detection: tile")
        error.wait_for(timeout=10_000)
        assert "should match pattern" in error.inner_text()
        error.scroll_into_view_if_needed()
        page.screenshot(path=str(artefacts / "ui-trigger-refused.png"))

        # the Bordeaux sample, recognisable by its threshold
        dialog.get_by_role("combobox").first.click()
        page.get_by_role("option", name="sentinel-2-l2a").click()
        dialog.get_by_role("combobox").first.click()
        page.get_by_role("option", name=BORDEAUX["collection"]).click()
        _set_json_param(page, dialog, str(titles["bbox"]), json.dumps(BORDEAUX["bbox"]))
        dialog.locator("#element_start").fill(BORDEAUX["start"])
        dialog.locator("#element_end").fill(BORDEAUX["end"])
        dialog.locator("#element_tile").fill(BORDEAUX["tile"])
        dialog.locator("#element_model").fill(BORDEAUX["model"])
        dialog.locator("#element_threshold").fill("0.55")
        status, conf = _submit(page, dialog)
        assert status == 200, conf
        for key in ("collection", "bbox", "start", "end", "tile", "model"):
            assert conf[key] == BORDEAUX[key], key
        assert conf["aoi"] == {}  # the empty area the form shows is what it sends (not null)
        page.wait_for_url(f"**/dags/{DAG}/runs/**", timeout=30_000)
        page.get_by_text("Dag Run Triggered").first.wait_for(timeout=10_000)
        page.screenshot(path=str(artefacts / "ui-triggered.png"))

        # the run, found through the REST API by its conf, runs to success
        with AirflowClient(platform.base, user, password) as c:
            r = c.request("GET", f"/api/v2/dags/{DAG}/dagRuns", params={"limit": 100})
            r.raise_for_status()
            runs = r.json()["dag_runs"]
            ours = [x for x in runs if (x.get("conf") or {}).get("threshold") == 0.55]
            assert len(ours) == 1, [x["conf"] for x in runs]
            (run,) = ours
            assert run["run_type"] == "manual" and run.get("triggering_user_name") == user, run
            assert {k: run["conf"][k] for k in BORDEAUX} == BORDEAUX
            # the refused forms created no run
            assert not [
                x for x in runs if (x.get("conf") or {}).get("tile") == "T30TX"
                or len((x.get("conf") or {}).get("bbox") or [0] * 4) != 4
            ]  # fmt: skip
            started = time.monotonic()
            final = c.follow(DAG, run["dag_run_id"], lambda st: None, timeout=600)
            print(f"UI-triggered run {run['dag_run_id']}: {final.state} "
                  f"in {time.monotonic() - started:.0f} s")  # fmt: skip
            assert final.state == "success", final.tasks

        page.reload()
        page.get_by_text("Success").first.wait_for(timeout=30_000)
        page.screenshot(path=str(artefacts / "ui-run-success.png"))
    finally:
        context.close()
