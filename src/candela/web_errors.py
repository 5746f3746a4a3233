"""One family of request errors for Candela's web apps (the OGC API at ``/ogc`` and the review app
at ``/candela``) and one table from exception to HTTP status.

Code raises the kind of failure (``NotFound("no run …")``); each app renders it in its own body
format (OGC exception documents, the review app's JSON or HTML page) with the status from
:data:`STATUS`. The table also holds the platform's own exceptions that reach a web app, by
qualified name, so this module imports none of them.
"""

from __future__ import annotations


class WebError(Exception):
    """A request a Candela web app cannot serve. The class is the kind of failure; ``status``
    is its HTTP status from :data:`STATUS` unless the raiser gives one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self._status = status

    @property
    def status(self) -> int:
        return self._status if self._status is not None else status_of(self, explicit=False)


class BadRequest(WebError):
    """The request is malformed: a parameter, a body, a query."""


class NotFound(WebError):
    """What the request names does not exist (or is missing from storage)."""


class Conflict(WebError):
    """The request cannot run in the current state (e.g. a paused workflow)."""


class Unprocessable(WebError):
    """Well-formed, but the data it names cannot serve it (e.g. a stack without RGB bands)."""


class Failed(WebError):
    """The work behind the request failed (e.g. the results of a failed job)."""


class UpstreamError(WebError):
    """A service the app relies on (Airflow's REST API) answered with an error."""


class Unavailable(WebError):
    """A service the app relies on (the platform's database, Airflow) is not reachable."""


#: exception → HTTP status, for both web apps. Looked up along the exception's MRO.
STATUS: dict[type[BaseException], int] = {
    BadRequest: 400,
    NotFound: 404,
    Conflict: 409,
    Unprocessable: 422,
    Failed: 500,
    UpstreamError: 502,
    Unavailable: 503,
}
#: the platform's exceptions a web app may meet, by qualified name (no import needed here)
STATUS_BY_NAME: dict[str, int] = {
    "candela.embedded.PlatformError": 503,
    "candela_sdk.errors.InputError": 404,
    "psycopg.OperationalError": 503,
    "httpx.TransportError": 503,
    "httpx.HTTPStatusError": 502,
}
#: titles of the statuses the apps answer with (OGC exception documents, error pages)
TITLES: dict[int, str] = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Unprocessable",
    500: "Failed",
    502: "Upstream error",
    503: "Unavailable",
}


def status_of(exc: BaseException, explicit: bool = True) -> int:
    """The HTTP status of ``exc``: its own (a :class:`WebError` raised with one), else the
    table's entry for the nearest class in its MRO, else 500."""
    if explicit and isinstance(exc, WebError):
        return exc.status
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
        name = f"{cls.__module__}.{cls.__qualname__}"
        if name in STATUS_BY_NAME:
            return STATUS_BY_NAME[name]
    return 500


def error_for_status(status: int) -> type[WebError]:
    """The kind of :class:`WebError` the table maps to ``status`` (``WebError`` if none)."""
    for cls, code in STATUS.items():
        if code == status and issubclass(cls, WebError):
            return cls
    return WebError
