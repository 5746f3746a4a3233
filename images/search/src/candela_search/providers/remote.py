"""What the remote providers share: endpoints, retries with backoff, one-line errors."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

from candela_sdk.errors import InputError, ServiceFailure
from candela_search.settings import get_settings

log = logging.getLogger(__name__)

# bounded retries: at most this many attempts for throttling (429) and server errors (5xx)
ATTEMPTS = get_settings().search_attempts
BACKOFF_S = get_settings().search_backoff_s  # doubled each retry
MAX_WAIT_S = 30.0  # longest single wait, whatever Retry-After says
TIMEOUT_S = get_settings().search_timeout_s
RETRY_STATUS = (429, 500, 502, 503, 504)


def endpoint(query_endpoint: str | None, configured: str | None, default: str) -> str:
    """The endpoint: the query's, else the configured one (a setting), else ``default``."""
    url = (query_endpoint or configured or default).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"search endpoint must be an http(s) URL, not {url!r}")
    return url


def backoff(attempt: int, retry_after: str | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): Retry-After if given, else
    exponential with jitter; never more than :data:`MAX_WAIT_S`."""
    if retry_after:
        try:
            return min(MAX_WAIT_S, max(0.0, float(retry_after)))
        except ValueError:
            pass
    return min(MAX_WAIT_S, BACKOFF_S * 2 ** (attempt - 1) * (1 + random.random() / 4))


def get_json(
    client: Any,
    url: str,
    what: str,
    params: dict[str, Any] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """GET ``url`` with httpx ``client``; retry 429/5xx and timeouts with backoff, bounded.

    Raises :class:`ServiceFailure` with one line once the attempts are spent, or at once for
    other HTTP errors (with the server's own message when it gives one).
    """
    import httpx

    last = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            resp = client.get(url, params=params, timeout=TIMEOUT_S)
        except httpx.TimeoutException:
            last = f"no answer within {TIMEOUT_S:g} s"
            wait = backoff(attempt)
        except httpx.TransportError as exc:
            raise ServiceFailure(f"{what}: cannot reach {url} ({type(exc).__name__})") from None
        else:
            if resp.status_code < 400:
                try:
                    return resp.json()
                except ValueError:
                    raise ServiceFailure(
                        f"{what}: {url} answered something that is not JSON"
                    ) from None
            if resp.status_code not in RETRY_STATUS:
                raise ServiceFailure(
                    f"{what}: HTTP {resp.status_code} from {url}: {_message(resp)}"
                )
            last = "throttled (HTTP 429)" if resp.status_code == 429 else f"HTTP {resp.status_code}"
            wait = backoff(attempt, resp.headers.get("Retry-After"))
        if attempt < ATTEMPTS:
            log.warning("%s: %s; retry %d/%d in %.1f s", what, last, attempt, ATTEMPTS - 1, wait)
            sleep(wait)
    raise ServiceFailure(f"{what}: {last} after {ATTEMPTS} attempts; try again later")


def _message(resp: Any) -> str:
    try:
        body = resp.json()
    except ValueError:
        return (resp.text or "").strip().splitlines()[0][:200] if resp.text else "no message"
    if isinstance(body, dict):
        err = body.get("error") or body.get("detail") or body.get("description") or body
        if isinstance(err, dict):
            err = err.get("message") or err.get("detail") or err
        return str(err)[:300]
    return str(body)[:300]
