"""One exception → HTTP status table for both web apps (``candela.web_errors``)."""

from __future__ import annotations

import pytest

from candela import web_errors as we


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (we.BadRequest, 400),
        (we.NotFound, 404),
        (we.Conflict, 409),
        (we.Unprocessable, 422),
        (we.Failed, 500),
        (we.UpstreamError, 502),
        (we.Unavailable, 503),
    ],
)
def test_each_kind_has_its_status_and_back(cls: type[we.WebError], status: int) -> None:
    assert cls("x").status == we.status_of(cls("x")) == status
    assert we.error_for_status(status) is cls


def test_explicit_status_subclasses_and_platform_exceptions() -> None:
    import psycopg

    from candela.embedded import PlatformError
    from candela_sdk.errors import InputError

    assert we.NotFound("gone", 410).status == 410

    class NoSuchRun(we.NotFound):
        pass

    assert NoSuchRun("r").status == 404  # nearest class in the MRO
    assert we.status_of(PlatformError("down")) == 503
    assert we.status_of(psycopg.OperationalError("down")) == 503
    assert we.status_of(InputError("missing")) == 404
    assert we.status_of(ValueError("bug")) == 500
    assert we.error_for_status(418) is we.WebError


def test_both_apps_errors_are_of_the_family() -> None:
    from candela_ogc.ogc import OgcError, no_such_job
    from candela_review.runs import ReviewError

    assert isinstance(no_such_job("j"), OgcError) and isinstance(no_such_job("j"), we.WebError)
    assert no_such_job("j").status == 404
    assert isinstance(ReviewError("bad", 503), we.Unavailable)
