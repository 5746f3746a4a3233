"""The knowledge base on the web: a read-only SPARQL 1.1 Protocol endpoint and the question page.

- ``/sparql``: SPARQL 1.1 Protocol, query operation only (GET ``?query=``, POST form
  ``query=``, POST ``application/sparql-query``); answers in the format the ``Accept`` header asks
  for (SPARQL Results JSON by default, XML, CSV, TSV; N-Triples/Turtle for CONSTRUCT/DESCRIBE).
  Updates are refused (400), a syntax error answers 400 with its line and column. The default
  graph is the union of the named graphs; ``default-graph-uri``/``named-graph-uri`` are refused.
- ``/questions``: the ready-made questions (``candela.kb``) with a form for their parameters;
  ``/questions/{name}``: the answer as a table and on the map, each row linked to its run's
  review page; a free SPARQL editor (YASGUI, vendored) queries ``/sparql``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from candela.web_errors import BadRequest, NotFound, Unavailable
from candela_review.web import Context, base_url, errors

SELECT_TYPES = {
    "application/sparql-results+json": "json",
    "application/json": "json",
    "application/sparql-results+xml": "xml",
    "application/xml": "xml",
    "text/csv": "csv",
    "text/tab-separated-values": "tsv",
}
GRAPH_TYPES = {"application/n-triples": "nt", "text/turtle": "ttl", "application/rdf+xml": "rdf"}
ID_RUN = "https://w3id.org/candela/id/run/"


def _accept(request: Request) -> tuple[str, str]:
    """The SELECT/ASK format and the CONSTRUCT format the client prefers."""
    select, graph = "json", "nt"
    best_select = best_graph = -1.0
    for part in request.headers.get("accept", "").split(","):
        media, *opts = [p.strip() for p in part.split(";")]
        q = 1.0
        for o in opts:
            if o.startswith("q="):
                try:
                    q = float(o[2:])
                except ValueError:
                    q = 0.0
        if media in SELECT_TYPES and q > best_select:
            select, best_select = SELECT_TYPES[media], q
        if media in GRAPH_TYPES and q > best_graph:
            graph, best_graph = GRAPH_TYPES[media], q
    return select, graph


def _run_query(text: str, result_format: str, graph_format: str) -> Any:
    from candela import kb
    from candela_sdk.kb import KnowledgeBaseError, QuerySyntaxError, UpdateRefused

    try:
        answer = kb.ask(text, result_format=result_format)
        if answer.kind == "graph" and graph_format != "nt":
            answer = kb.ask(text, result_format=graph_format)
    except UpdateRefused:
        raise BadRequest(
            "this SPARQL endpoint is read-only: updates are refused (load data with "
            "`candela kb load` or the pipeline)"
        ) from None
    except QuerySyntaxError as exc:
        raise BadRequest(str(exc)) from None
    except KnowledgeBaseError as exc:
        raise Unavailable(str(exc)) from None
    return answer


def _wkt_feature(wkt: str, props: dict[str, Any]) -> dict[str, Any] | None:
    import re

    from shapely import wkt as shapely_wkt
    from shapely.geometry import mapping

    try:
        geom = shapely_wkt.loads(re.sub(r"^\s*<[^>]*>\s*", "", wkt))
    except Exception:
        return None
    return {"type": "Feature", "geometry": mapping(geom), "properties": props}


def _run_link(base: str, value: str | None, run_ids: dict[str, str]) -> str | None:
    if not value or not value.startswith(ID_RUN):
        return None
    workflow = value[len(ID_RUN) :].split("/", 1)[0]
    run_id = run_ids.get(value)
    if not run_id:
        return None
    return f"{base}/runs/{quote(workflow, safe='')}/{quote(run_id, safe='')}"


def _number(value: str | None) -> Any:
    """A decimal literal as a float (shown rounded); codes, dates and IRIs stay text."""
    if value and "." in value and not value.startswith(("http", "file:")):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _run_ids() -> dict[str, str]:
    from candela import kb

    try:
        _, rows = kb.rows(
            kb.ask(
                "PREFIX cdl: <https://w3id.org/candela/ontology#>\n"
                "SELECT ?run ?id WHERE { ?run a cdl:WorkflowRun ; cdl:runId ?id }"
            )
        )
    except Exception:
        return {}
    return {r["run"]: r["id"] for r in rows}


def router(ctx: Context, env: Any) -> APIRouter:
    api = APIRouter(tags=["knowledge base"])

    async def _sparql(request: Request) -> Response:
        params = dict(request.query_params)
        text: str | None = params.get("query")
        if request.method == "POST":
            ctype = request.headers.get("content-type", "").split(";")[0].strip()
            body = await request.body()
            if ctype == "application/sparql-update":
                raise BadRequest("this SPARQL endpoint is read-only: updates are refused")
            if ctype == "application/sparql-query":
                text = body.decode("utf-8", "replace")
            elif ctype == "application/x-www-form-urlencoded":
                form = await request.form()
                params.update({k: str(v) for k, v in form.items()})
                text = params.get("query")
        if "update" in params:
            raise BadRequest("this SPARQL endpoint is read-only: updates are refused")
        if "default-graph-uri" in params or "named-graph-uri" in params:
            raise BadRequest(
                "default-graph-uri/named-graph-uri are not supported: the default graph is the "
                "union of all named graphs (use GRAPH in the query)"
            )
        if not text:
            raise BadRequest("no query: send ?query=… (SPARQL 1.1 Protocol)")
        select, graph = _accept(request)
        answer = _run_query(text, select, graph)
        return Response(answer.body, media_type=answer.media_type)

    api.add_api_route(
        "/sparql", _sparql, methods=["GET", "POST"], name="sparql", responses=errors(400)
    )

    @api.get("/questions", response_class=HTMLResponse)
    def question_list(request: Request) -> HTMLResponse:
        from candela import kb

        html = env.get_template("questions.html").render(
            base=base_url(request), questions=kb.questions(), question=None, answer=None
        )
        return HTMLResponse(html)

    @api.get("/questions/{name}", response_model=None, responses=errors(400, 404))
    def ask_question(request: Request, name: str) -> Response:
        from candela import kb

        try:
            q = kb.question(name)
        except kb.BadParameter as exc:
            raise NotFound(str(exc)) from None
        values = {k: v for k, v in request.query_params.items() if k != "format"}
        try:
            text = kb.bind(q, values)
        except kb.BadParameter as exc:
            raise BadRequest(str(exc)) from None
        answer = _run_query(text, "json", "nt")
        if request.query_params.get("format") == "json":
            return Response(answer.body, media_type=answer.media_type)
        base = base_url(request)
        names, rows = kb.rows(answer)
        run_ids = _run_ids()
        features = []
        table = []
        for i, row in enumerate(rows):
            link = next(
                (_run_link(base, v, run_ids) for v in row.values() if _run_link(base, v, run_ids)),
                None,
            )
            cells = {k: _number(v) for k, v in row.items() if k != "wkt"}
            table.append({"cells": cells, "run_link": link, "index": i})
            if row.get("wkt"):
                label = str(
                    next((row[k] for k in ("name", "station_name", "area") if row.get(k)), i)
                )
                feature = _wkt_feature(row["wkt"], {"index": i, "label": label})
                if feature:
                    features.append(feature)
        html = env.get_template("questions.html").render(
            base=base,
            questions=kb.questions(),
            question=q,
            values={p.name: values.get(p.name, p.default) for p in q.params},
            columns=[n for n in names if n != "wkt"],
            table=table,
            features=json.dumps({"type": "FeatureCollection", "features": features}),
            sparql=text,
            answer=True,
        )
        return HTMLResponse(html)

    return api
