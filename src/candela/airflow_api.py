"""The one client of Airflow 3's REST API (``/api/v2``): sync for the CLI, async for the web apps.

Every call is first *built* (:class:`Call`: method, path, query, body) by :class:`Calls`, then
sent by :class:`AirflowClient` (``httpx.Client``) or :class:`AsyncAirflowClient`
(``httpx.AsyncClient``), and its answer read by the same :func:`answer`: both clients send the
same requests and raise the same :class:`AirflowApiError`. Authentication is either a login
(``POST /auth/token`` with user and password, renewed once on a 401: the CLI) or the caller's own
JWT (the OGC and review apps inside the API server, so that Airflow checks the caller's
permissions on each DAG).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

TERMINAL_RUN_STATES = {"success", "failed"}


class AirflowApiError(Exception):
    """Airflow did not answer, refused, or failed. ``status`` is its HTTP status (``None`` when it
    could not be reached); ``detail`` its own words; ``refused_run`` marks a trigger whose
    parameters Airflow refused (400/422)."""

    def __init__(
        self, message: str, status: int | None = None, detail: str = "", refused_run: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.refused_run = refused_run


@dataclass
class RunStatus:
    state: str
    tasks: dict[str, str]  # task (with map index) -> state
    # task (with map index) -> {"start": ISO time or None, "end": ISO time or None}; not part of
    # the status's identity (a change is a change of state)
    times: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Call:
    """One request: what to send, and how to read the answer."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    missing_ok: bool = False  # a 404 answers None instead of an error
    trigger: bool = False  # a 400/422 is Airflow refusing the run's parameters
    pick: str | None = None  # the key of the JSON body to return (None: the body)

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` (after method and path)."""
        out: dict[str, Any] = {}
        if self.params is not None:
            out["params"] = self.params
        if self.json is not None:
            out["json"] = self.json
        return out


def _q(value: str) -> str:
    return quote(value, safe="")


def _run_path(dag_id: str, run_id: str) -> str:
    return f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}"


class Calls:
    """The request builders: the paths of the calls Candela makes, in one place."""

    @staticmethod
    def login(username: str, password: str) -> Call:
        return Call("POST", "/auth/token", json={"username": username, "password": password})

    @staticmethod
    def dag(dag_id: str) -> Call:
        return Call("GET", f"/api/v2/dags/{_q(dag_id)}", missing_ok=True)

    @staticmethod
    def dag_details(dag_id: str) -> Call:
        return Call("GET", f"/api/v2/dags/{_q(dag_id)}/details", missing_ok=True)

    @staticmethod
    def dags(limit: int = 100, exclude_stale: bool | None = None) -> Call:
        params: dict[str, Any] = {"limit": limit}
        if exclude_stale is not None:
            params["exclude_stale"] = exclude_stale
        return Call("GET", "/api/v2/dags", params=params, pick="dags")

    @staticmethod
    def unpause(dag_id: str) -> Call:
        return Call("PATCH", f"/api/v2/dags/{_q(dag_id)}", json={"is_paused": False})

    @staticmethod
    def trigger(dag_id: str, conf: dict[str, Any]) -> Call:
        return Call(
            "POST",
            f"/api/v2/dags/{_q(dag_id)}/dagRuns",
            json={"logical_date": None, "conf": conf},
            trigger=True,
        )

    @staticmethod
    def run(dag_id: str, run_id: str) -> Call:
        return Call("GET", _run_path(dag_id, run_id), missing_ok=True)

    @staticmethod
    def finished_steps(dag_id: str, limit: int = 500) -> Call:
        """The newest successful task instances of every run of ``dag_id`` (their durations
        make the ETAs of ``candela run``)."""
        return Call(
            "GET",
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/~/taskInstances",
            params={"state": "success", "limit": limit, "order_by": "-end_date"},
            pick="task_instances",
        )

    @staticmethod
    def runs(limit: int, dag_id: str = "~") -> Call:
        """The newest runs (``~``: of every DAG)."""
        return Call(
            "GET",
            f"/api/v2/dags/{_q(dag_id) if dag_id != '~' else '~'}/dagRuns",
            params={"limit": limit, "order_by": "-id"},
            pick="dag_runs",
        )

    @staticmethod
    def task_instances(dag_id: str, run_id: str) -> Call:
        return Call(
            "GET",
            f"{_run_path(dag_id, run_id)}/taskInstances",
            params={"limit": 1000},
            pick="task_instances",
        )

    @staticmethod
    def tasks(dag_id: str) -> Call:
        """The DAG's tasks, each with its ``downstream_task_ids`` (see :func:`dag_order`)."""
        return Call("GET", f"/api/v2/dags/{_q(dag_id)}/tasks", pick="tasks")

    @staticmethod
    def xcom(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Call:
        return Call(
            "GET",
            f"{_run_path(dag_id, run_id)}/taskInstances/{_q(task_id)}/xcomEntries/return_value",
            params={"map_index": map_index, "deserialize": True},
            missing_ok=True,
            pick="value",
        )

    @staticmethod
    def task_log(
        dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> Call:
        return Call(
            "GET",
            f"{_run_path(dag_id, run_id)}/taskInstances/{_q(task_id)}/logs/{try_number}",
            params={"full_content": True, "map_index": map_index},
            headers={"Accept": "application/json"},
            pick="content",
        )


def detail(r: httpx.Response) -> str:
    """Airflow's explanation of an error answer (pydantic errors as ``loc: msg; …``)."""
    try:
        body = r.json()
    except ValueError:
        return r.text[:300]
    found = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(found, list):
        return "; ".join(
            f"{'.'.join(str(x) for x in d.get('loc', []))}: {d.get('msg')}"
            if isinstance(d, dict)
            else str(d)
            for d in found
        )
    return str(found)


def answer(call: Call, r: httpx.Response) -> Any:
    """The value of ``call``'s answer ``r``; an :class:`AirflowApiError` for an error."""
    if r.status_code == 404 and call.missing_ok:
        return None
    if call.trigger and r.status_code in (400, 422):
        why = detail(r)
        raise AirflowApiError(
            f"Airflow refused the run: {why.split(chr(10) * 2)[0]}",
            r.status_code,
            why,
            refused_run=True,
        )
    if r.status_code >= 400:
        why = detail(r)
        raise AirflowApiError(
            f"Airflow answered {r.status_code} for {r.request.url.path}: {why}",
            r.status_code,
            why,
        )
    if r.status_code == 204 or not r.content:
        return None
    body = r.json()
    if call.pick is not None:
        return body.get(call.pick) if isinstance(body, dict) else None
    return body


def log_text(entries: list[Any]) -> str:
    """A task log's entries (``/logs/{try}`` content) as text, errors included."""
    lines = []
    for entry in entries:
        if isinstance(entry, dict):
            lines.append(str(entry.get("event", "")))
            for err in entry.get("error_detail") or []:
                if isinstance(err, dict):
                    lines.append(f"{err.get('exc_type')}: {err.get('exc_value')}")
        else:
            lines.append(str(entry))
    return "\n".join(lines)


def _task_key(ti: dict[str, Any]) -> str:
    return ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")


def api_server_url(configured: str | None = None) -> str:
    """Where the Airflow API server answers, for the web apps mounted on it: ``configured``,
    else Airflow's ``[api] base_url``, else ``http://localhost:8080``."""
    url = configured
    if not url:
        from airflow.configuration import conf

        url = conf.get("api", "base_url", fallback="") or "http://localhost:8080"
    return url.rstrip("/")


def caller_token(request: Any) -> str:
    """The JWT a request to the API server carries: ``Authorization: Bearer …`` or the UI's
    cookie (for the web apps, which call Airflow as their caller)."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return str(credentials)
    return str(request.cookies.get(COOKIE_NAME_JWT_TOKEN, ""))


class _Auth:
    """Shared by both clients: the bearer token, from a login or given."""

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        token: str | None = None,
    ) -> None:
        if token is None and (username is None or password is None):
            raise ValueError("an Airflow client needs a token or a username and password")
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._token = token
        self._can_login = token is None

    def _unreachable(self, exc: Exception) -> AirflowApiError:
        return AirflowApiError(f"cannot reach Airflow at {self.base_url}: {exc}")

    def _login_answer(self, r: httpx.Response) -> str:
        if r.status_code not in (200, 201):
            raise AirflowApiError(
                f"login to Airflow refused ({r.status_code}): {r.text[:200]}", r.status_code
            )
        return str(r.json()["access_token"])

    def _headers(self, call: Call, token: str) -> dict[str, str]:
        return {**call.headers, "Authorization": f"Bearer {token}"}

    def ui_url(self, dag_id: str, run_id: str) -> str:
        return f"{self.base_url}/dags/{quote(dag_id)}/runs/{quote(run_id)}"


class AirflowClient(_Auth):
    """Synchronous client (``httpx.Client``): the CLI, the review app."""

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30,
        *,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, username, password, token=token)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- auth and requests --------------------------------------------------------------------

    def token(self) -> str:
        if self._token is None:
            login = Calls.login(self._username or "", self._password or "")
            try:
                r = self._http.request(login.method, login.path, **login.kwargs())
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
            self._token = self._login_answer(r)
        return self._token

    def send(self, call: Call) -> httpx.Response:
        """Send ``call`` with the bearer token (a fresh login once if it expired)."""
        try:
            r = self._http.request(
                call.method, call.path, headers=self._headers(call, self.token()), **call.kwargs()
            )
            if r.status_code == 401 and self._can_login:  # token expired: log in again once
                self._token = None
                r = self._http.request(
                    call.method,
                    call.path,
                    headers=self._headers(call, self.token()),
                    **call.kwargs(),
                )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        return r

    def call(self, call: Call) -> Any:
        return answer(call, self.send(call))

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any other request (the raw answer)."""
        headers = dict(kwargs.pop("headers", None) or {})
        return self.send(
            Call(method, path, params=kwargs.pop("params", None), json=kwargs.pop("json", None),
                 headers=headers)
        )  # fmt: skip

    # --- API ------------------------------------------------------------------------------------

    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        return self.call(Calls.dag(dag_id))  # type: ignore[no-any-return]

    def dag_details(self, dag_id: str) -> dict[str, Any] | None:
        return self.call(Calls.dag_details(dag_id))  # type: ignore[no-any-return]

    def dags(self, limit: int = 100, exclude_stale: bool | None = None) -> list[dict[str, Any]]:
        return list(self.call(Calls.dags(limit, exclude_stale)) or [])

    def list_dags(self) -> list[str]:
        return [d["dag_id"] for d in self.dags()]

    def unpause(self, dag_id: str) -> None:
        self.call(Calls.unpause(dag_id))

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        return dict(self.call(Calls.trigger(dag_id, conf)))

    def run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        return self.call(Calls.run(dag_id, run_id))  # type: ignore[no-any-return]

    def get_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        run = self.run(dag_id, run_id)
        if run is None:
            raise AirflowApiError(f"Airflow has no run {run_id} of {dag_id}", 404)
        return run

    def runs(self, limit: int, dag_id: str = "~") -> list[dict[str, Any]]:
        return list(self.call(Calls.runs(limit, dag_id)) or [])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.call(Calls.task_instances(dag_id, run_id)) or [])

    def tasks(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.call(Calls.tasks(dag_id)) or [])

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        return self.call(Calls.xcom(dag_id, run_id, task_id, map_index))

    def task_log_entries(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> list[Any]:
        """The task's log records (dicts with ``event``, ``level``, …, or text lines)."""
        call = Calls.task_log(dag_id, run_id, task_id, try_number, map_index)
        return list(self.call(call) or [])

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> str:
        """The task's log as text (the lines of every log source, joined)."""
        return log_text(self.task_log_entries(dag_id, run_id, task_id, try_number, map_index))

    # --- conveniences of the CLI ----------------------------------------------------------------

    def wait_for_dag(self, dag_id: str, timeout: float = 90) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            dag = self.get_dag(dag_id)
            if dag is not None or time.monotonic() > deadline:
                return dag
            time.sleep(2)

    def failed_tasks(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return [ti for ti in self.task_instances(dag_id, run_id) if ti.get("state") == "failed"]

    def run_status(self, dag_id: str, run_id: str) -> RunStatus:
        run = self.get_run(dag_id, run_id)
        tis = self.task_instances(dag_id, run_id)
        tasks = {_task_key(ti): ti.get("state") or "none" for ti in tis}
        times = {
            _task_key(ti): {"start": ti.get("start_date"), "end": ti.get("end_date")} for ti in tis
        }
        return RunStatus(run["state"], tasks, times)

    def task_order(self, dag_id: str) -> list[str]:
        """The DAG's task ids upstream first (:func:`dag_order`); empty when Airflow cannot say
        (the order of a progress table is never worth an error)."""
        try:
            return dag_order(self.tasks(dag_id))
        except AirflowApiError:
            return []

    def step_durations(self, dag_id: str) -> dict[str, float]:
        """Median duration (s) of each step of ``dag_id`` in its earlier successful runs; empty
        when Airflow cannot say (an estimate is never worth an error)."""
        try:
            tis = list(self.call(Calls.finished_steps(dag_id)) or [])
        except AirflowApiError:
            return {}
        return median_durations(tis)

    def follow(
        self,
        dag_id: str,
        run_id: str,
        on_change: Callable[[RunStatus], None],
        poll: float = 2.0,
        timeout: float = 3600,
        max_backoff: float = 30.0,
    ) -> RunStatus:
        """Poll the run until it ends; ``on_change`` on every change of state. Airflow not
        answering (unreachable, a timeout, a 5xx) is retried with exponential backoff up to
        ``max_backoff`` s until ``timeout``: a blip does not end the watch while the run goes
        on. Other errors (401/403/404) end it at once."""
        deadline = time.monotonic() + timeout
        last: RunStatus | None = None
        wait = poll
        while True:
            try:
                st = self.run_status(dag_id, run_id)
            except AirflowApiError as exc:
                if not transient(exc) or time.monotonic() + wait > deadline:
                    raise
                time.sleep(wait)
                wait = min(max_backoff, wait * 2)
                continue
            wait = poll
            if last is None or st != last:
                on_change(st)
                last = st
            if st.state in TERMINAL_RUN_STATES:
                return st
            if time.monotonic() > deadline:
                raise AirflowApiError(f"run {run_id} still {st.state} after {timeout:.0f} s")
            time.sleep(poll)


def transient(exc: AirflowApiError) -> bool:
    """Whether asking again later may get an answer: Airflow unreachable or failing (5xx)."""
    return exc.status is None or exc.status >= 500 or exc.status == 429


def median_durations(tis: list[dict[str, Any]]) -> dict[str, float]:
    """Median ``duration`` (s) per task id (mapped instances together) of task instances."""
    import statistics

    by_task: dict[str, list[float]] = {}
    for ti in tis:
        d = ti.get("duration")
        if isinstance(d, int | float) and d >= 0 and ti.get("task_id"):
            by_task.setdefault(str(ti["task_id"]), []).append(float(d))
    return {k: float(statistics.median(v)) for k, v in by_task.items()}


class AsyncAirflowClient(_Auth):
    """Asynchronous client (``httpx.AsyncClient``): the OGC app. Same calls, same answers."""

    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30,
        *,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, username, password, token=token)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)
        self._login_lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncAirflowClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def token(self) -> str:
        async with self._login_lock:
            if self._token is None:
                login = Calls.login(self._username or "", self._password or "")
                try:
                    r = await self._http.request(login.method, login.path, **login.kwargs())
                except httpx.HTTPError as exc:
                    raise self._unreachable(exc) from None
                self._token = self._login_answer(r)
            return self._token

    async def send(self, call: Call) -> httpx.Response:
        try:
            r = await self._http.request(
                call.method,
                call.path,
                headers=self._headers(call, await self.token()),
                **call.kwargs(),
            )
            if r.status_code == 401 and self._can_login:
                self._token = None
                r = await self._http.request(
                    call.method,
                    call.path,
                    headers=self._headers(call, await self.token()),
                    **call.kwargs(),
                )
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        return r

    async def call(self, call: Call) -> Any:
        return answer(call, await self.send(call))

    async def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        return await self.call(Calls.dag(dag_id))  # type: ignore[no-any-return]

    async def dag_details(self, dag_id: str) -> dict[str, Any] | None:
        return await self.call(Calls.dag_details(dag_id))  # type: ignore[no-any-return]

    async def dags(
        self, limit: int = 100, exclude_stale: bool | None = None
    ) -> list[dict[str, Any]]:
        return list(await self.call(Calls.dags(limit, exclude_stale)) or [])

    async def unpause(self, dag_id: str) -> None:
        await self.call(Calls.unpause(dag_id))

    async def trigger(self, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        return dict(await self.call(Calls.trigger(dag_id, conf)))

    async def run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        return await self.call(Calls.run(dag_id, run_id))  # type: ignore[no-any-return]

    async def runs(self, limit: int, dag_id: str = "~") -> list[dict[str, Any]]:
        return list(await self.call(Calls.runs(limit, dag_id)) or [])

    async def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(await self.call(Calls.task_instances(dag_id, run_id)) or [])

    async def tasks(self, dag_id: str) -> list[dict[str, Any]]:
        return list(await self.call(Calls.tasks(dag_id)) or [])

    async def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        return await self.call(Calls.xcom(dag_id, run_id, task_id, map_index))

    async def task_log_entries(
        self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1
    ) -> list[Any]:
        call = Calls.task_log(dag_id, run_id, task_id, try_number, map_index)
        return list(await self.call(call) or [])


def dag_order(tasks: list[dict[str, Any]]) -> list[str]:
    """The task ids of ``tasks`` (Airflow's ``/tasks`` answer) in DAG order: each after every
    task upstream of it; tasks that are ready together keep the order Airflow listed them in."""
    ids = [str(t["task_id"]) for t in tasks]
    known = set(ids)
    down = {
        str(t["task_id"]): [d for d in t.get("downstream_task_ids") or [] if d in known]
        for t in tasks
    }
    waiting = dict.fromkeys(ids, 0)
    for targets in down.values():
        for d in targets:
            waiting[d] += 1
    pos = {t: n for n, t in enumerate(ids)}
    ready = [t for t in ids if waiting[t] == 0]
    out: list[str] = []
    while ready:
        task = ready.pop(0)
        out.append(task)
        for d in down[task]:
            waiting[d] -= 1
            if waiting[d] == 0:
                ready.append(d)
        ready.sort(key=pos.__getitem__)
    placed = set(out)
    return out + [t for t in ids if t not in placed]  # (a cycle: Airflow refuses those)


def xcom_value(value: Any) -> Any:
    """An XCom value as Python data (a JSON text is decoded)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
