"""Operations: ``/metrics`` (Prometheus text of the monitoring tables, for an operator's
Grafana), ``/usage`` (per-user consumption; JSON or a page) and ``/scaling`` (the autoscaler's
decisions and what came of them; JSON or a page). Everything is read from the platform's tables
(:mod:`candela.metrics`, :mod:`candela.db.metrics`, :mod:`candela.db.scaling`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from candela.web_errors import BadRequest
from candela_review.web import Context, base_url, errors, wants_html


def router(ctx: Context, templates: Any) -> APIRouter:
    api = APIRouter(tags=["operations"])

    @api.get("/metrics")
    def prometheus() -> Response:
        from candela.metrics import CONTENT_TYPE, exposition

        return Response(exposition(ctx.dsn), media_type=CONTENT_TYPE)

    @api.get("/usage", response_model=None, responses=errors(400))
    def usage(request: Request, days: int = 7, user: str | None = None) -> Response:
        from candela.db.metrics import usage as usage_rows
        from candela.usage import summary

        if not 1 <= days <= 366:
            raise BadRequest("days must be between 1 and 366")
        since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        rows = usage_rows(ctx.dsn, since, user)
        totals = summary(rows)
        if not wants_html(request):
            return JSONResponse(
                {"since": since.isoformat(), "rows": _jsonable(rows), "totals": totals}
            )
        html = templates.get_template("ops_usage.html").render(
            base=base_url(request), rows=rows, totals=totals, since=since, days=days
        )
        return HTMLResponse(html)

    @api.get("/scaling", response_model=None)
    def scaling(request: Request, limit: int = 100, changes: bool = False) -> Response:
        from candela.db.scaling import recent

        rows = recent(ctx.dsn, max(1, min(limit, 1000)), changes)
        if not wants_html(request):
            return JSONResponse(_jsonable(rows))
        html = templates.get_template("ops_scaling.html").render(
            base=base_url(request), rows=rows, changes=changes
        )
        return HTMLResponse(html)

    return api


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: (v.isoformat() if isinstance(v, dt.date | dt.datetime) else v) for k, v in r.items()}
        for r in rows
    ]
