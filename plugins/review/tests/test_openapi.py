"""The review app's OpenAPI document: self-contained, and it lists the errors the routes answer
with (their ``{code, description}`` JSON, or an error page to a browser)."""

from __future__ import annotations

import inspect
import re
from typing import Any

import pytest

from tests.openapi_checks import assert_self_contained, documented, operations

JSON_OR_PAGE = {"application/json", "text/html"}


@pytest.fixture(scope="module")
def app() -> Any:
    from candela.settings import Settings
    from candela_review.app import create_app

    # the document needs no database: the DSN is never used here
    return create_app(Settings(), "postgresql://nobody@127.0.0.1:9/none", auth=lambda: "t")


@pytest.fixture(scope="module")
def doc(app: Any) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    r = TestClient(app).get("/openapi.json", headers={"accept": "application/vnd.oai.openapi+json"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.oai.openapi+json;version=3.1"
    return r.json()  # type: ignore[no-any-return]


def test_document_is_self_contained(doc: dict[str, Any]) -> None:
    assert_self_contained(doc)


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/runs/{dag_id}/{run_id}", "get", 404),  # unknown run
        ("/runs/{dag_id}/{run_id}/report", "get", 404),
        ("/runs/{dag_id}/{run_id}/zones", "get", 404),
        ("/runs/{dag_id}/{run_id}/download/{item_id}/{asset}", "get", 404),
        ("/stac/search", "get", 400),  # bad bbox, datetime, limit…
        ("/stac/search", "post", 400),
        ("/stac/collections/{cid}/items", "get", 400),
        ("/stac/collections/{cid}", "get", 404),
        ("/compare", "get", 400),
        (
            "/cog/{dag_id}/{run_id}/{result}/{layer}/tiles/{tileMatrixSetId}/{z}/{x}/{y}.{format}",
            "get",
            422,
        ),  # the map's tiles (titiler)
        ("/new/products", "get", 400),
        ("/stac/collections", "get", 503),  # the results database is down
        ("/stac/search", "get", 401),
    ],
)
def test_known_error_answers_are_documented(
    doc: dict[str, Any], path: str, method: str, status: int
) -> None:
    assert documented(doc, path, method, status) >= {"application/json"}


def test_png_routes_document_their_content_type(doc: dict[str, Any]) -> None:
    tile = "/cog/{dag_id}/{run_id}/{result}/{layer}/tiles/{tileMatrixSetId}/{z}/{x}/{y}.{format}"
    assert "image/png" in documented(doc, tile, "get", 200)
    assert "image/png" in documented(doc, "/legend/{layer}.png", "get", 200)


RAISES = {"BadRequest": 400, "NotFound": 404, "Unprocessable": 422, "Unavailable": 503}


def test_each_route_documents_the_errors_its_handler_raises(app: Any, doc: dict[str, Any]) -> None:
    """Walk the routes: a ``raise BadRequest/NotFound/…`` in a handler (or a run looked up with
    ``ctx.published``) must be among the statuses its operation documents, as JSON or a page."""
    from fastapi.routing import APIRoute

    checked = 0
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        source = inspect.getsource(route.endpoint)
        statuses = {RAISES[n] for n in re.findall(r"raise (\w+)\(", source) if n in RAISES}
        if "ctx.published(" in source:  # an unknown run, or one the caller may not read
            statuses.add(404)
        for method in route.methods:
            op = doc["paths"][route.path_format][method.lower()]
            for status in statuses | {401, 503}:
                assert str(status) in op["responses"], (route.path_format, method, status)
                content = set(op["responses"][str(status)].get("content", {}))
                assert content >= {"application/json"}, (route.path_format, status, content)
            checked += 1
    assert checked > 20


def test_errors_all_have_the_error_body(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")) and status != "422":
                content = response.get("content", {})
                assert set(content) >= {"application/json"}, (path, method, status)
                if set(content) == JSON_OR_PAGE:
                    schema = content["application/json"]["schema"]
                    assert schema["required"] == ["code", "description"], (path, status)
