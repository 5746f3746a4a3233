"""The one Airflow client: the sync and async clients send the same requests and read the same
answers (``httpx.MockTransport``: no Airflow needed)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from candela.airflow_api import (
    AirflowApiError,
    AirflowClient,
    AsyncAirflowClient,
    Calls,
    log_text,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

DAG = "s2_change_detection"
RUN = "manual__2026-01-01T00:00:00+00:00"


def _record(seen: list[tuple[str, str, str, str]]) -> Any:
    """A handler answering like Airflow, recording (method, url, auth, body) of each request."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(
            (
                request.method,
                str(request.url),
                request.headers.get("authorization", ""),
                request.content.decode(),
            )
        )
        path = request.url.path
        if path == "/auth/token":
            return httpx.Response(201, json={"access_token": "jwt-1"})
        if path.endswith("/missing"):
            return httpx.Response(404, json={"detail": "DAG not found"})
        if path.endswith("/dagRuns") and request.method == "POST":
            if json.loads(request.content)["conf"].get("bad"):
                return httpx.Response(
                    400, json={"detail": [{"loc": ["body", "conf"], "msg": "bad param"}]}
                )
            return httpx.Response(200, json={"dag_run_id": RUN, "state": "queued"})
        if path.endswith("/tasks"):
            return httpx.Response(
                200, json={"tasks": [{"task_id": "a", "downstream_task_ids": []}]}
            )
        if path.endswith("/taskInstances"):
            return httpx.Response(200, json={"task_instances": [{"task_id": "a"}]})
        if "/logs/" in path:
            return httpx.Response(200, json={"content": [{"event": "hello"}]})
        if path.endswith("/xcomEntries/return_value"):
            return httpx.Response(200, json={"value": {"summary": "s3://x/run.json"}})
        if path == "/api/v2/dags":
            return httpx.Response(200, json={"dags": [{"dag_id": DAG}]})
        if path.endswith("/boom"):
            return httpx.Response(500, text="internal")
        return httpx.Response(200, json={"dag_id": DAG, "state": "running"})

    return handler


CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("get_dag", (DAG,)),
    ("get_dag", ("missing",)),
    ("dag_details", (DAG,)),
    ("dags", (1000, True)),
    ("unpause", (DAG,)),
    ("trigger", (DAG, {"model": "cva"})),
    ("run", (DAG, RUN)),
    ("runs", (10,)),
    ("task_instances", (DAG, RUN)),
    ("xcom", (DAG, RUN, "publish")),
    ("task_log_entries", (DAG, RUN, "preprocess", 2, 3)),
    ("tasks", (DAG,)),
]


def test_sync_and_async_send_the_same_requests_and_read_the_same_answers() -> None:
    sync_seen: list[tuple[str, str, str, str]] = []
    async_seen: list[tuple[str, str, str, str]] = []
    with AirflowClient(
        "http://af:8080/", "admin", "pw", transport=httpx.MockTransport(_record(sync_seen))
    ) as c:
        sync_answers = [getattr(c, name)(*args) for name, args in CALLS]

    async def run_async() -> list[Any]:
        transport = httpx.MockTransport(_record(async_seen))
        async with AsyncAirflowClient("http://af:8080", "admin", "pw", transport=transport) as c:
            return [await getattr(c, name)(*args) for name, args in CALLS]

    async_answers = asyncio.run(run_async())
    assert sync_seen == async_seen
    assert sync_answers == async_answers
    # one login, then the token on every call
    assert sync_seen[0][:2] == ("POST", "http://af:8080/auth/token")
    assert json.loads(sync_seen[0][3]) == {"username": "admin", "password": "pw"}
    assert len([s for s in sync_seen if s[1].endswith("/auth/token")]) == 1
    assert all(s[2] == "Bearer jwt-1" for s in sync_seen[1:])
    urls = [s[1] for s in sync_seen[1:]]
    q = "manual__2026-01-01T00%3A00%3A00%2B00%3A00"  # the run id, fully escaped
    assert urls[5] == f"http://af:8080/api/v2/dags/{DAG}/dagRuns"
    assert json.loads(sync_seen[6][3]) == {"logical_date": None, "conf": {"model": "cva"}}
    assert urls[6] == f"http://af:8080/api/v2/dags/{DAG}/dagRuns/{q}"
    assert urls[7] == "http://af:8080/api/v2/dags/~/dagRuns?limit=10&order_by=-id"
    assert urls[10] == (
        f"http://af:8080/api/v2/dags/{DAG}/dagRuns/{q}/taskInstances/preprocess/logs/2"
        "?full_content=true&map_index=3"
    )
    assert urls[3] == "http://af:8080/api/v2/dags?limit=1000&exclude_stale=true"
    # the answers: 404 → None where a missing thing is an answer, the picked keys otherwise
    assert sync_answers[1] is None
    assert sync_answers[3] == [{"dag_id": DAG}]
    assert sync_answers[8] == [{"task_id": "a"}]
    assert sync_answers[9] == {"summary": "s3://x/run.json"}
    assert log_text(sync_answers[10]) == "hello"


def test_the_same_errors_from_both() -> None:
    def errors(client_calls: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        with AirflowClient("http://af", token="t", transport=httpx.MockTransport(_record([]))) as c:
            for name, args in client_calls:
                with pytest.raises(AirflowApiError) as e:
                    getattr(c, name)(*args)
                out.append((str(e.value), e.value.status, e.value.refused_run))

        async def run_async() -> list[tuple[Any, ...]]:
            res: list[tuple[Any, ...]] = []
            transport = httpx.MockTransport(_record([]))
            async with AsyncAirflowClient("http://af", token="t", transport=transport) as c:
                for name, args in client_calls:
                    with pytest.raises(AirflowApiError) as e:
                        await getattr(c, name)(*args)
                    res.append((str(e.value), e.value.status, e.value.refused_run))
            return res

        assert asyncio.run(run_async()) == out
        return out

    found = errors([("trigger", (DAG, {"bad": 1})), ("run", (DAG, "boom"))])
    assert found[0] == ("Airflow refused the run: body.conf: bad param", 400, True)
    assert found[1][1] == 500 and "Airflow answered 500" in found[1][0]


def test_unreachable_and_expired_token() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with AirflowClient("http://af", "u", "p", transport=httpx.MockTransport(refuse)) as c:
        with pytest.raises(AirflowApiError, match="cannot reach Airflow at http://af") as e:
            c.get_dag(DAG)
        assert e.value.status is None

    logins = []

    def expiring(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            logins.append(1)
            return httpx.Response(201, json={"access_token": f"jwt-{len(logins)}"})
        if request.headers["authorization"] == "Bearer jwt-1":
            return httpx.Response(401, json={"detail": "expired"})
        return httpx.Response(200, json={"dag_id": DAG})

    with AirflowClient("http://af", "u", "p", transport=httpx.MockTransport(expiring)) as c:
        assert c.get_dag(DAG) == {"dag_id": DAG}
    assert len(logins) == 2

    # with the caller's token there is no login to renew: the 401 is the answer
    with AirflowClient("http://af", token="jwt-1", transport=httpx.MockTransport(expiring)) as c:
        with pytest.raises(AirflowApiError) as e:
            c.get_dag(DAG)
        assert e.value.status == 401
    assert len(logins) == 2


def test_a_client_needs_credentials() -> None:
    with pytest.raises(ValueError, match="token or a username"):
        AirflowClient("http://af", "admin")


def test_ogc_errors_from_airflow_errors() -> None:
    from candela_ogc.ogc import from_airflow

    def status(exc: AirflowApiError) -> tuple[int, str]:
        err = from_airflow(exc)
        return err.status, err.title

    assert status(AirflowApiError("x")) == (502, "Airflow unreachable")
    assert status(AirflowApiError("x", 403, "no")) == (403, "Not allowed by Airflow")
    assert status(AirflowApiError("x", 500, "boom")) == (502, "Airflow error")
    assert status(AirflowApiError("x", 422, "bad", refused_run=True)) == (
        400,
        "Airflow refused the run",
    )
    assert status(AirflowApiError("x", 404, "none")) == (404, "No such workflow")
    assert status(AirflowApiError("x", 409, "busy")) == (502, "Airflow refused the request")


def test_review_state_of_a_run_through_the_rest_api() -> None:
    from candela_review.runs import airflow_state

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/taskInstances"):
            return httpx.Response(
                200,
                json={
                    "task_instances": [
                        {"task_id": "publish", "map_index": -1, "state": "success",
                         "try_number": 1},
                        {"task_id": "plan_run", "map_index": -1, "state": "success",
                         "try_number": 1},
                        {"task_id": "preprocess", "map_index": 1, "state": "failed",
                         "try_number": 3},
                    ]
                },
            )  # fmt: skip
        if path.endswith("/plan_run/xcomEntries/return_value"):
            return httpx.Response(200, json={"value": '{"prefix": "file:///r"}'})
        if path.endswith("/publish/xcomEntries/return_value"):
            return httpx.Response(404, json={"detail": "no xcom"})
        if path.endswith("/nope"):
            return httpx.Response(404, json={"detail": "no run"})
        return httpx.Response(
            200,
            json={"state": "failed", "conf": {"model": "cva"}, "start_date": "2026-01-01T00:00:00Z",
                  "end_date": None},
        )  # fmt: skip

    with AirflowClient("http://af", token="t", transport=httpx.MockTransport(handler)) as c:
        st = airflow_state(DAG, RUN, c)
        assert st is not None
        assert st.state == "failed" and st.conf == {"model": "cva"}
        assert st.xcom == {"plan_run": {"prefix": "file:///r"}}
        assert [(t["task_id"], t["try"]) for t in st.tasks] == [
            ("plan_run", 1),
            ("preprocess", 3),
            ("publish", 1),
        ]
        missing = airflow_state(DAG, "nope", c)
        assert missing is not None and missing.state is None
    assert airflow_state(DAG, RUN, None) is None


def test_review_routes_see_the_callers_token() -> None:
    from fastapi import APIRouter, Depends, FastAPI
    from fastapi.testclient import TestClient

    from candela_review.web import _CALLER_TOKEN
    from candela_review.web import remember_caller as _remember_caller

    app = FastAPI()
    api = APIRouter(dependencies=[Depends(_remember_caller)])

    @api.get("/t")
    def token() -> dict[str, Any]:  # a sync route: runs in a worker thread
        return {"token": _CALLER_TOKEN.get()}

    app.include_router(api)
    with TestClient(app) as c:
        assert c.get("/t", headers={"Authorization": "Bearer abc"}).json() == {"token": "abc"}
        assert c.get("/t", cookies={"_token": "from-ui"}).json() == {"token": "from-ui"}
        assert c.get("/t").json() == {"token": None}


def test_the_request_builders_are_the_only_paths() -> None:
    """Calls is the one place: each builder gives a method and an /api/v2 or /auth path."""
    built = [
        Calls.login("u", "p"),
        Calls.dag(DAG),
        Calls.trigger(DAG, {}),
        Calls.task_log(DAG, RUN, "t", 1, -1),
    ]
    assert [c.method for c in built] == ["POST", "GET", "POST", "GET"]
    assert all(c.path.startswith(("/api/v2/", "/auth/")) for c in built)


def test_dag_order_puts_each_task_after_its_upstream() -> None:
    from candela.airflow_api import dag_order

    def t(task_id: str, *down: str) -> dict[str, Any]:
        return {"task_id": task_id, "downstream_task_ids": list(down)}

    # as Airflow lists them: alphabetically
    tasks = [
        t("detect_changes", "publish"),
        t("mosaic", "detect_changes"),
        t("plan_run", "search_products"),
        t("preprocess", "mosaic"),
        t("publish"),
        t("search_products", "preprocess", "fuse_landcover"),
        t("fuse_landcover", "publish"),
    ]
    order = dag_order(tasks)
    assert order[:3] == ["plan_run", "search_products", "preprocess"]
    assert order[-1] == "publish" and sorted(order) == sorted(x["task_id"] for x in tasks)
    for task in tasks:
        for d in task["downstream_task_ids"]:
            assert order.index(task["task_id"]) < order.index(d)
    assert dag_order([]) == []
