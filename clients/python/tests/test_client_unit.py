"""The SDK without a platform: configuration, the poll loop's backoff, the progress bar of a
run, login renewal and errors (an httpx mock transport plays the platform), windowed reads.
The same calls against the real embedded platform: tests/test_client_platform.py."""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from tqdm import tqdm

from candela_client import CandelaError, Client, S3Config, poll_with_backoff, read
from candela_client.config import ClientConfig
from candela_client.rasters import RasterError, gdal_path, open_dataarray

PACKAGE = Path(__file__).resolve().parents[1]


def test_installable_alone_without_the_platform() -> None:
    meta = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    names = {d.split("[")[0].split(">")[0].split("=")[0].strip() for d in meta["dependencies"]}
    extras = {
        d.split("[")[0].split(">")[0].strip()
        for ds in meta["optional-dependencies"].values()
        for d in ds
    }
    assert names == {"httpx", "rasterio", "numpy", "tqdm"}
    assert extras == {"xarray", "rioxarray"}
    assert not {n for n in names | extras if n.startswith(("candela", "apache-airflow", "tensor"))}


def test_config_from_env() -> None:
    cfg = ClientConfig.from_env(
        {
            "CANDELA_URL": "http://h:9/",
            "CANDELA_USERNAME": "u",
            "CANDELA_PASSWORD": "p",
            "CANDELA_S3_ENDPOINT_URL": "https://s3.example:8333",
            "CANDELA_S3_ACCESS_KEY_ID": "k",
            "CANDELA_S3_SECRET_ACCESS_KEY": "s",
        }
    )
    assert cfg.url == "http://h:9" and cfg.username == "u" and cfg.token is None
    assert cfg.s3 is not None
    opts = cfg.s3.gdal_options()
    assert opts["AWS_S3_ENDPOINT"] == "s3.example:8333" and opts["AWS_HTTPS"] == "YES"
    assert opts["AWS_ACCESS_KEY_ID"] == "k" and opts["AWS_VIRTUAL_HOSTING"] == "FALSE"
    assert ClientConfig.from_env({}).s3 is None
    assert ClientConfig.from_env({}).url == "http://localhost:8080"
    assert S3Config(endpoint_url="http://x:1").gdal_options()["AWS_NO_SIGN_REQUEST"] == "YES"
    with pytest.raises(ValueError, match="not a URL"):
        S3Config(endpoint_url="x:1").gdal_options()


def test_storage_uris() -> None:
    assert gdal_path("s3://candela/results/a.tif") == "/vsis3/candela/results/a.tif"
    assert gdal_path("file:///tmp/a%20b.tif") == "/tmp/a b.tif"
    with pytest.raises(RasterError, match="HTTP download link"):
        gdal_path("http://localhost:8080/candela/runs/x/y/download/i/change_mask")
    with pytest.raises(RasterError, match="s3://bucket/key"):
        gdal_path("s3://candela")
    with pytest.raises(RasterError, match="unsupported URI scheme 'ftp'"):
        gdal_path("ftp://x/y.tif")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s

    def clock(self) -> float:
        return self.now


class Blip(Exception):
    pass


def test_backoff_doubles_on_transient_errors_and_resets_after_an_answer() -> None:
    t = FakeClock()
    answers: list[Any] = [Blip(), Blip(), Blip(), "running", Blip(), "success"]

    def step() -> str:
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return str(a)

    out = poll_with_backoff(
        step,
        lambda v: v == "success",
        poll=1,
        max_backoff=3,
        transient=lambda e: isinstance(e, Blip),
        sleep=t.sleep,
        clock=t.clock,
    )
    assert out == "success"
    assert t.sleeps == [1, 2, 3, 1, 1]  # 1, 2, capped at 3; an answer resets to the poll


def test_backoff_gives_up_on_other_errors_and_after_the_timeout() -> None:
    t = FakeClock()

    def refused() -> str:
        raise KeyError("403")

    with pytest.raises(KeyError):
        poll_with_backoff(refused, bool, transient=lambda e: False, sleep=t.sleep, clock=t.clock)
    assert t.sleeps == []

    def down() -> str:
        raise Blip()

    with pytest.raises(Blip):
        poll_with_backoff(
            down, bool, poll=1, timeout=10, transient=lambda e: True, sleep=t.sleep, clock=t.clock
        )
    assert sum(t.sleeps) <= 10 and t.sleeps[:3] == [1, 2, 4]

    with pytest.raises(TimeoutError):
        poll_with_backoff(lambda: "running", lambda v: False, poll=1, timeout=3, sleep=t.sleep)


class FakePlatform:
    """An Airflow-like API for one run: a login, the run's states one poll after another (503
    answers in between), task instances appearing as mapped steps expand."""

    def __init__(self, states: list[tuple[int, str, dict[str, str]]]) -> None:
        self.states = states  # (HTTP status, run state, task -> state)
        self.logins = 0
        self.tokens: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/auth/token":
            self.logins += 1
            body = json.loads(request.content)
            if body["password"] != "pw":
                return httpx.Response(401, json={"detail": "Invalid credentials"})
            return httpx.Response(201, json={"access_token": f"t{self.logins}"})
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.tokens.append(token)
        if token == "expired":
            return httpx.Response(401, json={"detail": "token expired"})
        if path.endswith("/dagRuns/r1"):
            status, state, _ = self.states[0]
            if status != 200:
                self.states.pop(0)
                return httpx.Response(status, text="busy")
            return httpx.Response(200, json={"dag_run_id": "r1", "state": state, "conf": {}})
        if path.endswith("/dagRuns/r1/taskInstances"):
            _, state, tasks = self.states.pop(0)
            tis = []
            for key, st in tasks.items():
                task, _, idx = key.partition("[")
                tis.append(
                    {"task_id": task, "map_index": int(idx[:-1]) if idx else -1, "state": st}
                )
            return httpx.Response(200, json={"task_instances": tis})
        if path == "/api/v2/dags/s2_change_detection/dagRuns" and request.method == "POST":
            return httpx.Response(400, json={"detail": "model: unknown change model 'magic'"})
        return httpx.Response(404, json={"detail": "no such path"})


def test_follow_draws_steps_done_out_of_steps_known_through_503s() -> None:
    fake = FakePlatform(
        [
            (200, "queued", {"plan_run": "queued"}),
            (503, "", {}),
            (200, "running", {"plan_run": "success", "preprocess[0]": "running"}),
            (502, "", {}),
            (
                200,
                "running",
                {"plan_run": "success", "preprocess[0]": "success", "preprocess[1]": "running"},
            ),
            (
                200,
                "success",
                {
                    "plan_run": "success",
                    "preprocess[0]": "success",
                    "preprocess[1]": "success",
                    "publish": "skipped",
                },
            ),
        ]
    )
    out = io.StringIO()
    seen: list[tuple[float, float | None]] = []

    class Bar(tqdm):  # type: ignore[type-arg]
        def refresh(self, *a: Any, **k: Any) -> Any:
            seen.append((self.n, self.total))
            return super().refresh(*a, **k)

    bar = Bar(total=0, file=out, desc="r1")
    c = Client("http://fake", username="admin", password="pw", transport=httpx.MockTransport(fake))
    final = c.follow("r1", progress=bar, poll=0.01, max_backoff=0.02)
    assert final.state == "success" and final.tasks["preprocess[1]"] == "success"
    changes = [x for i, x in enumerate(seen) if i == 0 or seen[i - 1] != x]
    assert changes == [(0, 0), (0, 1), (1, 2), (2, 3), (4, 4)]  # (0, 0): tqdm's own start
    assert "preprocess" in out.getvalue()  # the postfix names the running steps
    assert fake.logins == 1  # one login for every call


def test_login_is_renewed_once_and_errors_are_explained() -> None:
    fake = FakePlatform([(200, "running", {})])
    c = Client(
        "http://fake",
        username="admin",
        password="pw",
        transport=httpx.MockTransport(fake),
    )
    c._token = "expired"
    assert c.run("r1").state == "running"
    assert fake.tokens[:2] == ["expired", "t1"]
    with pytest.raises(CandelaError) as err:
        c.request("POST", "/api/v2/dags/s2_change_detection/dagRuns", json={})
    assert err.value.status == 400 and "unknown change model 'magic'" in str(err.value)
    assert not err.value.transient
    bad = Client(
        "http://fake", username="admin", password="no", transport=httpx.MockTransport(fake)
    )
    with pytest.raises(CandelaError, match="login as 'admin' refused"):
        bad.run("r1")
    nobody = Client("http://fake", token=None, transport=httpx.MockTransport(fake))
    nobody.username = nobody.password = nobody._token = None
    with pytest.raises(CandelaError, match="no credentials"):
        nobody.run("r1")


def test_unreachable_platform_is_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    c = Client("http://nowhere", token="t", transport=httpx.MockTransport(refuse))
    with pytest.raises(CandelaError) as err:
        c.run("r1")
    assert err.value.status is None and err.value.transient


@pytest.fixture
def cog(tmp_path: Path) -> Path:
    """A 2-band UTM raster of known values: value = 1000·band + 100·row + col."""
    path = tmp_path / "r.tif"
    rows, cols = 40, 50
    data = np.array(
        [[[1000 * b + 100 * r + c for c in range(cols)] for r in range(rows)] for b in (1, 2)],
        dtype="float32",
    )
    data[0, 0, 0] = -1
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=cols,
        height=rows,
        count=2,
        dtype="float32",
        crs="EPSG:32630",
        transform=from_origin(700000, 4970000, 10, 10),
        nodata=-1,
        tiled=True,
        blockxsize=16,
        blockysize=16,
    ) as ds:
        ds.write(data)
    return path


def test_windowed_read_by_bbox(cog: Path) -> None:
    # the UTM box x 700100..700200, y 4969800..4969900 = rows 10..19, cols 10..19
    from rasterio.warp import transform_bounds

    bbox = transform_bounds("EPSG:32630", "EPSG:4326", 700101, 4969801, 700199, 4969899)
    r = read(cog.as_uri(), bbox=bbox, bands=[2])
    assert r.shape[0] == 1 and 9 <= r.shape[1] <= 12 and 9 <= r.shape[2] <= 12
    row0 = round((4970000 - r.transform.f) / 10)
    col0 = round((r.transform.c - 700000) / 10)
    assert r.data[0, 0, 0] == 2000 + 100 * row0 + col0
    whole = read(str(cog))
    assert whole.shape == (2, 40, 50) and bool(np.ma.getmaskarray(whole.data)[0, 0, 0])
    with pytest.raises(RasterError, match="does not overlap"):
        read(str(cog), bbox=[10, 50, 10.1, 50.1])
    with pytest.raises(RasterError, match="no band"):
        read(str(cog), bands=[3])
    with pytest.raises(RasterError, match="no such file"):
        read(str(cog.with_name("missing.tif")))


def test_open_dataarray_keeps_the_georeferencing(cog: Path) -> None:
    da = open_dataarray(cog.as_uri())
    assert da.shape == (2, 40, 50) and str(da.rio.crs) == "EPSG:32630"
    assert float(da.x[0]) == 700005.0 and bool(np.isnan(da.values[0, 0, 0]))
    assert float(da.values[1, 3, 4]) == 2304


def test_search_follows_the_pages_of_a_post_search() -> None:
    """The results STAC API's POST paging: the next link carries the body with its token."""
    bodies: list[dict[str, Any]] = []

    def stac(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        start = int(str(body.get("token", "next:0")).split(":")[1])
        ids = [f"i{n}" for n in range(start, min(start + body["limit"], 5))]
        links = []
        if start + len(ids) < 5:
            links.append(
                {
                    "rel": "next",
                    "href": str(request.url),
                    "method": "POST",
                    "body": {**body, "token": f"next:{start + len(ids)}"},
                }
            )
        return httpx.Response(200, json={"features": [{"id": i} for i in ids], "links": links})

    c = Client("http://fake", token="t", transport=httpx.MockTransport(stac))
    found = c.search(bbox=[0, 0, 1, 1], collections=["s2_change_detection"], limit=2)
    assert [i["id"] for i in found] == ["i0", "i1", "i2", "i3", "i4"]
    assert [b.get("token") for b in bodies] == [None, "next:2", "next:4"]
    assert all(b["bbox"] == [0.0, 0.0, 1.0, 1.0] for b in bodies)
    assert len(c.search(limit=2, max_items=3)) == 3
