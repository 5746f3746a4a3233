"""The remote providers (``stac``, ``cdse``) against a local HTTP server on loopback.

The server answers what the providers' published API documentation describes: a STAC API
landing page (``conformsTo`` with item-search, a ``search`` link) and ``/search`` returning an
ItemCollection whose ``next`` link (POST, with a ``body``) leads to the next page; the CDSE OData
``/Products`` endpoint returning ``{"value": [...], "@odata.nextLink": ...}`` with ``S3Path``,
``GeoFootprint``, ``ContentDate`` and ``Attributes``. Product names, ids and values are invented
but follow the real patterns. Errors, throttling (429 with and without ``Retry-After``) and
timeouts are scripted per test.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from candela_sdk.errors import ServiceFailure
from candela_search import search
from candela_search.providers import remote

Handler = Callable[[str, str, dict[str, Any], bytes], tuple[int, dict[str, str], Any]]


class FakeApi:
    """A tiny HTTP server on 127.0.0.1; ``routes`` answer (status, headers, JSON body)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.handler: Handler = lambda *a: (404, {}, {"error": "no route"})
        api = self

        class _H(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.requests.append((method, self.path, body))
                u = urlparse(self.path)
                status, headers, payload = api.handler(
                    method, u.path, {k: v[0] for k, v in parse_qs(u.query).items()}, body
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    monkeypatch.setattr(remote, "BACKOFF_S", 0.01)
    monkeypatch.setattr(remote, "TIMEOUT_S", 2.0)
    server = FakeApi()
    yield server
    server.close()


# --- STAC API -----------------------------------------------------------------------------


def _square(w: float, s: float, e: float, n: float) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def stac_item(base: str, item_id: str, when: str, cloud: float, tile: str, datatake: str) -> dict:
    """An item as Earth Search / CDSE STAC publish them (trimmed to the fields used)."""
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "id": item_id,
        "collection": "sentinel-2-l2a",
        "geometry": _square(-0.7, 44.7, 0.6, 45.7),
        "bbox": [-0.7, 44.7, 0.6, 45.7],
        "properties": {
            "datetime": when,
            "platform": "sentinel-2b",
            "eo:cloud_cover": cloud,
            "grid:code": f"MGRS-{tile}",
            "s2:datatake_id": datatake,
            "s2:processing_baseline": datatake[-5:],
        },
        "assets": {
            "B04": {"href": f"s3://eodata/x/{item_id}/B04_10m.jp2", "type": "image/jp2"},
        },
        "links": [{"rel": "self", "href": f"{base}/collections/sentinel-2-l2a/items/{item_id}"}],
    }


def stac_routes(api: FakeApi, pages: list[list[dict]]) -> Handler:
    def handle(method: str, path: str, q: dict[str, Any], body: bytes):
        if path in ("", "/"):
            return (
                200,
                {},
                {
                    "type": "Catalog",
                    "id": "fake",
                    "description": "fake STAC API",
                    "stac_version": "1.0.0",
                    "conformsTo": [
                        "https://api.stacspec.org/v1.0.0/core",
                        "https://api.stacspec.org/v1.0.0/item-search",
                    ],
                    "links": [
                        {"rel": "self", "href": api.url + "/"},
                        {"rel": "root", "href": api.url + "/"},
                        {
                            "rel": "search",
                            "href": api.url + "/search",
                            "method": "POST",
                            "type": "application/geo+json",
                        },
                    ],
                },
            )
        if path == "/search":
            req = json.loads(body or b"{}")
            page = int(req.get("token", "0"))
            links = []
            if page + 1 < len(pages):
                links.append(
                    {
                        "rel": "next",
                        "href": api.url + "/search",
                        "method": "POST",
                        "body": {**req, "token": str(page + 1)},
                        "merge": False,
                    }
                )
            return 200, {}, {"type": "FeatureCollection", "features": pages[page], "links": links}
        return 404, {}, {"code": "NotFound", "description": path}

    return handle


def _stac_pages(base: str) -> list[list[dict]]:
    return [
        [
            stac_item(
                base,
                "S2B_30TXQ_20230615_0_L2A",
                "2023-06-15T10:56:19Z",
                12.0,
                "30TXQ",
                "GS2B_20230615T105619_032712_N04.00",
            ),
            stac_item(
                base,
                "S2B_30TXQ_20230615_1_L2A",
                "2023-06-15T10:56:19Z",
                12.0,
                "30TXQ",
                "GS2B_20230615T105619_032712_N05.09",
            ),
        ],
        [
            stac_item(
                base,
                "S2A_30TXQ_20230620_0_L2A",
                "2023-06-20T10:56:21Z",
                80.0,
                "30TXQ",
                "GS2A_20230620T105621_041770_N05.09",
            ),
            stac_item(
                base,
                "S2A_30TYQ_20230620_0_L2A",
                "2023-06-20T10:56:21Z",
                5.0,
                "30TYQ",
                "GS2A_20230620T105621_041770_N05.09",
            ),
        ],
    ]


def test_stac_pages_filters_and_deduplicates(api: FakeApi) -> None:
    api.handler = stac_routes(api, _stac_pages(api.url))
    result = search(
        {
            "collection": "sentinel-2-l2a",
            "bbox": [-0.6, 44.8, -0.5, 44.9],
            "start": "2023-06-01",
            "end": "2023-06-30",
            "tile": "T30TXQ",
            "provider": "stac",
            "endpoint": api.url,
        }
    )
    # page 2 was fetched through the next link; T30TYQ left out; the older baseline dropped
    assert [r.id for r in result.records] == [
        "S2B_30TXQ_20230615_1_L2A",
        "S2A_30TXQ_20230620_0_L2A",
    ]
    assert result.duplicates == ["S2B_30TXQ_20230615_0_L2A"]
    searches = [json.loads(b) for m, p, b in api.requests if p == "/search"]
    assert len(searches) == 2 and searches[1]["token"] == "1"
    assert searches[0]["bbox"] == [-0.6, 44.8, -0.5, 44.9]
    assert searches[0]["collections"] == ["sentinel-2-l2a"]
    assert searches[0]["datetime"].startswith("2023-06-01T00:00:00Z/2023-07-01")
    cloudy = search(
        {
            "collection": "sentinel-2-l2a",
            "tile": "T30TXQ",
            "max_cloud": 50,
            "provider": "stac",
            "endpoint": api.url,
        }
    )
    assert [r.id for r in cloudy.records] == ["S2B_30TXQ_20230615_1_L2A"]


def test_stac_throttling_is_retried_then_succeeds(api: FakeApi) -> None:
    inner = stac_routes(api, _stac_pages(api.url))
    throttled = {"n": 0}

    def handle(method: str, path: str, q: dict, body: bytes):
        if path == "/search" and throttled["n"] < 2:
            throttled["n"] += 1
            return 429, {"Retry-After": "0"}, {"code": "TooManyRequests"}
        return inner(method, path, q, body)

    api.handler = handle
    result = search(
        {"collection": "sentinel-2-l2a", "tile": "T30TXQ", "provider": "stac", "endpoint": api.url}
    )
    assert result.count == 2 and throttled["n"] == 2


def test_stac_throttled_for_good_is_one_line(api: FakeApi) -> None:
    inner = stac_routes(api, _stac_pages(api.url))

    def handle(method: str, path: str, q: dict, body: bytes):
        if path == "/search":
            return 429, {}, {"code": "TooManyRequests"}
        return inner(method, path, q, body)

    api.handler = handle
    with pytest.raises(ServiceFailure, match=r"throttled \(HTTP 429\) after 4 attempts") as err:
        search({"collection": "sentinel-2-l2a", "provider": "stac", "endpoint": api.url})
    assert "\n" not in str(err.value)
    assert sum(1 for _, p, _ in api.requests if p == "/search") == remote.ATTEMPTS


def test_stac_error_and_timeout(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    inner = stac_routes(api, _stac_pages(api.url))

    def bad(method: str, path: str, q: dict, body: bytes):
        if path == "/search":
            return 400, {}, {"code": "BadRequest", "description": "unknown collection"}
        return inner(method, path, q, body)

    api.handler = bad
    with pytest.raises(ServiceFailure, match="HTTP 400") as err:
        search({"collection": "sentinel-2-l2a", "provider": "stac", "endpoint": api.url})
    assert "unknown collection" in str(err.value)

    monkeypatch.setattr(remote, "TIMEOUT_S", 0.3)

    def slow(method: str, path: str, q: dict, body: bytes):
        if path == "/search":
            time.sleep(1.0)
        return inner(method, path, q, body)

    api.handler = slow
    with pytest.raises(ServiceFailure, match="(no answer|after 4 attempts)"):
        search({"collection": "sentinel-2-l2a", "provider": "stac", "endpoint": api.url})


# --- CDSE OData --------------------------------------------------------------------------


def odata_product(name: str, start: str, cloud: float, footprint: dict) -> dict[str, Any]:
    """A product as the CDSE OData catalogue returns it with ``$expand=Attributes``."""
    day = start[:10].replace("-", "/")
    level = "L2A" if "MSIL2A" in name else "L1C"
    return {
        "@odata.mediaContentType": "application/octet-stream",
        "Id": f"a1b2c3d4-0000-4000-8000-{abs(hash(name)) % 10**12:012d}",
        "Name": name,
        "ContentType": "application/octet-stream",
        "ContentLength": 812345678,
        "OriginDate": start,
        "PublicationDate": start,
        "Online": True,
        "S3Path": f"/eodata/Sentinel-2/MSI/{level}/{day}/{name}",
        "ContentDate": {"Start": start, "End": start},
        "Footprint": "geography'SRID=4326;POLYGON ((...))'",
        "GeoFootprint": footprint,
        "Attributes": [
            {
                "@odata.type": "#OData.CSC.DoubleAttribute",
                "Name": "cloudCover",
                "Value": cloud,
                "ValueType": "Double",
            },
            {
                "@odata.type": "#OData.CSC.StringAttribute",
                "Name": "productType",
                "Value": "S2MSI2A",
                "ValueType": "String",
            },
            {
                "@odata.type": "#OData.CSC.StringAttribute",
                "Name": "tileId",
                "Value": name.split("_")[5][1:],
                "ValueType": "String",
            },
            {
                "@odata.type": "#OData.CSC.DoubleAttribute",
                "Name": "processingBaseline",
                "Value": int(name.split("_")[3][1:]) / 100,
                "ValueType": "Double",
            },
        ],
    }


def cdse_routes(api: FakeApi, pages: list[list[dict]]) -> Handler:
    def handle(method: str, path: str, q: dict[str, Any], body: bytes):
        if path != "/odata/v1/Products":
            return 404, {}, {"detail": "Not Found"}
        if "$filter" in q and "Collection/Name" not in q["$filter"]:
            return 400, {}, {"detail": {"message": "Invalid filter"}}
        page = int(q.get("$skip", "0")) // 2
        body_out: dict[str, Any] = {
            "@odata.context": "$metadata#Products(Attributes())",
            "value": pages[page],
        }
        if page + 1 < len(pages):
            body_out["@odata.nextLink"] = (
                f"{api.url}/odata/v1/Products?$filter=Collection/Name%20eq%20'SENTINEL-2'"
                f"&$top=2&$skip={(page + 1) * 2}&$expand=Attributes"
            )
        return 200, {}, body_out

    return handle


FP = _square(-0.7, 44.7, 0.6, 45.7)


def _cdse_pages() -> list[list[dict]]:
    return [
        [
            odata_product(
                "S2B_MSIL2A_20230615T105619_N0400_R094_T30TXQ_20230615T134512.SAFE",
                "2023-06-15T10:56:19.024Z",
                12.0,
                FP,
            ),
            odata_product(
                "S2B_MSIL2A_20230615T105619_N0509_R094_T30TXQ_20240102T101010.SAFE",
                "2023-06-15T10:56:19.024Z",
                12.0,
                FP,
            ),
        ],
        [
            odata_product(
                "S2A_MSIL2A_20230620T105621_N0509_R094_T30TXQ_20230620T170206.SAFE",
                "2023-06-20T10:56:21.024Z",
                30.0,
                _square(2.0, 44.7, 3.0, 45.7),
            ),
        ],
    ]


def test_cdse_pages_maps_to_eodata_and_deduplicates(api: FakeApi) -> None:
    api.handler = cdse_routes(api, _cdse_pages())
    result = search(
        {
            "collection": "sentinel-2-l2a",
            "bbox": [-0.6, 44.8, -0.5, 44.9],
            "start": "2023-06-01",
            "end": "2023-06-30",
            "max_cloud": 50,
            "tile": "T30TXQ",
            "provider": "cdse",
            "endpoint": api.url + "/odata/v1",
        }
    )
    # the second page came through @odata.nextLink; its product lies outside the AOI
    assert len(api.requests) == 2
    assert result.outside == ["S2A_MSIL2A_20230620T105621_N0509_R094_T30TXQ_20230620T170206"]
    assert [r.id for r in result.records] == [
        "S2B_MSIL2A_20230615T105619_N0509_R094_T30TXQ_20240102T101010"
    ]
    rec = result.records[0]
    assert rec.href == (
        "s3://eodata/Sentinel-2/MSI/L2A/2023/06/15/"
        "S2B_MSIL2A_20230615T105619_N0509_R094_T30TXQ_20240102T101010.SAFE"
    )
    assert rec.item["assets"]["product"]["href"] == rec.href
    assert rec.cloud_cover == 12.0 and rec.tile == "T30TXQ"
    assert rec.processing_baseline == "05.09"
    first = parse_qs(urlparse(api.requests[0][1]).query)
    flt = first["$filter"][0]
    for part in (
        "Collection/Name eq 'SENTINEL-2'",
        "Value eq 'S2MSI2A'",
        "ContentDate/Start ge 2023-06-01T00:00:00.000Z",
        "ContentDate/Start lt 2023-07-01T00:00:00.000Z",
        "Value le 50.00",
        "contains(Name,'_T30TXQ_')",
        "OData.CSC.Intersects(area=geography'SRID=4326;",
    ):
        assert part in flt, part
    assert first["$orderby"] == ["ContentDate/Start asc"]


def test_cdse_throttling_then_one_line(api: FakeApi) -> None:
    inner = cdse_routes(api, _cdse_pages())
    calls = {"n": 0}

    def flaky(method: str, path: str, q: dict, body: bytes):
        calls["n"] += 1
        if calls["n"] <= 2:
            return 429, {"Retry-After": "0"}, {"detail": "Too Many Requests"}
        return inner(method, path, q, body)

    api.handler = flaky
    result = search(
        {"collection": "sentinel-2-l2a", "provider": "cdse", "endpoint": api.url + "/odata/v1"}
    )
    assert result.count == 2

    api.handler = lambda *a: (429, {}, {"detail": "Too Many Requests"})
    api.requests.clear()
    with pytest.raises(ServiceFailure, match=r"throttled \(HTTP 429\) after 4 attempts") as err:
        search(
            {"collection": "sentinel-2-l2a", "provider": "cdse", "endpoint": api.url + "/odata/v1"}
        )
    assert "\n" not in str(err.value)
    assert len(api.requests) == remote.ATTEMPTS


def test_cdse_error_and_timeout(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    api.handler = lambda *a: (400, {}, {"detail": {"message": "Invalid filter"}})
    with pytest.raises(ServiceFailure, match="HTTP 400 .*Invalid filter"):
        search(
            {"collection": "sentinel-2-l2a", "provider": "cdse", "endpoint": api.url + "/odata/v1"}
        )
    monkeypatch.setattr(remote, "TIMEOUT_S", 0.2)
    inner = cdse_routes(api, _cdse_pages())

    def slow(method: str, path: str, q: dict, body: bytes):
        time.sleep(0.6)
        return inner(method, path, q, body)

    api.handler = slow
    with pytest.raises(ServiceFailure, match=r"no answer within 0.2 s after 4 attempts"):
        search(
            {"collection": "sentinel-2-l2a", "provider": "cdse", "endpoint": api.url + "/odata/v1"}
        )


def test_cli_provider_unreachable_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from candela_search.cli import run

    code = run(
        [
            "--collection",
            "sentinel-2-l2a",
            "--provider",
            "cdse",
            "--endpoint",
            "http://127.0.0.1:9/odata/v1",
        ]
    )
    out = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in out.out
    # no traceback of ours on stderr (a fake server thread of an earlier test may still print
    # its own there: http.server reports a client that hung up; that is not this CLI's output)
    assert "candela_search/" not in out.err and "candela_sdk/" not in out.err, out.err
    assert "cannot reach" in out.out
