"""Refuse a bad or duplicate run at the call, before Airflow creates it.

Every way of starting a pipeline over HTTP ends in Airflow's ``POST /api/v2/dags/{dag_id}/dagRuns``:
the UI's trigger form, the REST API, ``candela run``, the OGC API (``/ogc``), the official
client. :class:`RunGuard` is an ASGI middleware on the API server (registered by the
``candela_ogc`` plugin as a ``fastapi_root_middlewares`` entry) that, for the workflows with a
typed run configuration (:data:`candela.workflows.WORKFLOWS`) and an authenticated caller:

1. validates the ``conf`` through that configuration: unknown keys, ranges, cross-field rules
   (west < east, start <= end), the model name (the registry's one rule) → **400** naming the
   field, and no run exists;
2. claims the run's output key for the run id it will have (given, or generated as Airflow
   does: ``manual__<now>``), atomically in ``candela.run_claims``: an identical run in progress →
   **409** naming it. A claim held by a run that Airflow says has ended is stale and is freed
   first. If Airflow then refuses to create the run, the claim is released again;
3. checks the caller's quotas (:func:`candela.usage.check_quota`, before the claim): a quota used
   up → **429** naming it, and nothing is started; a run Airflow creates is attributed to its
   caller (``candela.run_users``).

Callers without a valid token pass through untouched (Airflow answers them 401/403), so nothing
is revealed before authentication. When the platform database cannot be reached the guard only
validates; the DAG's first task still validates and claims (and fails at once, without retry).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TRIGGER_PATH = re.compile(r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/?$")
ACTIVE = {"queued", "running"}
MAX_BODY = 1 << 20  # a run's conf is small JSON; anything bigger is not ours to read


class Refusal(Exception):
    """Why a run is refused at the call: an HTTP status and one line."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def new_run_id(now: dt.datetime | None = None) -> str:
    """A manual run's id, in Airflow's own form."""
    return f"manual__{(now or dt.datetime.now(dt.UTC)).isoformat()}"


def check_conf(dag_id: str, conf: Any) -> str | None:
    """The output key of a valid ``conf`` of a guarded workflow (``None``: not guarded);
    :class:`Refusal` (400) when the workflow refuses it."""
    from candela.runs import workflow_key
    from candela.workflows import WORKFLOWS, BadRunConf

    if dag_id not in WORKFLOWS:
        return None
    if conf is None:
        conf = {}
    if not isinstance(conf, dict):
        raise Refusal(400, f"conf must be a JSON object, not {type(conf).__name__}")
    try:
        return workflow_key(dag_id, conf)
    except BadRunConf as exc:
        raise Refusal(400, str(exc)) from None


async def claim_at_call(
    dsn: str,
    key: str,
    dag_id: str,
    run_id: str,
    run_state: Callable[[str], Awaitable[str | None]],
) -> None:
    """Claim ``key`` for ``run_id``; :class:`Refusal` (409) if a run in progress holds it.

    ``run_state(run_id)`` says what Airflow knows of the holder (``None``: no such run)."""
    from candela.db.runs import claim, holder, release
    from candela.runs import RunConflict

    for _ in range(2):
        try:
            claim(dsn, key, dag_id, run_id)
            return
        except RunConflict as exc:
            held_by = holder(dsn, key)
            if held_by is None:
                continue  # released meanwhile: try again
            state = await run_state(held_by)
            if state in ACTIVE:
                raise Refusal(409, str(exc)) from None
            log.info("freeing the stale claim of %s (%s) on %s", held_by, state, key)
            release(dsn, key, held_by)
    raise Refusal(409, f"the outputs of this run ({key}) are claimed by another run; try again")


class RunGuard:
    """ASGI middleware: see the module's docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope.get("type") == "http" and scope.get("method") == "POST":
            match = TRIGGER_PATH.search(scope.get("path", ""))
        if match is None:
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        replay = _replayer(body, more, receive)
        try:
            outcome = await self._check(scope, match["dag_id"], body if not more else None)
        except Refusal as refusal:
            log.info("refused a run of %s at the call: %s", match["dag_id"], refusal.detail)
            await _answer(send, refusal.status, refusal.detail)
            return
        if outcome is None:
            await self.app(scope, replay, send)
            return
        dsn, key, run_id, new_body, user = outcome
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(new_body)).encode()))
        try:
            await self.app(
                {**scope, "headers": headers}, _replayer(new_body, False, receive), watch
            )
        finally:
            if not status or status[0] >= 300:  # Airflow refused or failed: no run holds it
                _release_quietly(dsn, key, run_id)
            elif user:
                _attribute_quietly(dsn, match["dag_id"], run_id, user)

    async def _check(
        self, scope: Scope, dag_id: str, body: bytes | None
    ) -> tuple[str, str, str, bytes, str | None] | None:
        """``None`` to pass the request through as it is; else the claim taken and the body to
        forward (with the run id set); :class:`Refusal` to answer now."""
        from candela.workflows import WORKFLOWS

        if dag_id not in WORKFLOWS or body is None:
            return None
        token = _token(scope)
        if not token or not await _authenticated(token):
            return None  # Airflow answers 401/403 itself
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return None  # Airflow reports malformed JSON in its own words
        if not isinstance(payload, dict):
            return None
        key = check_conf(dag_id, payload.get("conf"))
        if key is None:
            return None
        from candela_sdk.settings import platform_dsn

        try:
            dsn = platform_dsn()
        except Exception as exc:  # no database here: the first task claims instead
            log.warning("run guard: no platform database (%s); not claiming at the call", exc)
            return None
        if not dsn:
            return None
        user = await _caller_name(token)
        if user:
            _check_quota(dsn, user)
        run_id = payload.get("dag_run_id") or new_run_id()
        payload["dag_run_id"] = run_id

        async def run_state(other: str) -> str | None:
            return await _run_state(token, dag_id, other)

        try:
            await claim_at_call(dsn, key, dag_id, str(run_id), run_state)
        except Refusal:
            raise
        except Exception as exc:  # the database went away: the first task claims instead
            log.warning("run guard: could not claim %s at the call: %s", key, exc)
            return None
        return dsn, key, str(run_id), json.dumps(payload).encode(), user


def _check_quota(dsn: str, user: str) -> None:
    from candela.usage import QuotaExceeded, check_quota

    try:
        check_quota(dsn, user)
    except QuotaExceeded as exc:
        raise Refusal(429, str(exc)) from None
    except Exception as exc:  # the tables are not there (yet): no quota to enforce
        log.warning("run guard: quotas of %s not checked: %s", user, exc)


def _attribute_quietly(dsn: str, dag_id: str, run_id: str, user: str) -> None:
    from candela.db.metrics import attribute_run

    try:
        attribute_run(dsn, dag_id, run_id, user)
    except Exception as exc:
        log.warning("run guard: could not attribute %s to %s: %s", run_id, user, exc)


def _release_quietly(dsn: str, key: str, run_id: str) -> None:
    from candela.db.runs import release

    try:
        release(dsn, key, run_id)
    except Exception as exc:
        log.warning("run guard: could not release %s of %s: %s", key, run_id, exc)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The request body, up to :data:`MAX_BODY`; ``more`` when it was longer (not all read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body"):
            return b"".join(chunks), False
        if size > MAX_BODY:
            return b"".join(chunks), True


def _replayer(body: bytes, more: bool, receive: Receive) -> Receive:
    """A ``receive`` that first gives ``body`` again, then the rest of the original stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    return replay


async def _answer(send: Send, status: int, detail: str) -> None:
    data = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _token(scope: Scope) -> str:
    from starlette.requests import Request

    from candela.airflow_api import caller_token

    try:
        return caller_token(Request(scope))
    except Exception:
        return ""


async def _authenticated(token: str) -> bool:
    """Whether Airflow's auth manager accepts ``token`` (the guard says nothing to others)."""
    try:
        from airflow.api_fastapi.core_api.security import resolve_user_from_token

        await resolve_user_from_token(token)
        return True
    except Exception:
        return False


async def _caller_name(token: str) -> str | None:
    """The platform user name of the caller (``None``: cannot tell)."""
    try:
        from airflow.api_fastapi.core_api.security import resolve_user_from_token

        from candela.users import current_user

        who = await resolve_user_from_token(token)
        return current_user(str(who.get_name()))
    except Exception:
        return None


async def _run_state(token: str, dag_id: str, run_id: str) -> str | None:
    """What Airflow says of a run (``None``: no such run), asked as the caller."""
    from candela.airflow_api import AsyncAirflowClient, api_server_url

    client = AsyncAirflowClient(api_server_url(), token=token, timeout=10)
    try:
        run = await client.run(dag_id, run_id)
    except Exception as exc:  # cannot tell: keep the claim (safe side)
        log.warning("run guard: state of %s unknown (%s); keeping its claim", run_id, exc)
        return "running"
    finally:
        await client.aclose()
    return None if not run else str(run.get("state"))
