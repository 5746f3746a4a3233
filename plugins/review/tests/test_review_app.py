"""The review app (candela_review) on a run produced by the real services.

A module fixture runs preprocess (both Bordeaux dates) and changedetect through their CLI
contract (``candela_sdk.contract.main``), publishes the run with ``candela.pipeline.publish``
into a real PostgreSQL results table, and serves the app with FastAPI's TestClient (mounted at
``/candela`` like in the api-server). Authentication is Airflow's; here the app is built with an
``auth`` dependency that accepts every request, except in the test that checks the real one.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests import stac_conformance

REPO = Path(__file__).resolve().parents[3]

DAG = "s2_change_detection"
RUN = "manual__2026-01-01T00:00:00+00:00"
PARAMS = {
    "collection": "sentinel-2-l1c",
    "tile": "T30TXQ",
    "bbox": [-0.68, 44.83, -0.56, 44.93],  # the demo's area: the result covers part of it
    "model": "cva",
    "threshold": "auto",
}


def _service_run(service: Any, argv: list[str], capsys: Any = None) -> dict[str, Any]:
    import contextlib

    from candela_sdk.contract import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(service, argv)
    out = buf.getvalue().strip().splitlines()
    assert code == 0, out
    return json.loads(out[-1])


def produce_run(
    storage: Path,
    dsn: str | None,
    bordeaux: Path,
    run_id: str = RUN,
    model: str = "cva",
    zones: Path | None = None,
) -> dict[str, Any]:
    """preprocess ×2 + changedetect + publish, exactly as the DAG chains them."""
    from candela import pipeline
    from candela.runs import output_key
    from candela.settings import Settings
    from candela_changedetect.service import SERVICE as DETECT
    from candela_preprocess.service import SERVICE as PREPROCESS
    from candela_search import ingest

    settings = Settings(home=storage.parent, storage_root=storage.as_uri())
    params = {**PARAMS, "model": model}
    key = output_key(DAG, params)
    prefix = pipeline.output_prefix(settings, DAG, key, run_id)
    records = sorted(ingest.recognise(bordeaux).records, key=lambda r: r.datetime)
    stacks = []
    for rec in records:  # one stack per product, as the DAG's preprocess tasks write them
        out = f"{prefix}/stacks/{pipeline.safe_key(rec.id)}.tif"
        stacks.append(_service_run(PREPROCESS, ["--product", rec.href, "--output", out]))
    changes = []
    for job in pipeline.change_arguments(stacks, prefix, model, "auto"):
        argv = ["--before", job["before"], "--after", job["after"], "--model", job["model"]]
        argv += ["--output", job["output"]]
        if zones:
            argv += ["--zones", str(zones)]
        changes.append(_service_run(DETECT, argv))
    return pipeline.publish(settings, DAG, run_id, key, params, stacks, changes, dsn)


def allow_all() -> str:
    return "test-user"


def mounted(app: Any) -> Any:
    from fastapi import FastAPI

    root = FastAPI()
    root.mount("/candela", app)
    return root


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pg_server: str) -> dict[str, Any]:
    import uuid

    import psycopg

    from candela.db import migrate
    from candela.settings import Settings

    name = "t_review_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    dsn = pg_server.replace("/postgres?", f"/{name}?")
    migrate(dsn)
    home = tmp_path_factory.mktemp("review") / "home"
    storage = home / "storage"
    storage.mkdir(parents=True)
    bordeaux = REPO / "data" / "oscd" / "bordeaux"
    t0 = time.monotonic()
    summary = produce_run(storage, dsn, bordeaux)
    print(f"services produced the run in {time.monotonic() - t0:.1f} s")
    settings = Settings(home=home, storage_root=storage.as_uri())
    return {"dsn": dsn, "settings": settings, "summary": summary, "storage": storage, "home": home}


@pytest.fixture(scope="module")
def client(world: dict[str, Any]) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from candela_review.app import create_app

    app = create_app(world["settings"], world["dsn"], auth=allow_all)
    with TestClient(mounted(app)) as c:
        yield c


def run_path(run_id: str = RUN) -> str:
    return f"/candela/runs/{DAG}/{quote(run_id, safe='')}"


# --- STAC API ---------------------------------------------------------------------------------


def test_landing_conformance_collections(client: Any) -> None:
    land = client.get("/candela/stac/").json()
    assert (
        land["type"] == "Catalog"
        and "https://api.stacspec.org/v1.0.0/item-search" in land["conformsTo"]
    )
    rels = {link["rel"] for link in land["links"]}
    assert {"self", "root", "conformance", "data", "search", "child"} <= rels
    assert client.get("/candela/stac/conformance").json()["conformsTo"] == land["conformsTo"]
    cols = client.get("/candela/stac/collections").json()["collections"]
    assert [c["id"] for c in cols] == [DAG]
    bbox = cols[0]["extent"]["spatial"]["bbox"][0]
    assert -0.7 < bbox[0] < bbox[2] < -0.5 and 44.7 < bbox[1] < bbox[3] < 45.0
    assert client.get("/candela/stac/collections/nope").status_code == 404


def test_search_filters(client: Any, world: dict[str, Any]) -> None:
    def n(**params: Any) -> int:
        r = client.get("/candela/stac/search", params=params)
        assert r.status_code == 200, r.text
        return len(r.json()["features"])

    assert n() == 1
    assert n(bbox="-0.7,44.8,-0.5,44.9") == 1
    assert n(bbox="2.0,48.0,3.0,49.0") == 0  # Paris
    assert n(datetime="2017-01-01T00:00:00Z/..") == 1
    assert n(datetime="2018-01-01T00:00:00Z/2019-01-01T00:00:00Z") == 0
    assert n(collections=DAG) == 1 and n(collections="other_dag") == 0
    body = client.post("/candela/stac/search", json={"bbox": [-0.7, 44.8, -0.5, 44.9]}).json()
    (feat,) = body["features"]
    assert feat["collection"] == DAG and body["numberMatched"] == 1
    assert feat["assets"]["change_probability"]["href"].startswith(
        "http://testserver/candela/runs/"
    )


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "a,b,c,d"}, "bbox"),
        ({"bbox": "0,50,1,40"}, "bbox"),
        ({"datetime": "yesterday"}, "datetime"),
        ({"datetime": "2018-01-01T00:00:00Z/2017-01-01T00:00:00Z"}, "ends before"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"token": "x"}, "token"),
        ({"token": "next:9223372036854775808"}, "token"),
        ({"token": "next:-1"}, "token"),
        ({"token": "next:\u00b2"}, "token"),
        ({"limit": "1e400"}, "limit"),
        ({"limit": "99999999999999999999999"}, "limit"),
        ({"bbox": "nan,0,1,1"}, "bbox"),
        ({"datetime": "../.."}, "open at both ends"),
        ({"frobnicate": "1"}, "unsupported"),
    ],
)
def test_malformed_query_is_400_with_message(
    client: Any, params: dict[str, str], word: str
) -> None:
    r = client.get("/candela/stac/search", params=params)
    assert r.status_code == 400
    assert word in r.json()["description"]


def test_malformed_post_body(client: Any) -> None:
    r = client.post(
        "/candela/stac/search", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "JSON" in r.json()["description"]
    r = client.post("/candela/stac/search", json={"intersects": {"type": "Point"}})
    assert r.status_code == 400 and "intersects" in r.json()["description"]
    for body, word in (
        ({"token": "next:9223372036854775808"}, "token"),
        ({"token": 2}, "token"),
        ({"limit": 2.5}, "limit"),
        ({"limit": True}, "limit"),
        ({"bbox": {"west": 0}}, "bbox"),
        ({"bbox": [0, 0, 1, "x"]}, "bbox"),
        ({"datetime": 2017}, "datetime"),
        ({"ids": [1, 2]}, "ids"),
    ):
        r = client.post("/candela/stac/search", json=body)
        assert r.status_code == 400, (body, r.text)
        assert word in r.json()["description"], (body, r.text)


def test_stac_api_conformance_fixes(client: Any) -> None:
    """What stac-api-validator asks of core, collections, features and item-search."""
    land = client.get("/candela/stac/").json()
    desc = [link for link in land["links"] if link["rel"] == "service-desc"]
    assert desc and client.get(desc[0]["href"].removeprefix("http://testserver")).json()["paths"]
    # intersects (GET: JSON text; POST: an object); a point inside and one far away
    inside = {"type": "Point", "coordinates": [-0.58, 44.84]}
    far = {"type": "Polygon", "coordinates": [[[2, 48], [3, 48], [3, 49], [2, 49], [2, 48]]]}
    got = client.get("/candela/stac/search", params={"intersects": json.dumps(inside)}).json()
    assert got["numberMatched"] >= 1
    assert client.post("/candela/stac/search", json={"intersects": far}).json()["features"] == []
    both = client.post("/candela/stac/search", json={"intersects": inside, "bbox": [0, 0, 1, 1]})
    assert both.status_code == 400
    # a large limit is clamped, not refused
    big = client.get("/candela/stac/search", params={"limit": "100000"})
    assert big.status_code == 200
    assert client.post("/candela/stac/search", json={"limit": 1e300}).status_code == 200
    # RFC 3339 date-times only; a CSV bbox is a GET form, not a POST one
    for bad in ("2017-10-26", "1985-04-12T23:20:50.52", "1937-01-01T12:00:27.87+0100",
                "37-01-01T12:00:27.87Z", "1985-04-12T23:20:50,Z", "2017-W43-1T00:00:00Z",
                "20171026T000000Z"):  # fmt: skip
        r = client.get("/candela/stac/search", params={"datetime": bad})
        assert r.status_code == 400, bad
    r = client.post("/candela/stac/search", json={"bbox": "-0.7,44.8,-0.5,44.9"})
    assert r.status_code == 400 and "array" in r.json()["description"]
    # no null datetime; the collection's extent spans the items' periods
    for f in client.get("/candela/stac/search", params={"limit": 100}).json()["features"]:
        assert f["properties"]["datetime"] is not None
    col = client.get(f"/candela/stac/collections/{DAG}").json()
    start, end = col["extent"]["temporal"]["interval"][0]
    assert start.startswith("2016-05-04") and end.startswith("2017-10-26")


@pytest.mark.parametrize(
    "params",
    [
        {"token": "next:2147483647"},  # far past the end: an empty page, not an error
        {"datetime": "0001-01-01T00:00:00+05:00/9999-12-31T23:59:59-05:00"},
        {"bbox": "-180,-90,180,90", "limit": "1000"},
    ],
)
def test_extreme_but_valid_queries_answer(client: Any, params: dict[str, str]) -> None:
    r = client.get("/candela/stac/search", params=params)
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "FeatureCollection"


def test_query_parsing_refuses_what_the_database_cannot_take() -> None:
    """Without a server: every malformed parameter is a BadRequest (a 400), never a crash."""
    from candela.web_errors import BadRequest
    from candela_review import stac_api

    assert stac_api.parse_token("next:12") == 12 and stac_api.parse_token(None) == 0
    assert stac_api.parse_limit("7") == 7 and stac_api.parse_limit(7.0) == 7
    bad = [
        {"token": "next:9223372036854775808"},
        {"token": "next:" + "9" * 5000},
        {"token": "next:\u0663"},  # an Arabic-Indic digit: isdigit(), but not a token of ours
        {"limit": float("inf")},
        {"limit": float("nan")},
        {"limit": "1" * 5000},
        {"bbox": [0, 0, float("inf"), 1]},
        {"datetime": "2017-13-01T00:00:00Z"},
    ]
    for params in bad:
        with pytest.raises(BadRequest) as err:
            stac_api.parse_query(params)
        assert err.value.status == 400, params


@contextlib.contextmanager
def _copies(world: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Three results in the table: the real one re-recorded under two more run ids (removed
    after); yields the real item."""
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(world["dsn"]) as conn:
        row = conn.execute("SELECT item FROM candela.results").fetchone()
        assert row is not None
        for k in (1, 2):
            item = dict(row[0], id=f"{row[0]['id']}-copy{k}")
            conn.execute(
                """INSERT INTO candela.results (id, workflow, run_id, datetime, min_lon, min_lat,
                   max_lon, max_lat, item) SELECT %s, workflow, %s, datetime, min_lon, min_lat,
                   max_lon, max_lat, %s FROM candela.results WHERE id = %s""",
                (item["id"], f"copy{k}", Jsonb(item), row[0]["id"]),
            )
    try:
        yield row[0]
    finally:
        with psycopg.connect(world["dsn"]) as conn:
            conn.execute("DELETE FROM candela.results WHERE id LIKE '%-copy_'")


def test_paging(world: dict[str, Any], client: Any, tmp_path: Path) -> None:
    """Three results in the table (the real one re-recorded under two more run ids): pages of 2."""
    with _copies(world):
        page = client.get("/candela/stac/search", params={"limit": 2}).json()
        assert page["numberMatched"] == 3 and len(page["features"]) == 2
        (nxt,) = [link for link in page["links"] if link["rel"] == "next"]
        page2 = client.get(nxt["href"]).json()
        assert len(page2["features"]) == 1
        assert not [link for link in page2["links"] if link["rel"] == "next"]
        ids = {f["id"] for f in page["features"] + page2["features"]}
        assert len(ids) == 3
        post = client.post("/candela/stac/search", json={"limit": 2}).json()
        (pn,) = [link for link in post["links"] if link["rel"] == "next"]
        assert pn["method"] == "POST" and pn["body"]["token"] == "next:2"


def _schema_map() -> dict[str, str]:
    """stac-validator offline: core STAC 1.1.0 and GeoJSON schemas as shipped in pystac."""
    import pystac

    root = Path(pystac.__file__).parent / "validation" / "jsonschemas"
    spec = root / "stac-spec" / "v1.1.0"
    m = {
        f"https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/{p.name}": str(p)
        for p in spec.glob("*.json")
    }
    m["https://schemas.stacspec.org/v1.1.0/collection-spec/json-schema/collection.json"] = str(
        spec / "collection.json"
    )
    m["https://schemas.stacspec.org/v1.1.0/catalog-spec/json-schema/catalog.json"] = str(
        spec / "catalog.json"
    )
    for name in ("Feature", "Geometry"):
        m[f"https://geojson.org/schema/{name}.json"] = str(root / "geojson" / f"{name}.json")
    return m


def test_items_validate_with_stac_validator(client: Any) -> None:
    from stac_validator.validate import StacValidate  # stac-validator (module of stac_valid)

    feats = client.get("/candela/stac/collections/" + DAG + "/items").json()["features"]
    assert feats
    docs = [*feats, client.get("/candela/stac/collections/" + DAG).json()]
    for doc in docs:
        v = StacValidate(core=True, schema_map=_schema_map())
        ok = v.validate_dict(doc)
        assert ok, v.message
    one = client.get(f"/candela/stac/collections/{DAG}/items/{feats[0]['id']}")
    assert one.status_code == 200 and one.json()["id"] == feats[0]["id"]


def _free_port() -> int:
    from candela.embedded import free_port

    return free_port()


def test_pystac_client_opens_the_api(world: dict[str, Any]) -> None:
    import uvicorn
    from pystac_client import Client

    from candela_review.app import create_app

    port = _free_port()
    app = mounted(create_app(world["settings"], world["dsn"], auth=allow_all))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        cat = Client.open(f"http://127.0.0.1:{port}/candela/stac/")
        assert [c.id for c in cat.get_collections()] == [DAG]
        found = cat.search(collections=[DAG], bbox=[-0.7, 44.8, -0.5, 44.9], datetime="2016/2018")
        items = list(found.items())
        assert len(items) == 1
        assert items[0].properties["candela:run_id"] == RUN
        assert list(cat.search(bbox=[10, 10, 11, 11]).items()) == []
    finally:
        server.should_exit = True
        th.join(10)


# --- tiles, legends, downloads ------------------------------------------------------------------


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    import math

    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def _png(data: bytes) -> Any:
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def _page_result(client: Any) -> dict[str, Any]:
    """Result 0 as the review page's map gets it (its titiler tile URL templates…)."""
    import json as _json
    import re as _re

    html = client.get(run_path(), headers={"accept": "text/html"}).text
    data = _json.loads(_re.search(r"initReview\((\{.*\})\)\.catch", html).group(1))  # type: ignore[union-attr]
    return data["results"][0]  # type: ignore[no-any-return]


def _tile(client: Any, template: str, z: int, x: int, y: int) -> Any:
    url = template.removeprefix("http://testserver")
    return client.get(url.replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y)))


def test_tiles_render_each_layer(client: Any, world: dict[str, Any]) -> None:
    """The page's tiles are titiler-core's, drawn with Candela's colormaps, one stretch for both
    dates and the threshold algorithm."""
    import numpy as np

    item = client.get("/candela/stac/search").json()["features"][0]
    w, s, e, n = item["bbox"]
    x, y = _tile_of((w + e) / 2, (s + n) / 2, 14)
    result = _page_result(client)
    urls = result["tiles"]
    assert all(u.startswith("http://testserver/candela/cog/") for u in urls.values()), urls
    # one stretch shared by both dates
    assert urls["before"].split("?")[1] == urls["after"].split("?")[1]
    assert "rescale=" in urls["after"] and "bidx=" in urls["after"]
    arrays = {}
    for layer in ("before", "after", "probability", "mask"):
        r = _tile(client, urls[layer], 14, x, y)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png"
        a = _png(r.content)
        assert a.shape == (256, 256, 4)
        arrays[layer] = a
    # true colour: opaque and not flat (a real stretch of real data)
    rgb = arrays["after"]
    assert (rgb[..., 3] == 255).mean() > 0.5 and rgb[..., :3].std() > 10
    assert not np.array_equal(arrays["before"], arrays["after"])
    # mask: only red (change) or fully transparent
    m = arrays["mask"]
    visible = m[..., 3] > 0
    assert visible.any() and (m[visible][:, 0] == 230).all()
    # probability: the ramp, more opaque where more probable, transparent at 0
    p = arrays["probability"]
    assert p[..., 3].max() > 200 and (p[..., 3] == 0).any()

    # the mask at a threshold (the page's slider): the stored mask at the run's threshold,
    # more change at a lower threshold, only red or transparent
    def at(t: float) -> Any:
        r = _tile(
            client,
            f"{urls['mask_at']}&algorithm_params={quote(json.dumps({'threshold': t}))}",
            14,
            x,
            y,
        )
        assert r.status_code == 200, r.text
        return _png(r.content)

    run_threshold = result["statistics"]["threshold"]
    same = at(run_threshold)
    assert ((same[..., 3] > 0) == visible).mean() > 0.99
    low, high = at(0.0), at(1.0)
    assert (low[..., 3] > 0).sum() > visible.sum() >= (high[..., 3] > 0).sum()
    assert ((low[..., 3] > 0) >= (same[..., 3] > 0)).all()
    assert (low[low[..., 3] > 0][:, 0] == 230).all()
    bad = _tile(
        client,
        f"{urls['mask_at']}&algorithm_params={quote(json.dumps({'threshold': 2}))}",
        14,
        x,
        y,
    )
    assert bad.status_code == 400


def test_tile_outside_raster(client: Any) -> None:
    """Outside the raster titiler answers 404 (the page asks only within the result's bounds);
    an unknown layer or run is 404, an unknown colormap 422."""
    urls = _page_result(client)["tiles"]
    x, y = _tile_of(2.35, 48.85, 12)  # Paris
    assert _tile(client, urls["probability"], 12, x, y).status_code == 404
    cog = f"/candela/cog/{DAG}/{quote(RUN, safe='')}/0"
    unknown = client.get(f"{cog}/ndvi/tiles/WebMercatorQuad/2/1/1.png")
    assert unknown.status_code == 404 and "unknown layer" in unknown.json()["description"]
    norun = client.get(f"/candela/cog/{DAG}/nope/0/probability/tiles/WebMercatorQuad/2/1/1.png")
    assert norun.status_code == 404
    cmap = client.get(f"{cog}/probability/tiles/WebMercatorQuad/2/1/1.png?colormap_name=nope")
    assert cmap.status_code == 422


def test_legends(client: Any) -> None:
    p = client.get("/candela/legend/probability").json()
    assert p["type"] == "ramp" and p["stops"][0]["value"] == 0 and p["stops"][-1]["value"] == 1
    assert client.get("/candela/legend/mask").json()["classes"][0]["label"] == "change"
    png = client.get("/candela/legend/probability.png")
    assert png.status_code == 200 and _png(png.content).shape[2] == 4
    assert client.get("/candela/legend/nope").status_code == 404


def test_downloads(client: Any, world: dict[str, Any]) -> None:
    import rasterio
    from rasterio.io import MemoryFile

    item = client.get("/candela/stac/search").json()["features"][0]
    cog = client.get(item["assets"]["change_probability"]["href"].removeprefix("http://testserver"))
    assert cog.status_code == 200 and "attachment" in cog.headers["content-disposition"]
    with MemoryFile(cog.content) as mf, mf.open() as ds:
        assert ds.dtypes[0] == "float32"
    # the change polygons as a GeoPackage, opened with GDAL/OGR (pyogrio)
    import pyogrio

    gpkg = client.get(
        item["assets"]["change_polygons_gpkg"]["href"].removeprefix("http://testserver")
    )
    assert gpkg.status_code == 200
    path = world["home"] / "downloaded.gpkg"
    path.write_bytes(gpkg.content)
    meta, _fids, geoms, fields = pyogrio.raw.read(path)
    names = list(meta["fields"])
    assert {"area_ha", "mean_probability"} <= set(names) and len(geoms) > 0
    total = sum(fields[names.index("area_ha")])
    stats = client.get(item["assets"]["statistics"]["href"].removeprefix("http://testserver"))
    assert total == pytest.approx(stats.json()["changed_area_ha"], rel=1e-3)
    stats = client.get(
        item["assets"]["statistics"]["href"].removeprefix("http://testserver")
    ).json()
    assert stats["valid_pixels"] > 0
    own = client.get(f"{run_path()}/download/{item['id']}/item").json()
    assert own["id"] == item["id"]
    stack = client.get(f"{run_path()}/stacks/0")
    with MemoryFile(stack.content) as mf, mf.open() as ds:
        assert "B04" in ds.descriptions
    assert client.get(f"{run_path()}/run.json").json()["run_id"] == RUN
    del rasterio


@pytest.mark.parametrize(
    "path",
    [
        "/download/{item}/..%2F..%2Frun.json",
        "/download/{item}/..",
        "/download/..%2F..%2F..%2Fetc/passwd",
        "/stacks/-1",
        "/stacks/99",
        "/download/{item}/quicklook.png",
    ],
)
def test_downloads_cannot_escape(client: Any, path: str) -> None:
    item = client.get("/candela/stac/search").json()["features"][0]["id"]
    r = client.get(run_path() + path.format(item=item))
    assert r.status_code in (404, 422)
    assert b"root:" not in r.content


def test_missing_output_object(world: dict[str, Any]) -> None:
    """The probability COG of the run disappears: tiles and downloads say 404, the page says so."""
    from fastapi.testclient import TestClient

    from candela_review.app import create_app

    prob = Path(
        world["summary"]["results"][0]["outputs"]["change_probability"].removeprefix("file://")
    )
    hidden = prob.with_name("hidden.tif")
    prob.rename(hidden)
    try:
        with TestClient(mounted(create_app(world["settings"], world["dsn"], auth=allow_all))) as c:
            t = c.get(
                f"/candela/cog/{DAG}/{quote(RUN, safe='')}/0/probability"
                "/tiles/WebMercatorQuad/14/8164/5890.png"
            )
            assert t.status_code == 404 and "missing" in t.json()["description"]
            page = c.get(run_path())
            assert page.status_code == 200 and "change_probability.tif (missing)" in page.text
            assert c.get(f"{run_path()}/histogram").status_code == 404
            item = c.get("/candela/stac/search").json()["features"][0]["id"]
            d = c.get(f"{run_path()}/download/{item}/change_probability")
            assert d.status_code == 404 and "missing" in d.json()["description"]
    finally:
        hidden.rename(prob)


# --- pages -------------------------------------------------------------------------------------


def test_zone_table_and_histogram(client: Any, world: dict[str, Any]) -> None:
    z = client.get(f"{run_path()}/zones").json()
    assert "1 km grid" in z["source"] and len(z["zones"]) >= 4
    total = sum(x["changed_area_ha"] for x in z["zones"])
    changed = world["summary"]["results"][0]["changed_area_ha"]
    assert total == pytest.approx(changed, rel=0.02)  # the cells tile the raster
    areas = [x["changed_area_ha"] for x in z["zones"]]
    assert areas == sorted(areas, reverse=True)
    assert all(len(x["bbox"]) == 4 for x in z["zones"])
    h = client.get(f"{run_path()}/histogram").json()
    assert len(h["counts"]) == 20 and sum(h["counts"]) == h["pixels"] > 0


def test_review_page_and_report(client: Any) -> None:
    page = client.get(run_path(), headers={"accept": "text/html"})
    assert page.status_code == 200
    html = page.text
    assert (
        "static/vendor/leaflet/leaflet.js" in html
        and "unpkg" not in html
        and "cdn" not in html.lower()
    )
    assert "Parameters and provenance" in html and "candela-changedetect" in html
    assert "change_probability.tif" in html and "download" in html
    assert "change_polygons.gpkg" in html  # the changed areas as polygons, for GIS tools
    js = client.get("/candela/static/vendor/leaflet/leaflet.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    report = client.get(f"{run_path()}/report").text
    assert "Zone statistics" in report and "quicklook" in report and "1 km cell" in report


def test_report_location_map_and_pair(client: Any) -> None:
    """The report's figures: the footprint (red) inside the requested area (blue outline), and
    the before/after pair drawn with one shared stretch."""
    import numpy as np

    report = client.get(f"{run_path()}/report").text
    assert "/report/0/location.png" in report and "/report/0/before.png" in report
    assert "covers" in report  # the share of the requested area the result covers
    loc = client.get(f"{run_path()}/report/0/location.png")
    assert loc.status_code == 200 and loc.headers["content-type"] == "image/png"
    px = _png(loc.content)
    red = (px[..., 0] > 180) & (px[..., 1] < 120) & (px[..., 2] < 120)
    blue = (px[..., 2] > 150) & (px[..., 0] < 100)
    assert red.sum() > 50 and blue.sum() > 50  # both the footprint and the AOI are drawn
    # the demo result covers part of the AOI: the outline spans more than the footprint
    assert np.ptp(np.nonzero(blue)[1]) > np.ptp(np.nonzero(red)[1])
    before = _png(client.get(f"{run_path()}/report/0/before.png").content)
    after = _png(client.get(f"{run_path()}/report/0/after.png").content)
    assert before.shape == after.shape and before.shape[0] > 100
    assert not np.array_equal(before, after)  # two dates, not one image twice
    assert client.get(f"{run_path()}/report/0/nope.png").status_code == 404
    assert client.get(f"{run_path('manual__nope')}/report/0/location.png").status_code == 404


def test_unknown_run_page_says_so(client: Any) -> None:
    r = client.get(run_path("no_such_run"), headers={"accept": "text/html"})
    assert r.status_code == 404 and "No such run" in r.text


def test_status_page_no_data_and_failed(world: dict[str, Any], client: Any) -> None:
    """What Airflow says of a run without outputs decides the page (state from the metadata DB in
    the api-server; here handed over, the rendering is what is checked)."""
    from candela_review import runs

    nodata = runs.Run(
        DAG, "r-nodata", "", None, [],
        runs.AirflowState("success", [{"task_id": "publish", "map_index": -1, "state": "skipped", "try": 1}]),
    )  # fmt: skip
    failed = runs.Run(DAG, "r-failed", "", None, [], runs.AirflowState("failed", []))
    running = runs.Run(DAG, "r-run", "", None, [], runs.AirflowState("running", []))
    empty = runs.Run(DAG, "r-empty", "", {"results": []}, [], None)
    assert [r.status for r in (nodata, failed, running, empty)] == [
        "no-data", "failed", "running", "no-data"
    ]  # fmt: skip


def test_failed_run_reason_from_task_log() -> None:
    """Why a task was skipped or failed: read from its log through Airflow's REST API, at the
    try the task is at."""
    import httpx

    from candela.airflow_api import AirflowClient
    from candela_review.runs import AirflowState, task_messages

    logs = {
        "/search_products/logs/1": [
            {"event": "no data: no product matches the search", "level": "info"}
        ],
        "/preprocess/logs/2": [
            {"event": "starting", "level": "info"},
            {"event": "step failed: exit 2", "level": "error"},
        ],
    }
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer caller-jwt"
        asked.append(f"{request.url.path}?map_index={request.url.params['map_index']}")
        for suffix, content in logs.items():
            if request.url.path.endswith(suffix):
                return httpx.Response(200, json={"content": content})
        return httpx.Response(404, json={"detail": "no log"})

    st = AirflowState(
        "failed",
        [
            {"task_id": "search_products", "map_index": -1, "state": "skipped", "try": 1},
            {"task_id": "preprocess", "map_index": 0, "state": "failed", "try": 2},
            {"task_id": "mosaic", "map_index": -1, "state": "upstream_failed", "try": 0},
            {"task_id": "publish", "map_index": -1, "state": "failed", "try": 1},  # no log: 404
        ],
    )
    transport = httpx.MockTransport(handler)
    with AirflowClient("http://af", token="caller-jwt", transport=transport) as c:
        assert task_messages(c, DAG, "r1", st) == [
            "search_products: no data: no product matches the search",
            "preprocess: step failed: exit 2",
        ]
    base = f"/api/v2/dags/{DAG}/dagRuns/r1/taskInstances"
    assert asked == [
        f"{base}/search_products/logs/1?map_index=-1",
        f"{base}/preprocess/logs/2?map_index=0",
        f"{base}/publish/logs/1?map_index=-1",
    ]
    assert task_messages(None, DAG, "r1", st) == []


def test_status_tasks_in_dag_order() -> None:
    """The run status page lists the tasks upstream first (Airflow's DAG structure), not
    alphabetically; alphabetically when Airflow does not give the structure."""
    import httpx

    from candela.airflow_api import AirflowClient
    from candela_review.runs import airflow_state

    tis = [
        {"task_id": name, "map_index": i, "state": "success", "try_number": 1}
        for name, i in (("publish", -1), ("mosaic", 0), ("preprocess", 1), ("preprocess", 0))
    ] + [{"task_id": "search_products", "map_index": -1, "state": "success", "try_number": 1}]
    structure = [
        {"task_id": "mosaic", "downstream_task_ids": ["publish"]},
        {"task_id": "preprocess", "downstream_task_ids": ["mosaic"]},
        {"task_id": "publish", "downstream_task_ids": []},
        {"task_id": "search_products", "downstream_task_ids": ["preprocess"]},
    ]

    def handler(with_structure: bool) -> Any:
        def answer(request: httpx.Request) -> httpx.Response:
            path = request.url.path
            if path.endswith("/taskInstances"):
                return httpx.Response(200, json={"task_instances": tis})
            if path.endswith("/tasks"):
                if with_structure:
                    return httpx.Response(200, json={"tasks": structure})
                return httpx.Response(403, json={"detail": "forbidden"})
            if path.endswith("/r1"):
                return httpx.Response(200, json={"state": "success", "conf": {}})
            return httpx.Response(404, json={"detail": "not found"})

        return httpx.MockTransport(answer)

    def listed(with_structure: bool) -> list[tuple[str, int]]:
        with AirflowClient("http://af", token="t", transport=handler(with_structure)) as c:
            st = airflow_state(DAG, "r1", c)
        assert st is not None
        return [(t["task_id"], t["map_index"]) for t in st.tasks]

    assert listed(True) == [
        ("search_products", -1), ("preprocess", 0), ("preprocess", 1), ("mosaic", 0),
        ("publish", -1),
    ]  # fmt: skip
    assert [t for t, _ in listed(False)] == sorted(t for t, _ in listed(False))


def test_compare_two_runs(world: dict[str, Any], client: Any) -> None:
    run_b = "manual__irmad"
    produce_run(world["storage"], world["dsn"], REPO / "data" / "oscd" / "bordeaux", run_b, "irmad")
    r = client.get("/candela/compare", params={"a": f"{DAG}/{RUN}", "b": f"{DAG}/{run_b}"})
    assert r.status_code == 200
    assert "irmad" in r.text and "cva" in r.text and "Difference (B − A)" in r.text
    bad = client.get("/candela/compare", params={"a": "nonsense", "b": f"{DAG}/{RUN}"})
    assert bad.status_code == 400


def test_same_parameters_again_keeps_both_runs(world: dict[str, Any], client: Any) -> None:
    """A second run with the first run's parameters: its own prefix and item, and nothing of
    the first run changes (its run.json, items, page); the list shows both, with the note."""
    import psycopg

    first_page = client.get(run_path(), headers={"accept": "text/html"}).text
    first_summary = client.get(f"{run_path()}/run.json").json()
    first_item = next(
        f
        for f in client.get("/candela/stac/search", params={"limit": 100}).json()["features"]
        if f["properties"]["candela:run_id"] == RUN
    )
    again = "manual__again"
    summary = produce_run(
        world["storage"], world["dsn"], REPO / "data" / "oscd" / "bordeaux", again
    )
    assert summary["output_key"] == first_summary["output_key"]
    assert summary["prefix"] != first_summary["prefix"] and again in summary["prefix"]
    assert summary["same_parameters_as"] == [RUN]
    assert client.get(f"{run_path()}/run.json").json() == first_summary  # untouched
    assert client.get(run_path(), headers={"accept": "text/html"}).text == first_page
    page2 = client.get(run_path(again), headers={"accept": "text/html"})
    assert page2.status_code == 200 and summary["prefix"].rsplit("/", 1)[-1] in page2.text
    assert "same parameters as" in page2.text and RUN in page2.text
    feats = client.get("/candela/stac/search", params={"limit": 100}).json()["features"]
    by_run = {f["properties"]["candela:run_id"]: f for f in feats}
    assert {RUN, again} <= set(by_run)
    assert by_run[again]["id"] != first_item["id"]
    assert by_run[RUN] == first_item  # the first run's published item is as it was
    with psycopg.connect(world["dsn"]) as conn:
        runs_rows = conn.execute(
            "SELECT count(DISTINCT run_id) FROM candela.results WHERE run_id IN (%s, %s)",
            (RUN, again),
        ).fetchone()
    assert runs_rows == (2,)
    index = client.get("/candela/", headers={"accept": "text/html"}).text
    assert f'data-run="{RUN}"' in index and f'data-run="{again}"' in index
    assert index.count("same parameters as") == 1
    # a run never replaces another run's published item
    from candela.db.results import ResultTaken, record_results

    stolen = dict(by_run[RUN])
    with pytest.raises(ResultTaken):
        record_results(world["dsn"], DAG, "manual__thief", [stolen])


def test_airflow_auth_is_required(world: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from candela_review.app import create_app

    with TestClient(mounted(create_app(world["settings"], world["dsn"]))) as c:
        r = c.get("/candela/stac/")
        assert r.status_code == 401
        page = c.get(run_path(), headers={"accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 307 and page.headers["location"].startswith("/auth/login")
        assert c.get("/candela/static/review.js").status_code == 200  # static files are public


def test_review_url_pattern() -> None:
    from candela_review.app import review_url

    assert (
        review_url("http://localhost:8080/", DAG, RUN)
        == "http://localhost:8080/candela/runs/s2_change_detection/manual__2026-01-01T00%3A00%3A00%2B00%3A00"
    )


def test_result_stored_without_zones_or_histogram_shows_none_with_a_note() -> None:
    """A result published before the pipeline stored zone statistics and histograms: the app
    says so instead of computing them."""
    from candela.web_errors import NotFound
    from candela_review import runs

    old = runs.Result(0, "p", {"change_mask": "file:///nowhere/change_mask.tif"}, {}, {}, None)
    z = runs.zones_for(old)
    assert z["zones"] == [] and "no zone statistics were stored" in z["source"]
    with pytest.raises(NotFound, match="no histogram was stored"):
        runs.histogram_for(old)


def test_the_web_app_imports_no_processing_service() -> None:
    import subprocess
    import sys

    code = (
        "import sys, candela_review.plugin, candela_ogc.plugin\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'candela_changedetect',"
        " 'candela_search', 'candela_preprocess', 'candela_mosaic', 'candela_rdf_etl', 'tensorflow',"
        " 'rdflib', 'pyshacl'})\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_landcover_of_a_fusion_run_on_the_review_page(tmp_path: Path, pg_server: str) -> None:
    """A run whose only output is a fuse_landcover map (one date, no change pair): the page
    shows the map with its legend and the per-pixel source, and serves its assets."""
    import uuid

    import psycopg
    from fastapi.testclient import TestClient

    from candela import pipeline
    from candela.db import migrate
    from candela.runs import output_key
    from candela.settings import Settings
    from candela_fusion.service import SERVICE as FUSION
    from candela_review.app import create_app

    home = tmp_path / "home"
    storage = home / "storage"
    storage.mkdir(parents=True)
    settings = Settings(home=home, storage_root=storage.as_uri())
    params = {**PARAMS, "collection": "sentinel-2-l2a"}
    key = output_key(DAG, params)
    run_id = "manual__fusion"
    prefix = pipeline.output_prefix(settings, DAG, key, run_id)
    chip = REPO / "data" / "fusion" / "sen1floods11"
    optical = str(chip / "Spain_7370579_S2Hand.tif")
    _service_run(
        FUSION,
        ["--optical", optical, "--radar", str(chip / "Spain_7370579_S1Hand.tif"),
         "--output", f"{prefix}/landcover/chip", "--tile", "256"],
    )  # fmt: skip
    name = "t_fusion_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    dsn = pg_server.replace("/postgres?", f"/{name}?")
    migrate(dsn)
    summary = pipeline.publish(settings, DAG, run_id, key, params, [{"output": optical}], [], dsn)
    assert summary["results"] == [] and len(summary["landcover"]) == 1
    app = create_app(settings, dsn, auth=allow_all)
    with TestClient(mounted(app)) as c:
        html = c.get(run_path(run_id), headers={"accept": "text/html"}).text
        assert "Land cover" in html and "Sentinel-1 + Sentinel-2" in html
        assert "water" in html and "CORINE 5" in html  # the legend from the class table
        png = c.get(f"{run_path(run_id)}/landcover/0/quicklook")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert c.get(f"{run_path(run_id)}/landcover/0/source").status_code == 200
        assert c.get(f"{run_path(run_id)}/landcover/0/nope").status_code == 404
        assert c.get(f"{run_path(run_id)}/landcover/3/quicklook").status_code == 404


def test_titiler_point_statistics_tilejson_and_tileset(client: Any, world: dict[str, Any]) -> None:
    """titiler-core's endpoints on the result's layers: the values the pixel inspector shows,
    the statistics of a drawn area, TileJSON and the OGC tileset; only datasets recorded with
    the run."""
    base = f"/candela/cog/{DAG}/{quote(RUN, safe='')}/0"
    lon, lat = -0.58, 44.84  # inside the Bordeaux result
    p = client.get(f"{base}/probability/point/{lon},{lat}")
    assert p.status_code == 200, p.text
    (value,) = p.json()["values"]
    assert 0.0 <= value <= 1.0
    after = client.get(f"{base}/after/point/{lon},{lat}").json()
    assert len(after["values"]) == 10  # the 10 bands of the after stack
    tj = client.get(f"{base}/probability/WebMercatorQuad/tilejson.json").json()
    assert tj["tiles"][0].startswith("http://testserver/candela/cog/") and "{z}" in tj["tiles"][0]
    assert -0.7 < tj["bounds"][0] < -0.5
    # titiler-core 2 serves OGC API - Tiles tilesets, titiler-extensions the WMTS capabilities
    tileset = client.get(f"{base}/after/tiles/WebMercatorQuad")
    assert tileset.status_code == 200 and tileset.json()["crs"], tileset.text[:300]
    _check_wmts(client, f"{base}/probability", lon, lat)
    import math

    z = 14  # the tile under (lon, lat)
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    tile = client.get(tj["tiles"][0].removeprefix("http://testserver").format(z=z, x=x, y=y))
    assert tile.status_code == 200 and tile.headers["content-type"].startswith("image/")
    area = {
        "type": "Feature",
        "properties": {},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[-0.59, 44.83], [-0.57, 44.83], [-0.57, 44.85], [-0.59, 44.85],
                             [-0.59, 44.83]]],
        },
    }  # fmt: skip
    st = client.post(f"{base}/probability/statistics", json=area)
    assert st.status_code == 200, st.text
    stats = st.json()["properties"]["statistics"]["b1"]
    assert 0.0 <= stats["min"] <= stats["mean"] <= stats["max"] <= 1.0 and stats["count"] > 100
    assert client.get(f"{base}/nolayer/point/{lon},{lat}").status_code == 404
    assert client.get(f"/candela/cog/{DAG}/no_such_run/0/mask/info").status_code == 404
    assert client.get(f"{base}/mask/point/10.0,10.0").status_code in (400, 404)  # outside


def _check_wmts(client: Any, base: str, lon: float, lat: float) -> None:
    """The WMTS capabilities of a layer: an OGC WMTS 1.0 document whose layer, named after the
    file (not its storage path), covers the result and whose tile template answers a tile."""
    import xml.etree.ElementTree as ET

    r = client.get(f"{base}/WMTSCapabilities.xml", params={"rescale": "0,1"})
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("application/xml")
    ns = {"w": "http://www.opengis.net/wmts/1.0", "ows": "http://www.opengis.net/ows/1.1"}
    doc = ET.fromstring(r.content)
    layer = doc.find(
        "w:Contents/w:Layer[ows:Identifier='change_probability_WebMercatorQuad_default']", ns
    )
    assert layer is not None, [e.text for e in doc.iterfind(".//w:Layer/ows:Identifier", ns)]
    assert "/storage/" not in r.text and str(REPO) not in r.text  # no server path leaks
    lower = [float(v) for v in layer.find("ows:WGS84BoundingBox/ows:LowerCorner", ns).text.split()]
    upper = [float(v) for v in layer.find("ows:WGS84BoundingBox/ows:UpperCorner", ns).text.split()]
    assert lower[0] < lon < upper[0] and lower[1] < lat < upper[1], (lower, upper)
    template = layer.find("w:ResourceURL", ns).get("template")
    assert template.startswith("http://testserver/candela/cog/") and "rescale=0" in template
    import math

    z = 13
    x = int((lon + 180) / 360 * 2**z)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * 2**z)
    url = template.replace("{TileMatrix}", str(z)).replace("{TileCol}", str(x))
    tile = client.get(url.replace("{TileRow}", str(y)).removeprefix("http://testserver"))
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/png"


@pytest.mark.slow
def test_an_analyst_judges_the_change_in_a_browser(world: dict[str, Any]) -> None:
    """Headless Chromium (Debian chromium, Playwright), offline (the OpenStreetMap basemap is
    unreachable): the page works; coordinates, the values of a pixel, the threshold slider (mask
    and changed area), the swipe, a permalink that restores the view, and the change polygons
    downloaded as GeoPackage and opened with GDAL/OGR. Screenshots in $CANDELA_TEST_ARTIFACTS."""
    import os

    import uvicorn

    from candela_review.app import create_app

    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip(f"{chromium} not installed (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("CANDELA_TEST_ARTIFACTS") or world["home"]) / "review-map"
    shots.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    app = mounted(create_app(world["settings"], world["dsn"], auth=allow_all))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    url = f"http://127.0.0.1:{port}{run_path()}"
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
                viewport={"width": 1400, "height": 950}, accept_downloads=True
            )
            page = ctx.new_page()
            errors: list[str] = []
            blocked: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            tiles: list[tuple[str, int]] = []  # the map's tiles (titiler's)
            page.on(
                "response",
                lambda r: (
                    tiles.append((r.url, r.status)) if "/tiles/WebMercatorQuad/" in r.url else None
                ),
            )

            def offline(route: Any) -> None:  # no network here: the basemap cannot load
                blocked.append(route.request.url)
                route.abort()

            page.route("https://**/*", offline)
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            page.wait_for_function("document.getElementById('threshold-area').dataset.ha")
            assert "covers" in page.inner_text("#coverage")
            # coordinates under the mouse, values of a pixel on click (titiler point)
            box = page.locator("#map").bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(cx, cy)
            assert page.inner_text("#coords").startswith("lat 44.")
            page.mouse.click(cx, cy)
            page.wait_for_selector("#pixel-values")
            rows = page.locator("#pixel-values tr").all_inner_texts()
            assert [r.split("\t")[0] for r in rows] == ["probability", "before", "after"]
            assert all(any(ch.isdigit() for ch in r.split("\t")[1]) for r in rows), rows
            page.screenshot(path=str(shots / "pixel.png"))
            page.keyboard.press("Escape")
            # the threshold slider: a lower threshold flags more area, the mask follows
            area_at = {}
            for t in ("0.9", "0.3"):
                page.fill("#threshold", t)
                page.dispatch_event("#threshold", "input")
                area_at[t] = float(page.get_attribute("#threshold-area", "data-ha"))
            assert area_at["0.3"] > area_at["0.9"] >= 0
            page.wait_for_function(
                "[...document.querySelectorAll('#map img.leaflet-tile')]"
                ".some((i) => i.src.includes(encodeURIComponent('{\"threshold\":0.3}'))"
                " && i.complete)"
            )
            # swipe: the after pane is clipped at the slider
            page.fill("#swipe", "50")
            page.dispatch_event("#swipe", "input")
            clip = page.evaluate("window.candelaMap.getPane('afterPane').style.clip")
            assert clip.startswith("rect("), clip
            page.wait_for_timeout(500)
            page.screenshot(path=str(shots / "swipe-threshold.png"))
            # only tiles over the result are asked for, and titiler draws each of them
            # (at the fractional zooms of the page too: 13.25 has no tiles)
            bad = [(url[-200:], status) for url, status in tiles if status != 200]
            assert tiles and not bad, bad
            # statistics of a drawn polygon (titiler POST statistics): click corners, double-click
            page.click("#draw-area")
            for dx, dy in ((-40, -40), (40, -40), (40, 40)):
                page.mouse.click(cx + dx, cy + dy)
            page.mouse.dblclick(cx - 40, cy + 40)
            page.wait_for_function(
                "(() => { const e = document.getElementById('area-stats');"
                " return e.dataset.mean || /unavailable|needs/.test(e.textContent); })()"
            )
            assert "mean probability" in page.inner_text("#area-stats"), page.inner_text(
                "#area-stats"
            )
            # permalink: reopening it restores zoom, centre, threshold and swipe
            page.evaluate("window.candelaMap.setZoom(15)")
            page.wait_for_timeout(400)
            link = page.get_attribute("#permalink", "href")
            assert link and link.startswith("#15.00/") and "/0.3/50" in link, link
            page.goto("about:blank")
            page.goto(url + link)
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            assert page.evaluate("window.candelaMap.getZoom()") == 15
            assert page.input_value("#threshold") == "0.3"
            # the change polygons as a GeoPackage, opened with a GIS library
            with page.expect_download() as dl:
                page.click("a[href$='/change_polygons_gpkg']")
            path = world["home"] / "from-browser.gpkg"
            dl.value.save_as(path)
            import pyogrio

            info = pyogrio.read_info(path)
            assert info["features"] > 0 and info["crs"] == "EPSG:4326"
            assert errors == [], errors
            assert blocked and all("openstreetmap" in u for u in blocked), blocked[:3]
            browser.close()
    finally:
        server.should_exit = True
        th.join(10)


def test_two_users_see_only_the_workflows_airflow_lets_them_read(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review app asks Airflow's REST API as its caller which DAGs they may read (Airflow's
    auth manager applies the per-DAG permissions there): alice may read the workflow, bob may
    not. Airflow is a stand-in here (httpx MockTransport) answering each token as a real one
    would: the list of DAGs the token may read."""
    import httpx
    from fastapi.testclient import TestClient

    from candela.airflow_api import AirflowClient
    from candela_review import web
    from candela_review.app import create_app

    readable = {"alice": [DAG], "bob": ["some_other_dag"]}
    asked: list[str] = []

    def airflow(request: httpx.Request) -> httpx.Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        asked.append(f"{token} {request.url.path}")
        if request.url.path == "/api/v2/dags":
            dags = [{"dag_id": d} for d in readable[token]]
            return httpx.Response(200, json={"dags": dags, "total_entries": len(dags)})
        return httpx.Response(404, json={"detail": "not found"})

    def client_as_caller(self: Any) -> Any:
        token = web._CALLER_TOKEN.get()
        if not token:
            return None
        return AirflowClient("http://af", token=token, transport=httpx.MockTransport(airflow))

    monkeypatch.setattr(web.Context, "airflow", client_as_caller)
    app = create_app(world["settings"], world["dsn"], auth=allow_all)
    with TestClient(mounted(app)) as c:

        def as_(user: str, path: str, **kw: Any) -> Any:
            return c.get(path, headers={"authorization": f"Bearer {user}", **kw})

        html = {"accept": "text/html"}
        assert RUN in as_("alice", "/candela/", **html).text
        assert RUN not in as_("bob", "/candela/", **html).text
        assert as_("alice", run_path(), **html).status_code == 200
        assert as_("bob", run_path(), **html).status_code == 404
        assert as_("bob", f"{run_path()}/run.json").status_code == 404
        assert (
            as_(
                "bob",
                f"/candela/cog/{DAG}/{quote(RUN, safe='')}/0/mask"
                "/tiles/WebMercatorQuad/14/8165/5890.png",
            ).status_code
            == 404
        )
        assert as_("alice", "/candela/stac/search").json()["numberMatched"] >= 1
        assert as_("bob", "/candela/stac/search").json()["numberMatched"] == 0
        assert as_("bob", "/candela/stac/collections").json()["collections"] == []
        assert as_("bob", f"/candela/stac/collections/{DAG}").status_code == 404
    assert any(a.startswith("bob /api/v2/dags") for a in asked)


def test_compare_with_preselects_the_run(client: Any) -> None:
    """The review page's "compare with…" opens the list with that run as A and another as B."""
    import re as _re

    refs = _re.findall(r'name="a" value="([^"]+)"', client.get("/candela/").text)
    assert len(refs) >= 2
    target = refs[-1]  # not the default choice
    html = client.get("/candela/", params={"compare": target}).text
    checked_a = _re.findall(r'name="a" value="([^"]+)" checked', html)
    checked_b = _re.findall(r'name="b" value="([^"]+)" checked', html)
    assert checked_a == [target] and len(checked_b) == 1 and checked_b[0] != target


def test_docs_page_works_offline(client: Any) -> None:
    page = client.get("/candela/docs")
    assert page.status_code == 200 and "/stac/search" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text


def test_quality_report_of_each_stack_is_linked(client: Any) -> None:
    page = client.get(run_path(), headers={"accept": "text/html"}).text
    assert "/stacks/0/quality/index.html" in page
    r = client.get(f"{run_path()}/stacks/0/quality/index.html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "expectations met" in r.text
    assert client.get(f"{run_path()}/stacks/0/quality/checks.json").json()["passed"] is True
    for bad in ("..%2F..%2Frun.json", "../run.json", "a/../../x", "%2Fetc%2Fpasswd"):
        assert client.get(f"{run_path()}/stacks/0/quality/{bad}").status_code == 404, bad


# --- STAC API conformance (stac-api-validator) -------------------------------------------------


def test_stac_api_validator_core_collections_features_item_search(
    world: dict[str, Any],
) -> None:
    """stac-api-validator (the STAC community's conformance checker) against the served API."""
    import uvicorn

    from candela_review.app import create_app

    port = _free_port()
    app = mounted(create_app(world["settings"], world["dsn"], auth=allow_all))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        with _copies(world) as item:  # three items: paging is checked too
            root = f"http://127.0.0.1:{port}/candela/stac/"
            real, offline = stac_conformance.validate(root, DAG, item)
    finally:
        server.should_exit = True
        th.join(10)
    print(f"{len(real) + len(offline)} error(s), {len(offline)} offline-only schema fetches:")
    print("\n".join(m[:240] for m in offline))
    assert not real, "\n".join(real)
