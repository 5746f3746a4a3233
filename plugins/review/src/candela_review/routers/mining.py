"""EO image mining: the labelling page and its JSON API (issue 19).

- ``GET /mine``: the page (search patches by area, dates, dataset or "similar to this one"; a
  session per category; a grid of quicklooks to answer yes / no / skip; the model's progress;
  the retrieved patches on the map; a SQL query box that calls ``POST /mine/sql``, the
  ``mining_sql`` router)
- ``GET /mine/patches``: search (``bbox``, ``start``, ``end``, ``dataset``, ``similar_to``)
- ``GET /mine/patches/{id}/quicklook``: the patch's quicklook PNG
- ``POST /mine/sessions``: open (or reopen) the caller's session for a category
- ``GET /mine/sessions/{id}``: its state: iterations and figures, the batch to answer, retrieved
- ``POST /mine/sessions/{id}/labels``: record answers, refit, ask the next batch
- ``POST /mine/sessions/{id}/annotation``: the category and its patches into the knowledge base

The caller is Airflow's authenticated user (the same dependency as every route of the app);
a session belongs to its user: another user's session answers 404.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from candela.web_errors import BadRequest, NotFound, Unprocessable
from candela_review.web import Context, base_url, errors


class SessionIn(BaseModel):
    category: str = Field(min_length=1, max_length=63)
    bbox: list[float] | None = Field(default=None, min_length=4, max_length=4)
    start: dt.date | None = None
    end: dt.date | None = None
    dataset: str | None = None
    example_patch_id: int | None = None


class LabelIn(BaseModel):
    patch_id: int
    label: Literal["yes", "no", "skip"]


class LabelsIn(BaseModel):
    labels: list[LabelIn] = Field(min_length=1, max_length=500)


def user_name(user: Any) -> str:
    """The login name of Airflow's user object (a plain string in standalone tests)."""
    if isinstance(user, str):
        return user
    for attr in ("get_name", "get_id"):
        fn = getattr(user, attr, None)
        if callable(fn) and fn():
            return str(fn())
    return str(getattr(user, "username", user))


def _jsonable(v: Any) -> Any:
    if isinstance(v, dt.date | dt.datetime):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


def _patch(row: dict[str, Any], base: str) -> dict[str, Any]:
    keep = ("id", "dataset", "product_id", "acquired", "size", "west", "south", "east", "north")
    out = {k: _jsonable(row.get(k)) for k in keep}
    out["footprint"] = row.get("footprint")
    out["quicklook"] = f"{base}/mine/patches/{row['id']}/quicklook"
    return out


def router(ctx: Context, templates: Any, user_dep: Callable[..., Any]) -> APIRouter:
    from candela.db import mining_labels as labels_db
    from candela.mining import sessions

    api = APIRouter(tags=["mining"])

    def caller(user: Any = Depends(user_dep)) -> str:
        return user_name(user)

    def patches_by_id(ids: list[int], base: str) -> list[dict[str, Any]]:
        return [_patch(r, base) for r in labels_db.patch_cards(ctx.dsn, ids)]

    def state(request: Request, session_id: int, user: str) -> dict[str, Any]:
        try:
            session = labels_db.get_session(ctx.dsn, session_id, user)
        except labels_db.NoSession as exc:
            raise NotFound(str(exc)) from None
        its = labels_db.iterations(ctx.dsn, session_id)
        answers = labels_db.current_labels(ctx.dsn, session_id)
        base = base_url(request)
        batch = [p for p in (its[-1]["batch"] if its else []) if p not in answers]
        found = sessions.retrieved(ctx.dsn, session_id, user, limit=200)
        retrieved = patches_by_id([p for p, _ in found], base)
        proba = dict(found)
        for r in retrieved:
            r["p_yes"] = round(proba[r["id"]], 3)
            r["answer"] = answers.get(r["id"])
        return _jsonable(
            {
                "session": {
                    k: session[k]
                    for k in (
                        "id",
                        "username",
                        "category",
                        "search",
                        "example_patch_id",
                        "iteration",
                    )
                },
                "iterations": [{k: v for k, v in i.items() if k != "batch"} for i in its],
                "batch": patches_by_id(batch, base),
                "answered": len([a for a in answers.values() if a != "skip"]),
                "retrieved": retrieved,
            }
        )

    @api.get("/mine", response_class=HTMLResponse)
    def page(request: Request, user: str = Depends(caller)) -> HTMLResponse:
        from candela_review.routers.pages import basemap

        base = base_url(request)
        mine = labels_db.sessions(ctx.dsn, user)
        html = templates.get_template("mining.html").render(
            base=base,
            user=user,
            sessions=[{"id": s["id"], "category": s["category"]} for s in mine],
            data={"base": base, "basemap": basemap(), "user": user},
        )
        return HTMLResponse(html)

    @api.get("/mine/patches", responses=errors(400, 404))
    def search(
        request: Request,
        bbox: str | None = None,
        start: dt.date | None = None,
        end: dt.date | None = None,
        dataset: str | None = None,
        similar_to: int | None = None,
        limit: int = 60,
    ) -> JSONResponse:
        """Patches by area (``W,S,E,N``), dates and dataset, or the ``limit`` nearest to the
        patch ``similar_to`` (features / embedding)."""
        from candela.db import connect, mining

        limit = max(1, min(limit, 500))
        base = base_url(request)
        with connect(ctx.dsn) as conn:
            if similar_to is not None:
                try:
                    near = mining.similar(conn, similar_to, limit)
                except LookupError:
                    raise NotFound(f"no patch {similar_to}") from None
                dist = dict(near)
                out = [p | {"distance": dist[p["id"]]} for p in patches_by_id(list(dist), base)]
                return JSONResponse(_jsonable({"patches": out}))
            box = None
            if bbox:
                try:
                    box = tuple(float(v) for v in bbox.split(","))
                except ValueError:
                    box = ()
                if len(box) != 4:
                    raise BadRequest(f"bbox {bbox!r}: four numbers W,S,E,N")
            try:
                rows_ = mining.search_patches(
                    conn, bbox=box, start=start, end=end, dataset=dataset, limit=limit
                )
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
        return JSONResponse(_jsonable({"patches": [_patch(r, base) for r in rows_]}))

    @api.get(
        "/mine/patches/{patch_id}/quicklook",
        response_class=Response,
        responses={**errors(404), 200: {"content": {"image/png": {}}}},
    )
    def quicklook(patch_id: int) -> Response:
        from candela_sdk import storage

        rows = labels_db.patch_cards(ctx.dsn, [patch_id])
        if not rows:
            raise NotFound(f"no patch {patch_id}")
        try:
            data = storage.read_bytes(rows[0]["quicklook_uri"])
        except (FileNotFoundError, OSError) as exc:
            raise NotFound(f"the quicklook of patch {patch_id} is gone: {exc}") from None
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @api.post("/mine/sessions", responses=errors(400, 404, 422))
    def open_session(
        request: Request, body: SessionIn, user: str = Depends(caller)
    ) -> JSONResponse:
        search = {
            k: v
            for k, v in {
                "bbox": body.bbox,
                "start": body.start.isoformat() if body.start else None,
                "end": body.end.isoformat() if body.end else None,
                "dataset": body.dataset,
            }.items()
            if v
        }
        try:
            session = sessions.start(
                ctx.dsn,
                user,
                body.category.strip(),
                search=search,
                example_patch_id=body.example_patch_id,
            )
        except labels_db.UnknownPatches as exc:
            raise NotFound(str(exc)) from None
        except sessions.EmptyPool as exc:
            raise Unprocessable(str(exc)) from None
        except Exception as exc:  # the category's CHECK constraint
            if type(exc).__name__ == "CheckViolation":
                raise BadRequest(
                    f"category {body.category!r}: letters, digits, space, '-' or '_'"
                ) from None
            raise
        if not labels_db.iterations(ctx.dsn, session["id"]):
            _next(session["id"], user)
        return JSONResponse(state(request, session["id"], user), status_code=201)

    def _next(session_id: int, user: str) -> None:
        try:
            sessions.next_batch(ctx.dsn, session_id, user)
        except labels_db.NoSession as exc:
            raise NotFound(str(exc)) from None
        except sessions.EmptyPool as exc:
            raise Unprocessable(str(exc)) from None

    @api.get("/mine/sessions/{session_id}", responses=errors(404))
    def get_session(request: Request, session_id: int, user: str = Depends(caller)) -> JSONResponse:
        return JSONResponse(state(request, session_id, user))

    @api.post("/mine/sessions/{session_id}/labels", responses=errors(400, 404, 422))
    def add_labels(
        request: Request, session_id: int, body: LabelsIn, user: str = Depends(caller)
    ) -> JSONResponse:
        """Record the answers (all or none), refit, ask the next batch."""
        try:
            labels_db.add_labels(
                ctx.dsn, session_id, user, [(x.patch_id, x.label) for x in body.labels]
            )
        except (labels_db.NoSession, labels_db.UnknownPatches) as exc:
            raise NotFound(str(exc)) from None
        except labels_db.BadLabel as exc:
            raise BadRequest(str(exc)) from None
        _next(session_id, user)
        return JSONResponse(state(request, session_id, user))

    @api.post("/mine/sessions/{session_id}/annotation", responses=errors(404))
    def annotate(session_id: int, user: str = Depends(caller)) -> JSONResponse:
        """The learned category as a class and its retrieved patches as members, in the
        knowledge base (its own named graph per session)."""
        from candela.mining import annotate as ann

        try:
            session = labels_db.get_session(ctx.dsn, session_id, user)
        except labels_db.NoSession as exc:
            raise NotFound(str(exc)) from None
        return JSONResponse(_jsonable(ann.export(ctx.settings, ctx.dsn, session)))

    return api
