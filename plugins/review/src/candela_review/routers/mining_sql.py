"""The SQL mode of data mining on the web: ``POST /mine/sql`` (JSON).

One read-only statement over the documented ``candela.mine_v_*`` views (README, "Data mining"),
run by :func:`candela.db.mining.readonly_query` as the role ``candela_mine_reader`` in a
read-only transaction, with a statement timeout and a row cap: the same rules as
``candela mine sql``. A statement that writes (or reads anything but the views) is refused (400);
one that runs longer than the timeout is cancelled (422). The labelling page's query box calls
this endpoint.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from candela.web_errors import BadRequest, Unprocessable
from candela_review.web import Context, errors

MAX_ROWS = 10_000
MAX_TIMEOUT_S = 60.0


class SqlRequest(BaseModel):
    sql: str = Field(description="one read-only statement (SELECT/WITH/VALUES/TABLE/EXPLAIN)")
    max_rows: int = Field(1000, ge=1, le=MAX_ROWS, description="at most this many rows back")
    timeout_s: float = Field(10.0, gt=0, le=MAX_TIMEOUT_S, description="statement timeout (s)")


class SqlAnswer(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    truncated: bool = Field(description="there were more rows than max_rows")
    seconds: float


def router(ctx: Context) -> APIRouter:
    r = APIRouter(tags=["data mining"])

    @r.post(
        "/mine/sql",
        response_model=SqlAnswer,
        summary="Run one read-only SQL statement over the data-mining views",
        responses=errors(
            400,
            422,
            e400="the statement writes, is not one query, or reads something else than the "
            "candela.mine_v_* views",
            e422="cancelled: the statement ran longer than timeout_s",
        ),
    )
    def mine_sql(body: SqlRequest) -> SqlAnswer:
        from candela.db.mining import QueryCancelled, QueryRefused, readonly_query

        started = time.monotonic()
        try:
            columns, rows, truncated = readonly_query(
                ctx.dsn, body.sql, timeout_s=body.timeout_s, max_rows=body.max_rows
            )
        except QueryRefused as exc:
            raise BadRequest(str(exc)) from None
        except QueryCancelled as exc:
            raise Unprocessable(str(exc)) from None
        return SqlAnswer(
            columns=columns,
            rows=jsonable_encoder([list(row) for row in rows]),
            row_count=len(rows),
            truncated=truncated,
            seconds=round(time.monotonic() - started, 3),
        )

    return r
