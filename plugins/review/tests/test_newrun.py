"""Start a run from the map (``/candela/new``): the page offers the models, the zones and the
dates of the products catalogued over the area; a submission is validated by the workflow's
model and triggered through Airflow's REST API with the caller's token. Airflow is a stand-in
(httpx MockTransport) recording what it is sent, as in the review app's permissions test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
DAG = "s2_change_detection"
BBOX = [-0.68, 44.83, -0.56, 44.93]
COMMUNES = REPO / "data" / "context" / "admin" / "communes-33-gironde.geojson"


class StandInAirflow:
    """Airflow's REST API as far as the app uses it: the DAGs the token may read, and
    ``POST …/dagRuns`` (recorded)."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, str, dict[str, Any]]] = []
        self.answer: tuple[int, dict[str, Any]] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        if request.url.path == "/api/v2/dags":
            return httpx.Response(200, json={"dags": [{"dag_id": DAG}], "total_entries": 1})
        if request.method == "POST" and request.url.path == f"/api/v2/dags/{DAG}/dagRuns":
            body = json.loads(request.content)
            self.posted.append((token, request.url.path, body))
            if self.answer:
                return httpx.Response(self.answer[0], json=self.answer[1])
            run_id = "manual__2026-12-02T03:50:00+00:00"
            return httpx.Response(200, json={"dag_id": DAG, "dag_run_id": run_id, "conf": body})
        return httpx.Response(404, json={"detail": "not found"})


@pytest.fixture
def world(
    tmp_path: Path, catalog_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from candela.airflow_api import AirflowClient
    from candela.settings import Settings
    from candela_review import web
    from candela_review.app import create_app
    from candela_search import catalog, ingest

    # the catalogue: the two Bordeaux products (2016-05-04, 2017-10-26)
    catalog.add(catalog_dsn, ingest.recognise(REPO / "data" / "oscd" / "bordeaux").records)
    registry = tmp_path / "registry"
    (registry / "my-enc").mkdir(parents=True)
    (registry / "my-enc" / "metadata.json").write_text(json.dumps({"name": "my-enc"}))
    monkeypatch.setenv("CANDELA_MODEL_REGISTRY", str(registry))
    airflow = StandInAirflow()

    def client_as_caller(self: Any) -> Any:
        token = web._CALLER_TOKEN.get()
        if not token:
            return None
        return AirflowClient("http://af", token=token, transport=httpx.MockTransport(airflow))

    monkeypatch.setattr(web.Context, "airflow", client_as_caller)
    storage = tmp_path / "storage"
    settings = Settings(home=tmp_path / "home", storage_root=storage.as_uri())
    root = FastAPI()
    root.mount("/candela", create_app(settings, catalog_dsn, auth=lambda: "alice"))
    with TestClient(root, headers={"authorization": "Bearer alice-token"}) as c:
        yield {"client": c, "airflow": airflow, "storage": storage, "app": root, "tmp": tmp_path}


def test_the_page_offers_models_zones_and_readable_labels(world: dict[str, Any]) -> None:
    from candela_sdk.registry import BUILTIN_DESCRIPTIONS

    c = world["client"]
    page = c.get("/candela/new", headers={"accept": "text/html"})
    assert page.status_code == 200
    html = page.text
    for name in ("cva", "irmad", "encoder", "my-enc"):  # built in, and registered
        assert f'<option value="{name}"' in html, name
    assert BUILTIN_DESCRIPTIONS["irmad"] in html
    assert f'<option value="{COMMUNES}">' in html  # the zones shipped with the platform
    # labels are the titles of the workflow's model, not raw ids
    for label in ("Piece size (km)", "Maximum cloud cover", "Change model", "Bounding box"):
        assert label in html, label
    assert "/static/newrun.js" in html and "/static/vendor/leaflet/leaflet.js" in html
    assert c.get("/candela/static/newrun.js").status_code == 200
    assert 'href="http://testserver/candela/new"' in c.get("/candela/").text  # linked


def test_the_dates_are_those_of_the_products_over_the_area(world: dict[str, Any]) -> None:
    c = world["client"]
    r = c.get("/candela/new/products", params={"bbox": ",".join(map(str, BBOX))})
    assert r.status_code == 200, r.text
    found = r.json()["products"]
    assert [p["date"] for p in found] == ["2016-05-04", "2017-10-26"]
    assert {p["collection"] for p in found} == {"sentinel-2-l1c"}
    w, s, e, n = found[0]["footprint"]  # drawn on the map: where the catalogue has data
    assert w < e and s < n and w < BBOX[2] and e > BBOX[0] and s < BBOX[3] and n > BBOX[1]
    other = {"bbox": ",".join(map(str, BBOX)), "collection": "sentinel-2-l2a"}
    assert c.get("/candela/new/products", params=other).json()["products"] == []
    far = c.get("/candela/new/products", params={"bbox": "10,50,10.1,50.1"}).json()
    assert far["products"] == []
    bad = c.get("/candela/new/products", params={"bbox": "1,2,3"})
    assert bad.status_code == 400 and "bbox" in bad.json()["description"]


def test_a_valid_run_is_triggered_with_the_callers_token(world: dict[str, Any]) -> None:
    c, airflow = world["client"], world["airflow"]
    conf = {
        "collection": "sentinel-2-l1c",
        "bbox": BBOX,
        "start": "2016-05-04",
        "end": "2017-10-26",
        "tile": "T30TXQ",
        "model": "cva",
        "zones": str(COMMUNES),
        "threshold": "auto",
        "max_cloud": 30,
        "tile_size_km": "",  # an empty input is no value
    }
    r = c.post("/candela/new", json=conf)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["run_id"] == "manual__2026-12-02T03:50:00+00:00"
    assert body["href"].endswith(f"/candela/runs/{DAG}/manual__2026-12-02T03%3A50%3A00%2B00%3A00")
    assert len(airflow.posted) == 1
    token, _path, sent = airflow.posted[0]
    assert token == "alice-token"
    expected = {k: v for k, v in conf.items() if v != ""}
    assert sent == {"logical_date": None, "conf": expected}
    # an uploaded area instead of a rectangle: sent as `aoi`, the default box cleared
    polygon = {"type": "Polygon", "coordinates": [[[-0.6, 44.83], [-0.55, 44.83], [-0.58, 44.86], [-0.6, 44.83]]]}  # fmt: skip
    r = c.post("/candela/new", json={"aoi": polygon, "bbox": None, "model": "irmad"})
    assert r.status_code == 201, r.text
    assert airflow.posted[1][2]["conf"] == {"aoi": polygon, "bbox": None, "model": "irmad"}
    documented = c.get("/candela/openapi.json").json()["paths"]["/new"]["post"]["responses"]
    assert {"201", "400", "409"} <= set(documented)


@pytest.mark.parametrize(
    ("conf", "field", "words"),
    [
        ({"start": "2017-10-26", "end": "2016-05-04"}, "end", "before start"),
        ({"tile": "30TXQ"}, "tile", "pattern"),
        ({"model": "nosuchmodel"}, "model", "unknown change model"),
        ({"bbox": [-0.5, 44.9, -0.6, 44.8]}, "bbox", "west"),
        ({"aoi": {"type": "Polygon"}}, "aoi", "geometry"),
    ],
)
def test_a_bad_run_names_the_field_and_posts_nothing(
    world: dict[str, Any], conf: dict[str, Any], field: str, words: str
) -> None:
    c, airflow = world["client"], world["airflow"]
    r = c.post("/candela/new", json={"bbox": BBOX, **conf})
    assert r.status_code == 400, r.text
    body = r.json()
    assert list(body["fields"]) == [field], body
    assert words in body["fields"][field].lower() + body["description"].lower(), body
    assert airflow.posted == []


def test_the_run_guards_refusal_is_shown(world: dict[str, Any]) -> None:
    c, airflow = world["client"], world["airflow"]
    why = "an identical run is in progress: manual__2026-12-02T03:00:00+00:00"
    airflow.answer = (409, {"detail": why})
    r = c.post("/candela/new", json={"bbox": BBOX, "model": "cva"})
    assert r.status_code == 409 and r.json()["description"] == why
    assert len(airflow.posted) == 1
    # without a token (the app standalone) nothing is sent
    r = c.post("/candela/new", json={"bbox": BBOX}, headers={"authorization": ""})
    assert r.status_code == 401 and len(airflow.posted) == 1


def test_uploaded_zones_are_stored_checked_and_offered(world: dict[str, Any]) -> None:
    c = world["client"]
    data = COMMUNES.read_bytes()
    r = c.post("/candela/new/zones", params={"name": "my communes.geojson"}, content=data)
    assert r.status_code == 200, r.text
    up = r.json()
    assert up["features"] == 538 and up["uri"].startswith(world["storage"].as_uri())
    stored = Path(up["uri"].removeprefix("file://"))
    assert stored.read_bytes() == data and stored.parent.name == "zones"
    assert f'value="{up["uri"]}"' in c.get("/candela/new").text
    # the same file again: the same URI (a run naming it keeps its output key)
    assert c.post("/candela/new/zones", params={"name": "my communes.geojson"}, content=data)
    assert (
        c.post("/candela/new/zones", params={"name": "my communes.geojson"}, content=data).json()[
            "uri"
        ]
        == up["uri"]
    )
    for name, body in (("x.geojson", b"not json"), ("x.txt", data), ("x.geojson", b"")):
        bad = c.post("/candela/new/zones", params={"name": name}, content=body)
        assert bad.status_code == 400, (name, bad.text)
    assert len(list(stored.parent.iterdir())) == 1  # nothing stored for a refused file


def test_the_page_of_a_running_run_reloads_itself() -> None:
    """After the submission the browser opens the run's page: while the run is queued or
    running it reloads itself (the analyst follows the run there), and stops once it ended."""
    from candela_review.web import templates

    d = {"base": "", "dag_id": DAG, "run_id": "r", "ui_url": "", "airflow": None, "params": {}}
    page = templates().get_template("status.html")
    refresh = '<meta http-equiv="refresh"'
    assert refresh in page.render(d=d, status="running", reasons=[], replaced_by=None)
    assert refresh not in page.render(d=d, status="failed", reasons=[], replaced_by=None)


@pytest.mark.slow
def test_an_analyst_draws_an_area_and_starts_a_run_in_a_browser(world: dict[str, Any]) -> None:
    """Headless Chromium (Debian chromium, Playwright), offline: draw a rectangle on the map,
    pick the two dates among the products over it, a refused parameter is shown on its field
    and nothing is sent, then a valid run is triggered as the caller and the browser goes to
    the run's page. Screenshots in $CANDELA_TEST_ARTIFACTS."""
    import os
    import socket
    import threading
    import time

    import numpy as np
    import uvicorn

    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip(f"{chromium} not installed (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("CANDELA_TEST_ARTIFACTS") or world["tmp"]) / "new-run"
    shots.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(world["app"], host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    airflow = world["airflow"]
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            ctx = browser.new_context(
                viewport={"width": 1400, "height": 950},
                extra_http_headers={"authorization": "Bearer alice-token"},
            )
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("https://**/*", lambda route: route.abort())  # offline basemap
            page.goto(f"http://127.0.0.1:{port}/candela/new")
            page.wait_for_selector("body[data-ready='1']")
            page.wait_for_function("document.getElementById('catalogue-text').textContent")
            assert "2 products catalogued" in page.inner_text("#catalogue-text")
            page.wait_for_timeout(300)  # the map opened on them
            box = page.locator("#map").bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            # a polygon: click its corners, double-click the last one → sent as `aoi`
            page.click("#draw-polygon")
            for dx, dy in ((-120, -80), (110, -100), (60, 90)):
                page.mouse.click(cx + dx, cy + dy)
            page.mouse.dblclick(cx - 100, cy + 70)
            drawn = json.loads(page.input_value("#aoi"))
            assert drawn["type"] == "Polygon" and len(drawn["coordinates"][0]) == 5, drawn
            assert page.input_value("#bbox") == ""
            assert page.inner_text("#aoi-text").startswith("Polygon of 4 corners")
            page.wait_for_selector("#product-table")  # the products over the polygon
            # an area uploaded as GeoPackage (the platform reads it): drawn, sent as `aoi`
            import pyogrio.raw
            from shapely.geometry import shape

            gpkg = world["tmp"] / "upload-area.gpkg"
            pyogrio.raw.write(gpkg, np.array([shape(drawn).wkb], dtype=object), field_data=[],
                              fields=[], crs="EPSG:4326", geometry_type="Polygon", driver="GPKG")  # fmt: skip
            page.set_input_files("#aoi-file", str(gpkg))
            page.wait_for_function(
                "document.getElementById('aoi-text').textContent.includes('upload-area.gpkg')"
            )
            uploaded = json.loads(page.input_value("#aoi"))
            assert shape(uploaded).equals(shape(drawn)), uploaded
            page.click("#clear-aoi")
            assert page.input_value("#aoi") == ""
            # draw a rectangle around the map's centre (Bordeaux)
            page.click("#draw")
            page.mouse.move(cx - 150, cy - 120)
            page.mouse.down()
            page.mouse.move(cx + 150, cy + 120, steps=8)
            page.mouse.up()
            bbox = json.loads(page.input_value("#bbox"))
            w, s, e, n = (
                world["client"]
                .get("/candela/new/products", params={"bbox": ",".join(map(str, BBOX))})
                .json()["products"][0]["footprint"]
            )
            # drawn around the map's centre, where the map opened: the products' footprint
            assert bbox[0] < (w + e) / 2 < bbox[2] and bbox[1] < (s + n) / 2 < bbox[3], bbox
            page.wait_for_selector("#product-table")
            dates = page.locator("#product-table tr[data-date]").evaluate_all(
                "(rows) => rows.map((r) => r.dataset.date)"
            )
            assert dates == ["2016-05-04", "2017-10-26"]
            page.check("input[name=pick-before][value='0']")
            page.check("input[name=pick-after][value='1']")
            assert page.input_value("#start") == "2016-05-04"
            assert page.input_value("#end") == "2017-10-26"
            assert page.input_value("#tile") == "T30TXQ"
            page.select_option("#model", "cva")
            assert "change vector" in page.inner_text("#model-description")
            # a refused parameter: shown on its field, nothing sent to Airflow
            page.fill("#threshold", "1.5")
            page.click("#submit")
            page.wait_for_selector(".field.bad[data-field=threshold]")
            assert "threshold" in page.inner_text("#form-error")
            page.screenshot(path=str(shots / "refused.png"))
            assert airflow.posted == []
            page.fill("#threshold", "auto")
            with page.expect_navigation():
                page.click("#submit")
            assert "/candela/runs/s2_change_detection/manual__2026-12-02" in page.url
            assert len(airflow.posted) == 1
            token, _path, sent = airflow.posted[0]
            assert token == "alice-token"
            conf = sent["conf"]
            assert conf["bbox"] == bbox and conf["model"] == "cva" and conf["tile"] == "T30TXQ"
            assert (conf["start"], conf["end"]) == ("2016-05-04", "2017-10-26")
            page.screenshot(path=str(shots / "after-submit.png"))
            assert errors == [], errors
            browser.close()
    finally:
        server.should_exit = True
        th.join(10)


def test_an_uploaded_area_geojson_or_geopackage_becomes_one_wgs84_polygon(
    world: dict[str, Any], tmp_path: Path
) -> None:
    """An area uploaded as GeoJSON, or as a GeoPackage in a projected CRS (Lambert-93 here,
    written by GDAL through pyogrio), comes back as one WGS 84 geometry that the run's model
    accepts as its ``aoi``; a bad file is refused naming it, nothing is stored."""
    import numpy as np
    import pyogrio.raw
    import shapely
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping, shape

    from candela.workflows import ChangeDetectionConf

    c = world["client"]
    polygon = {"type": "Polygon", "coordinates": [[[-0.62, 44.84], [-0.57, 44.84], [-0.6, 44.89], [-0.62, 44.84]]]}  # fmt: skip
    doc = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": polygon}]}  # fmt: skip
    r = c.post("/candela/new/aoi", params={"name": "area.geojson"}, content=json.dumps(doc))
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["features"] == 1 and shape(got["geometry"]).equals(shape(polygon))

    # the same area as a GeoPackage in EPSG:2154, two features (split in two halves)
    lambert = shape(transform_geom("EPSG:4326", "EPSG:2154", polygon))
    x0, y0, x1, y1 = lambert.bounds
    halves = [lambert.intersection(shapely.box(x0, y0, (x0 + x1) / 2, y1)),
              lambert.intersection(shapely.box((x0 + x1) / 2, y0, x1, y1))]  # fmt: skip
    gpkg = tmp_path / "area-l93.gpkg"
    pyogrio.raw.write(
        gpkg,
        np.array([h.wkb for h in halves], dtype=object),
        field_data=[np.array(["west", "east"], dtype=object)],
        fields=["name"],
        crs="EPSG:2154",
        geometry_type="Polygon",
        driver="GPKG",
    )
    r = c.post("/candela/new/aoi", params={"name": gpkg.name}, content=gpkg.read_bytes())
    assert r.status_code == 200, r.text
    got = r.json()
    area = shape(got["geometry"])
    assert got["features"] == 2 and area.geom_type == "Polygon"  # the halves merged
    assert area.symmetric_difference(shape(polygon)).area < 1e-3 * shape(polygon).area
    assert -0.63 < got["bbox"][0] < -0.61 and 44.88 < got["bbox"][3] < 44.9, got["bbox"]
    ChangeDetectionConf.model_validate({"aoi": got["geometry"], "bbox": None})
    assert mapping(area)  # plain GeoJSON

    before = (
        sorted(p.name for p in world["storage"].rglob("*")) if world["storage"].exists() else []
    )
    for name, body, words in (
        ("x.geojson", b"not json", "not valid json"),
        ("x.geojson", b"", "empty"),
        ("x.geojson", json.dumps({"type": "Point", "coordinates": [0, 0]}).encode(), "not a geojson"),
        ("x.gpkg", b"SQLite format 3\x00garbage", "cannot be read"),
        ("x.geojson", json.dumps({"type": "Polygon", "coordinates": [[[1e6, 0], [2e6, 0], [2e6, 1e6], [1e6, 0]]]}).encode(), "longitude"),
    ):  # fmt: skip
        bad = c.post("/candela/new/aoi", params={"name": name}, content=body)
        assert bad.status_code == 400, (name, bad.text)
        assert name in bad.json()["description"] or words == "empty"
        assert words in bad.json()["description"].lower(), (words, bad.json())
    after = sorted(p.name for p in world["storage"].rglob("*")) if world["storage"].exists() else []
    assert after == before  # nothing stored
