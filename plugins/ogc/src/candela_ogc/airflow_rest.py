"""Airflow's public REST API (``/api/v2``), called with the caller's own token.

The OGC app runs inside the API server, yet it goes through the public API rather than the ORM:
Airflow itself then checks the caller's permissions on each DAG, validates the run's params,
records who triggered the run, and the app depends only on the stable v2 contract, not on
internal models that change between minor versions.
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import quote

import httpx

from candela_ogc.ogc import UPSTREAM, OgcError

log = logging.getLogger(__name__)


def api_url() -> str:
    """Where this API server answers: ``CANDELA_OGC_AIRFLOW_URL``, else ``[api] base_url``."""
    url = os.environ.get("CANDELA_OGC_AIRFLOW_URL")
    if not url:
        from airflow.configuration import conf

        url = conf.get("api", "base_url", fallback="") or "http://localhost:8080"
    return url.rstrip("/")


class AirflowRest:
    def __init__(self, token: str, base_url: str | None = None, timeout: float = 30) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url or api_url(),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    async def __aenter__(self) -> AirflowRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            r = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise OgcError(502, UPSTREAM, "Airflow unreachable", str(exc)) from None
        if r.status_code in (401, 403):
            raise OgcError(
                r.status_code, UPSTREAM, "Not allowed by Airflow", _detail(r) or "forbidden"
            )
        if r.status_code >= 500:
            raise OgcError(502, UPSTREAM, "Airflow error", _detail(r))
        return r

    async def get(self, path: str, **params: Any) -> dict[str, Any] | None:
        r = await self.request("GET", path, params=params or None)
        if r.status_code == 404:
            return None
        if r.status_code >= 400:
            raise OgcError(502, UPSTREAM, "Airflow refused the request", _detail(r))
        return dict(r.json())

    # --- the calls the app makes ------------------------------------------------------------

    async def dags(self) -> list[dict[str, Any]]:
        body = await self.get("/api/v2/dags", limit=1000, exclude_stale=True)
        return list((body or {}).get("dags", []))

    async def dag_details(self, dag_id: str) -> dict[str, Any] | None:
        return await self.get(f"/api/v2/dags/{quote(dag_id)}/details")

    async def trigger(self, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        r = await self.request(
            "POST",
            f"/api/v2/dags/{quote(dag_id)}/dagRuns",
            json={"logical_date": None, "conf": conf},
        )
        if r.status_code in (400, 422):
            raise OgcError(400, UPSTREAM, "Airflow refused the run", _detail(r))
        if r.status_code == 404:
            raise OgcError(404, UPSTREAM, "No such workflow", _detail(r))
        if r.status_code >= 400:
            raise OgcError(502, UPSTREAM, "Airflow refused the run", _detail(r))
        return dict(r.json())

    async def run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        return await self.get(f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}")

    async def runs(self, limit: int) -> list[dict[str, Any]]:
        body = await self.get("/api/v2/dags/~/dagRuns", limit=limit, order_by="-id")
        return list((body or {}).get("dag_runs", []))

    async def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        body = await self.get(
            f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances",
            limit=1000,
        )
        return list((body or {}).get("task_instances", []))

    async def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        body = await self.get(
            f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id, safe='')}/taskInstances/"
            f"{quote(task_id)}/xcomEntries/return_value",
            map_index=map_index,
            deserialize=True,
        )
        return None if body is None else body.get("value")


def _detail(r: httpx.Response) -> str:
    try:
        detail = r.json().get("detail")
    except ValueError:
        return r.text[:500]
    if isinstance(detail, list):  # pydantic errors
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" for d in detail
        )
    return str(detail)
