"""A small client of Airflow 3's REST API (``/api/v2``) with token auth."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowApiError(Exception):
    pass


@dataclass
class RunStatus:
    state: str
    tasks: dict[str, str]  # task (with map index) -> state


class AirflowClient:
    def __init__(self, base_url: str, username: str, password: str, timeout: float = 30) -> None:
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- auth and requests --------------------------------------------------------------------

    def token(self) -> str:
        if self._token is None:
            try:
                r = self._http.post(
                    "/auth/token", json={"username": self._username, "password": self._password}
                )
            except httpx.HTTPError as exc:
                raise AirflowApiError(f"cannot reach Airflow at {self.base_url}: {exc}") from None
            if r.status_code not in (200, 201):
                raise AirflowApiError(f"login to Airflow refused ({r.status_code}): {r.text[:200]}")
            self._token = r.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        extra = dict(kwargs.pop("headers", None) or {})
        headers = {**extra, "Authorization": f"Bearer {self.token()}"}
        try:
            r = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise AirflowApiError(f"cannot reach Airflow at {self.base_url}: {exc}") from None
        if r.status_code == 401:  # token expired: log in again once
            self._token = None
            headers = {**extra, "Authorization": f"Bearer {self.token()}"}
            r = self._http.request(method, path, headers=headers, **kwargs)
        return r

    # --- API ------------------------------------------------------------------------------------

    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        r = self.request("GET", f"/api/v2/dags/{quote(dag_id)}")
        if r.status_code == 404:
            return None
        _raise(r)
        return dict(r.json())

    def wait_for_dag(self, dag_id: str, timeout: float = 90) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            dag = self.get_dag(dag_id)
            if dag is not None or time.monotonic() > deadline:
                return dag
            time.sleep(2)

    def list_dags(self) -> list[str]:
        r = self.request("GET", "/api/v2/dags", params={"limit": 100})
        _raise(r)
        return [d["dag_id"] for d in r.json()["dags"]]

    def unpause(self, dag_id: str) -> None:
        r = self.request("PATCH", f"/api/v2/dags/{quote(dag_id)}", json={"is_paused": False})
        _raise(r)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        r = self.request(
            "POST",
            f"/api/v2/dags/{quote(dag_id)}/dagRuns",
            json={"logical_date": None, "conf": conf},
        )
        if r.status_code in (400, 422):
            raise AirflowApiError(f"Airflow refused the run: {_detail(r).split(chr(10) * 2)[0]}")
        _raise(r)
        return dict(r.json())

    def get_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        r = self.request("GET", f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}")
        _raise(r)
        return dict(r.json())

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        r = self.request(
            "GET",
            f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances",
            params={"limit": 1000},
        )
        _raise(r)
        return list(r.json()["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        r = self.request(
            "GET",
            f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/"
            f"{quote(task_id)}/xcomEntries/return_value",
            params={"map_index": map_index, "deserialize": True},
        )
        if r.status_code == 404:
            return None
        _raise(r)
        return r.json().get("value")

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> str:
        """The task's log as text (the lines of every log source, joined)."""
        r = self.request(
            "GET",
            f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/"
            f"{quote(task_id)}/logs/{try_number}",
            params={"full_content": True, "map_index": map_index},
            headers={"Accept": "application/json"},
        )
        _raise(r)
        content = r.json().get("content", [])
        lines = []
        for entry in content:
            if isinstance(entry, dict):
                lines.append(str(entry.get("event", "")))
                for err in entry.get("error_detail") or []:
                    if isinstance(err, dict):
                        lines.append(f"{err.get('exc_type')}: {err.get('exc_value')}")
            else:
                lines.append(str(entry))
        return "\n".join(lines)

    def failed_tasks(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return [ti for ti in self.task_instances(dag_id, run_id) if ti.get("state") == "failed"]

    def run_status(self, dag_id: str, run_id: str) -> RunStatus:
        run = self.get_run(dag_id, run_id)
        tasks = {}
        for ti in self.task_instances(dag_id, run_id):
            key = ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
            tasks[key] = ti.get("state") or "none"
        return RunStatus(run["state"], tasks)

    def follow(
        self,
        dag_id: str,
        run_id: str,
        on_change: Callable[[RunStatus], None],
        poll: float = 2.0,
        timeout: float = 3600,
    ) -> RunStatus:
        deadline = time.monotonic() + timeout
        last: RunStatus | None = None
        while True:
            st = self.run_status(dag_id, run_id)
            if last is None or st != last:
                on_change(st)
                last = st
            if st.state in TERMINAL_RUN_STATES:
                return st
            if time.monotonic() > deadline:
                raise AirflowApiError(f"run {run_id} still {st.state} after {timeout:.0f} s")
            time.sleep(poll)

    def ui_url(self, dag_id: str, run_id: str) -> str:
        return f"{self.base_url}/dags/{quote(dag_id)}/runs/{quote(run_id)}"


def _detail(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:300]
    detail = body.get("detail", body)
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(x) for x in d.get('loc', []))}: {d.get('msg')}" for d in detail
        )
    return str(detail)


def _raise(r: httpx.Response) -> None:
    if r.status_code >= 400:
        raise AirflowApiError(
            f"Airflow answered {r.status_code} for {r.request.url.path}: {_detail(r)}"
        )
