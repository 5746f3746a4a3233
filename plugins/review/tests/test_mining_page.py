"""EO image mining in the review app: the JSON API of the labelling page (sessions per user,
bad input answered 404/422 with nothing recorded) and, in headless Chromium, a user who teaches
the page "water" on real Sen1Floods11 patches until it retrieves them."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import Request

from candela.mining import learner
from tests.mining.helpers import fill_chip

REPO = Path(__file__).resolve().parents[3]


def who(request: Request) -> str:
    """Stand-in for Airflow's login: the user named by a test header (alice by default)."""
    return request.headers.get("x-test-user", "alice")


def _mounted(app: Any) -> Any:
    from fastapi import FastAPI

    root = FastAPI()
    root.mount("/candela", app)
    return root


@pytest.fixture
def world(catalog_dsn: str, tmp_path: Path) -> dict[str, Any]:
    from candela.settings import Settings

    truth = fill_chip(catalog_dsn, tmp_path / "ql")
    settings = Settings(home=tmp_path / "home", storage_root=(tmp_path / "storage").as_uri())
    return {"dsn": catalog_dsn, "truth": truth, "settings": settings, "tmp": tmp_path}


@pytest.fixture
def client(world: dict[str, Any]) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from candela_review.app import create_app

    app = create_app(world["settings"], world["dsn"], auth=who)
    with TestClient(_mounted(app)) as c:
        yield c


def test_sessions_labels_and_bad_input(client: Any, world: dict[str, Any]) -> None:
    from candela.db import mining_labels as db

    truth = world["truth"]
    ids = sorted(truth)
    water = next(p for p in ids if truth[p] == "water")
    r = client.post("/candela/mine/sessions", json={"category": "water", "example_patch_id": water})
    assert r.status_code == 201, r.text
    state = r.json()
    sid = state["session"]["id"]
    assert state["session"]["username"] == "alice" and len(state["batch"]) == 10
    assert state["batch"][0]["quicklook"].endswith(
        f"/mine/patches/{state['batch'][0]['id']}/quicklook"
    )
    ql = client.get(f"/candela/mine/patches/{state['batch'][0]['id']}/quicklook")
    assert ql.status_code == 200 and ql.content[:4] == b"\x89PNG"
    # bob has his own session for the same category and cannot see alice's
    rb = client.post(
        "/candela/mine/sessions", json={"category": "water"}, headers={"x-test-user": "bob"}
    )
    assert rb.status_code == 201 and rb.json()["session"]["id"] != sid
    assert (
        client.get(f"/candela/mine/sessions/{sid}", headers={"x-test-user": "bob"}).status_code
        == 404
    )
    # a label value that does not exist, a patch that no longer exists: refused, nothing kept
    bad = client.post(
        f"/candela/mine/sessions/{sid}/labels",
        json={"labels": [{"patch_id": ids[1], "label": "maybe"}]},
    )
    assert bad.status_code == 422
    import psycopg

    with psycopg.connect(world["dsn"]) as conn:
        conn.execute("DELETE FROM candela.mine_patches WHERE id = %s", (ids[-1],))
    gone = client.post(
        f"/candela/mine/sessions/{sid}/labels",
        json={
            "labels": [{"patch_id": ids[1], "label": "no"}, {"patch_id": ids[-1], "label": "yes"}]
        },
    )
    assert gone.status_code == 404 and f"no patch {ids[-1]}" in gone.json()["description"]
    assert db.current_labels(world["dsn"], sid) == {water: "yes"}
    assert client.get("/candela/mine/patches/999999999/quicklook").status_code == 404
    assert client.get("/candela/mine/patches?bbox=1,2,3").status_code == 400
    assert client.get("/candela/mine/patches?similar_to=999999999").status_code == 404
    near = client.get(f"/candela/mine/patches?similar_to={water}&limit=5").json()["patches"]
    assert len(near) == 5 and water not in [p["id"] for p in near]
    empty = client.post(
        "/candela/mine/sessions",
        json={"category": "water", "bbox": [100, 10, 101, 11]},
        headers={"x-test-user": "carol"},
    )
    assert empty.status_code == 422 and "no mined patch matches" in empty.json()["description"]
    assert db.sessions(world["dsn"], "carol") == []  # nothing recorded
    page = client.get("/candela/mine", headers={"accept": "text/html"})
    assert page.status_code == 200 and 'id="batch"' in page.text


def test_the_page_needs_a_login(world: dict[str, Any]) -> None:
    from fastapi import HTTPException
    from fastapi.testclient import TestClient

    from candela_review.app import create_app

    def nobody() -> str:
        raise HTTPException(401, "Not authenticated")

    with TestClient(_mounted(create_app(world["settings"], world["dsn"], auth=nobody))) as c:
        assert c.get("/candela/mine/sessions/1").status_code == 401
        assert c.post("/candela/mine/sessions", json={"category": "water"}).status_code == 401


@pytest.mark.slow
def test_a_user_teaches_water_in_a_browser(world: dict[str, Any]) -> None:
    """Headless Chromium (Debian chromium, Playwright): open a session from an example patch,
    answer five batches (the truth of the hand-drawn water mask plays the user), the progress
    and the map follow, the retrieved patches match the truth (F1 ≥ 0.8), the category is saved
    to the knowledge base, and the SQL box answers. Screenshot in $CANDELA_TEST_ARTIFACTS."""
    import uvicorn

    from candela.embedded import free_port
    from candela_review.app import create_app

    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip(f"{chromium} not installed (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    truth = world["truth"]
    shots = Path(os.environ.get("CANDELA_TEST_ARTIFACTS") or world["tmp"]) / "mining"
    shots.mkdir(parents=True, exist_ok=True)
    app = create_app(world["settings"], world["dsn"], auth=who)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(_mounted(app), host="127.0.0.1", port=port, log_level="warning")
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("https://**/*", lambda route: route.abort())  # offline: no basemap
            page.goto(f"http://127.0.0.1:{port}/candela/mine")
            page.wait_for_selector("body[data-ready='1']")
            # search: the dataset's patches, then those similar to a water patch; one of them
            # becomes the example ("similar to this one")
            page.fill("#dataset", "sen1floods11")
            page.click("#search")
            page.wait_for_selector("#results .card")
            assert page.locator("#results .card").count() == 20  # the page shows 20 per search
            cards = page.locator("#results .card")
            shown = [int(cards.nth(i).get_attribute("data-patch")) for i in range(cards.count())]
            water = next(p for p in shown if truth[p] == "water")
            page.click(f"#results .card[data-patch='{water}'] .similar")
            page.wait_for_function(
                f"document.getElementById('search-state').textContent.includes('#{water}')"
            )
            near = page.locator("#results .card")
            assert water not in [
                int(near.nth(i).get_attribute("data-patch")) for i in range(near.count())
            ]
            example = int(near.nth(0).get_attribute("data-patch"))
            page.click(f"#results .card[data-patch='{example}'] .use")
            assert page.input_value("#example") == str(example)
            if truth[example] != "water":  # the nearest patch is the user's choice only if water
                page.fill("#example", str(water))
                example = water
            page.fill("#category", "water")
            page.click("#open")
            page.wait_for_selector("#progress[data-iteration='1']")
            for it in range(1, 6):
                cards = page.locator("#batch .card")
                assert cards.count() == 10
                for i in range(cards.count()):
                    card = cards.nth(i)
                    pid = int(card.get_attribute("data-patch"))
                    card.locator(".answer-yes" if truth[pid] == "water" else ".answer-no").click()
                page.click("#send")
                page.wait_for_selector(f"#progress[data-iteration='{it + 1}']")
            assert page.get_attribute("#progress", "data-precision") not in ("", None)
            assert float(page.get_attribute("#progress", "data-recall")) > 0
            assert int(page.get_attribute("#progress", "data-retrieved")) > 0
            assert page.locator("#map path.leaflet-interactive").count() > 0  # footprints drawn
            # what the page retrieves against the hand-drawn truth
            from candela.db import mining_labels as db
            from candela.mining import sessions

            (s,) = db.sessions(world["dsn"], "alice")
            got = {p for p, _ in sessions.retrieved(world["dsn"], s["id"], "alice", 10_000)}
            keys = sorted(truth)
            f1 = learner.scores(
                np.array([truth[p] == "water" for p in keys]), np.array([p in got for p in keys])
            )[2]
            assert f1 >= 0.8, f1
            page.click("#export")
            page.wait_for_selector("#export-state[data-members]")
            assert int(page.get_attribute("#export-state", "data-members")) == len(got)
            # the SQL box: the mine router's read-only endpoint over the labels view
            page.fill(
                "#sql",
                "SELECT label, count(*) AS n FROM candela.mine_v_labels GROUP BY 1 ORDER BY 1",
            )
            page.click("#run-sql")
            page.wait_for_selector("#sql-result table")
            rows = page.locator("#sql-result tr").all_inner_texts()
            assert [r.split("\t")[0] for r in rows] == ["label", "no", "yes"], rows
            page.screenshot(path=str(shots / "mining-page.png"), full_page=True)
            assert errors == [], errors
            browser.close()
    finally:
        server.should_exit = True
        th.join(10)
