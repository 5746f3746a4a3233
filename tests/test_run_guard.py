"""The API server's run guard: bad confs and identical runs refused before a run exists.

The guard is tested as the ASGI middleware it is, in front of a small app that stands in for
Airflow's trigger endpoint (it records the runs it "creates"), with a real PostgreSQL holding
the claims. The platform test (test_platform.py) exercises it inside the real API server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from candela import run_guard
from candela.db.runs import holder
from candela.runs import workflow_key
from tests.platform_helpers import BORDEAUX

DAG = "s2_change_detection"


class FakeAirflow:
    """What the guard sits in front of: creates runs, answers 400 for a conf it marks bad."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.states: dict[str, str] = {}

    def app(self) -> Starlette:
        async def trigger(request: Request) -> JSONResponse:
            body = json.loads(await request.body())
            assert int(request.headers["content-length"]) == len(await request.body())
            if (body.get("conf") or {}).get("threshold") == 0.123:  # Airflow's own refusal
                return JSONResponse({"detail": "refused by Airflow"}, status_code=400)
            run_id = body.get("dag_run_id") or "generated-by-airflow"
            self.created.append(body)
            self.states[run_id] = "queued"
            return JSONResponse({"dag_run_id": run_id, "state": "queued"})

        async def other(request: Request) -> JSONResponse:
            return JSONResponse({"path": request.url.path, "body": (await request.body()).decode()})

        return Starlette(
            routes=[
                Route("/api/v2/dags/{dag_id}/dagRuns", trigger, methods=["POST"]),
                Route("/api/v2/{rest:path}", other, methods=["GET", "POST", "PATCH"]),
            ]
        )


@pytest.fixture
def guarded(
    catalog_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[TestClient, FakeAirflow, str]:
    fake = FakeAirflow()

    async def authenticated(token: str) -> bool:
        return token == "good-token"

    async def run_state(token: str, dag_id: str, run_id: str) -> str | None:
        return fake.states.get(run_id)

    monkeypatch.setattr(run_guard, "_authenticated", authenticated)
    monkeypatch.setattr(run_guard, "_run_state", run_state)
    monkeypatch.setenv("CANDELA_DATABASE_URL", catalog_dsn)
    client = TestClient(run_guard.RunGuard(fake.app()))
    client.headers["Authorization"] = "Bearer good-token"
    return client, fake, catalog_dsn


def _trigger(client: TestClient, conf: Any, dag: str = DAG, **extra: Any) -> Any:
    return client.post(
        f"/api/v2/dags/{dag}/dagRuns", json={"logical_date": None, "conf": conf, **extra}
    )


BAD = [
    ({**BORDEAUX, "bbox": [-0.56, 44.83, -0.68, 44.93]}, "west"),
    ({**BORDEAUX, "start": "2017-10-26", "end": "2016-05-04"}, "start"),
    ({**BORDEAUX, "bbox": [-0.68, 44.83, -0.56, 95.0]}, "bbox"),
    ({**BORDEAUX, "threshold": 7}, "threshold"),
    ({**BORDEAUX, "model": "no-such-model"}, "unknown change model"),
    ({**BORDEAUX, "colour": "red"}, "colour: unknown parameter"),
    (["not", "an", "object"], "conf must be a JSON object"),
]


@pytest.mark.parametrize(("conf", "named"), BAD)
def test_a_bad_conf_is_refused_before_a_run_exists(
    guarded: tuple[TestClient, FakeAirflow, str], conf: Any, named: str
) -> None:
    client, fake, dsn = guarded
    r = _trigger(client, conf)
    assert r.status_code == 400, r.text
    assert named in r.json()["detail"], r.json()
    assert fake.created == []


def test_an_identical_run_is_refused_at_the_call_naming_the_running_one(
    guarded: tuple[TestClient, FakeAirflow, str],
) -> None:
    client, fake, dsn = guarded
    first = _trigger(client, BORDEAUX)
    assert first.status_code == 200, first.text
    run_id = first.json()["dag_run_id"]
    assert run_id.startswith("manual__")  # the guard named the run so that it could claim it
    assert holder(dsn, workflow_key(DAG, BORDEAUX)) == run_id
    # the same parameters, given in full (defaults spelled out) or in part: the same key
    full = {**BORDEAUX, "max_cloud": 100, "collection": "sentinel-2-l1c"}
    second = _trigger(client, full)
    assert second.status_code == 409, second.text
    assert run_id in second.json()["detail"]
    assert len(fake.created) == 1
    # other parameters are another run
    assert _trigger(client, {**BORDEAUX, "threshold": 0.6}).status_code == 200
    # once the first run has ended, its claim is stale: the same run may start again
    fake.states[run_id] = "success"
    third = _trigger(client, BORDEAUX)
    assert third.status_code == 200, third.text
    assert holder(dsn, workflow_key(DAG, BORDEAUX)) == third.json()["dag_run_id"]


def test_concurrent_identical_calls_start_one_run(
    guarded: tuple[TestClient, FakeAirflow, str],
) -> None:
    client, fake, dsn = guarded
    guard = client.app

    async def call() -> int:
        import httpx

        transport = httpx.ASGITransport(app=guard)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.post(
                f"/api/v2/dags/{DAG}/dagRuns",
                json={"logical_date": None, "conf": BORDEAUX},
                headers={"Authorization": "Bearer good-token"},
            )
            return r.status_code

    async def three() -> list[int]:
        return list(await asyncio.gather(call(), call(), call()))

    codes = asyncio.run(three())
    assert sorted(codes) == [200, 409, 409], codes
    assert len(fake.created) == 1


def test_a_run_airflow_refuses_releases_its_claim(
    guarded: tuple[TestClient, FakeAirflow, str],
) -> None:
    client, fake, dsn = guarded
    conf = {**BORDEAUX, "threshold": 0.123}
    assert _trigger(client, conf).status_code == 400
    assert holder(dsn, workflow_key(DAG, conf)) is None


def test_what_the_guard_does_not_judge_passes_through_unchanged(
    guarded: tuple[TestClient, FakeAirflow, str],
) -> None:
    client, fake, dsn = guarded
    # another workflow without a typed configuration, other paths, other methods
    assert _trigger(client, {"anything": 1}, dag="some_other_dag").status_code == 200
    r = client.post("/api/v2/dags/s2_change_detection/dagRuns/list", content=b"{}")
    assert r.json()["body"] == "{}"
    # no or a bad token: Airflow's own answer (here the fake's), the guard says nothing
    del client.headers["Authorization"]
    r = _trigger(client, {**BORDEAUX, "threshold": 7})
    assert r.status_code == 200 and fake.created[-1]["conf"]["threshold"] == 7
    client.headers["Authorization"] = "Bearer forged"
    r = _trigger(client, {**BORDEAUX, "threshold": 7})
    assert r.status_code == 200


def test_the_ogc_plugin_registers_the_guard() -> None:
    from candela_ogc.plugin import CandelaOgcPlugin

    entries = CandelaOgcPlugin.fastapi_root_middlewares
    assert [e["middleware"] for e in entries] == [run_guard.RunGuard]


def test_runs_are_attributed_and_a_used_up_quota_refuses_with_nothing_started(
    guarded: tuple[TestClient, FakeAirflow, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from candela.db.metrics import set_quota, usage

    client, fake, dsn = guarded

    async def caller(token: str) -> str | None:
        return "alice"

    monkeypatch.setattr(run_guard, "_caller_name", caller)
    set_quota(dsn, "alice", 1, None, None)
    first = _trigger(client, BORDEAUX)
    assert first.status_code == 200, first.text
    import datetime as dt

    rows = usage(dsn, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), "alice")
    assert [(r["who"], r["runs"]) for r in rows] == [("alice", 1)]
    conf = {**BORDEAUX, "threshold": 0.6}
    second = _trigger(client, conf)
    assert second.status_code == 429, second.text
    assert "quota runs_per_day exceeded" in second.json()["detail"]
    assert len(fake.created) == 1
    assert holder(dsn, workflow_key(DAG, conf)) is None  # nothing claimed either
