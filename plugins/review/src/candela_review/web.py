"""What every router of the review app shares: the request context (settings, results DSN, a
short cache of runs), the app's base URL, the page templates."""

from __future__ import annotations

import json
import time
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request

from candela.settings import Settings
from candela.web_errors import NotFound, Unavailable, WebError
from candela_review import runs as runs_mod
from candela_review import stac_api

if TYPE_CHECKING:
    from candela.airflow_api import AirflowClient

HERE = Path(__file__).resolve().parent
RUN_CACHE_S = 5.0

# --- the error answers, as the OpenAPI document lists them (one home for every router) --------

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "description"],
    "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
}
ERROR_MEANING: dict[int, str] = {
    400: "a malformed parameter or body",
    401: "no Airflow login (a browser is sent to the login page instead)",
    403: "Airflow does not let the caller do this",
    404: "what the path names does not exist, or the caller may not read it",
    409: "the request cannot run in the current state",
    422: "well-formed, but the data it names cannot serve it",
    429: "a quota of the caller is used up",
    502: "Airflow failed or refused the request",
    503: "the results database or Airflow is not reachable",
}


def errors(*statuses: int, **meaning: str) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` for the errors a route answers with: ``{code, description}`` JSON
    (:class:`candela.web_errors.WebError` through the app's handler), or an error page to a
    browser. ``meaning`` overrides a description: ``errors(404, e404="no such run")``."""
    return {
        s: {
            "description": meaning.get(f"e{s}", ERROR_MEANING[s]),
            "content": {
                "application/json": {"schema": ERROR_SCHEMA},
                "text/html": {"schema": {"type": "string"}},
            },
        }
        for s in statuses
    }


# the JWT of the request being served: the review app asks Airflow's REST API as its caller
_CALLER_TOKEN: ContextVar[str | None] = ContextVar("candela_review_caller_token", default=None)


async def remember_caller(request: Request) -> None:
    """Dependency of every route (async, so the value reaches the route's worker thread)."""
    from candela.airflow_api import caller_token

    try:
        _CALLER_TOKEN.set(caller_token(request) or None)
    except ImportError:  # no Airflow here (the app runs standalone)
        _CALLER_TOKEN.set(None)


class Context:
    """What the routes need: settings, the results DSN (resolved lazily: the embedded database
    may start after the api-server imported the plugin), an Airflow client as the caller."""

    def __init__(self, settings: Settings | None = None, dsn: str | None = None) -> None:
        self._settings = settings
        self._dsn = dsn
        self._runs: dict[tuple[str, str], tuple[float, runs_mod.Run]] = {}
        self._readable: dict[str, tuple[float, frozenset[str]]] = {}

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings()
        return self._settings

    @property
    def dsn(self) -> str:
        if self._dsn:
            return self._dsn
        from candela_sdk.settings import platform_dsn

        dsn = platform_dsn(self.settings)
        if dsn is None:
            raise Unavailable("the embedded database is not running: start it with `candela up`")
        return dsn

    @property
    def dsn_or_none(self) -> str | None:
        try:
            return self.dsn
        except WebError:
            return None

    def airflow(self) -> AirflowClient | None:
        """A client of Airflow's REST API with the caller's token (``None`` without one)."""
        from candela.airflow_api import AirflowClient, api_server_url

        token = _CALLER_TOKEN.get()
        if not token:
            return None
        try:
            url = api_server_url(self.settings.airflow_url)
        except ImportError:
            return None
        return AirflowClient(url, token=token, timeout=10)

    def catalog(self) -> stac_api.ResultsCatalog:
        return stac_api.ResultsCatalog(self.dsn, self.readable_dags())

    def readable_dags(self) -> frozenset[str] | None:
        """The DAGs the caller may read, as Airflow's REST API answers the caller's token (its
        auth manager applies the per-DAG permissions); ``None`` when the app runs without
        Airflow (standalone: no filter). Cached a few seconds per token."""
        from candela.airflow_api import AirflowApiError

        token = _CALLER_TOKEN.get()
        if not token:
            return None
        now = time.monotonic()
        hit = self._readable.get(token)
        if hit and now - hit[0] < RUN_CACHE_S:
            return hit[1]
        client = self.airflow()
        if client is None:
            return None
        try:
            dags = frozenset(client.list_dags())
        except AirflowApiError as exc:
            if exc.status in (401, 403):
                dags = frozenset()
            else:
                raise Unavailable(
                    f"Airflow cannot say which workflows you may read: {exc}"
                ) from None
        finally:
            client.close()
        if len(self._readable) > 256:
            self._readable.clear()
        self._readable[token] = (now, dags)
        return dags

    def check_readable(self, dag_id: str) -> None:
        """:class:`NotFound` for a workflow the caller may not read (nothing revealed)."""
        readable = self.readable_dags()
        if readable is not None and dag_id not in readable:
            raise NotFound(f"no workflow {dag_id!r} that you may read")

    def run(self, dag_id: str, run_id: str, fresh: bool = False) -> runs_mod.Run:
        """The run (cached a few seconds: a map asks for dozens of tiles at once), if the
        caller may read its workflow."""
        self.check_readable(dag_id)
        key = (dag_id, run_id)
        now = time.monotonic()
        hit = self._runs.get(key)
        if hit and not fresh and now - hit[0] < RUN_CACHE_S:
            return hit[1]
        client = self.airflow()
        try:
            run = runs_mod.load_run(self.settings, dag_id, run_id, self.dsn_or_none, client)
        finally:
            if client is not None:
                client.close()
        if len(self._runs) > 256:
            self._runs.clear()
        self._runs[key] = (now, run)
        return run

    def published(self, dag_id: str, run_id: str) -> runs_mod.Run:
        """The run, which must have published outputs."""
        run = self.run(dag_id, run_id)
        if run.summary is None:
            raise NotFound(f"run {run_id} of {dag_id} has no published outputs")
        return run


def base_url(request: Request) -> str:
    """The app's URL as the client reached it (``…/candela``: the mount is in ``root_path``)."""
    root = request.scope.get("root_path", "")
    return f"{request.url.scheme}://{request.url.netloc}{root}".rstrip("/")


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def templates() -> Any:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
    )
    env.filters["tojson_safe"] = _script_json
    env.filters["num"] = _num
    return env


def _script_json(v: Any) -> Any:
    """JSON safe to embed in a <script> element (and shown as text in <pre>)."""
    from markupsafe import Markup

    text = json.dumps(v, default=str, indent=None)
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(a, b)
    return Markup(text)


def _num(v: Any, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)
