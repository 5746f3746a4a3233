"""The knowledge base from the platform's side: ready-made questions, loads, answers.

The store itself (embedded pyoxigraph under ``$CANDELA_HOME/kb`` or an external SPARQL 1.1
endpoint) is :mod:`candela_sdk.kb`; the mapping of sources to RDF is the ``rdf-etl`` service.
This module holds the ready-made questions (``questions/*.rq``: SPARQL with a header that declares
typed parameters), binds their parameters, runs a load through the service declaration, and
turns answers into rows, CSV or SPARQL 1.1 Query Results JSON. Used by ``candela kb`` and by the
review app's question page.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from candela_sdk.kb import Answer, KnowledgeBase, QuerySyntaxError, open_kb

QUESTIONS_DIR = Path(__file__).resolve().parent / "questions"
#: sources ``candela kb load`` accepts (``results`` takes a run's ``run.json``)
SOURCES = (
    "communes",
    "weather-ecad",
    "weather-ghcn",
    "weather-meteofrance",
    "products",
    "results",
    "landcover-run",
    "corine",
    "rpg",
    "bigearthnet",
)
_TYPES = ("decimal", "integer", "date", "string")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class BadParameter(ValueError):
    """A question parameter that is unknown or does not fit its type."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: str
    help: str


@dataclass
class Question:
    name: str
    title: str
    description: str
    text: str
    params: list[Parameter] = field(default_factory=list)
    computed: list[tuple[str, str, str]] = field(default_factory=list)  # (name, date, days)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "parameters": [p.__dict__ for p in self.params],
        }


def parse_question(name: str, text: str) -> Question:
    q = Question(name=name, title=name, description="", text=text)
    for line in text.splitlines():
        m = re.match(r"#\s*(title|description|param|computed):\s*(.*)$", line)
        if not m:
            if line.strip() and not line.startswith("#"):
                break
            continue
        kind, value = m.groups()
        if kind == "title":
            q.title = value.strip()
        elif kind == "description":
            q.description = value.strip()
        elif kind == "param":
            head, _, help_text = value.partition("|")
            parts = head.split()
            if len(parts) != 3 or parts[1] not in _TYPES or not _NAME.match(parts[0]):
                raise ValueError(f"question {name}: bad parameter line: {line}")
            q.params.append(Parameter(parts[0], parts[1], parts[2], help_text.strip()))
        else:
            cm = re.fullmatch(r"\s*(\w+)\s*=\s*(\w+)\s*-\s*(\w+)\s*", value)
            if not cm:
                raise ValueError(f"question {name}: bad computed line: {line}")
            q.computed.append((cm[1], cm[2], cm[3]))
    return q


def questions() -> list[Question]:
    return [
        parse_question(p.stem, p.read_text(encoding="utf-8"))
        for p in sorted(QUESTIONS_DIR.glob("*.rq"))
    ]


def question(name: str) -> Question:
    path = QUESTIONS_DIR / f"{name}.rq"
    if not _NAME.match(name.replace("-", "_")) or not path.is_file():
        known = ", ".join(q.name for q in questions())
        raise BadParameter(f"no question named {name!r} (known: {known})")
    return parse_question(name, path.read_text(encoding="utf-8"))


def _literal(p: Parameter, raw: str) -> tuple[str, Any]:
    """The SPARQL literal of a parameter value, and its Python value."""
    try:
        if p.type == "decimal":
            number = float(raw)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError
            return repr(number), number
        if p.type == "integer":
            integer = int(raw)
            return str(integer), integer
        if p.type == "date":
            day = dt.date.fromisoformat(raw)
            return f'"{day.isoformat()}"^^xsd:date', day
    except ValueError:
        raise BadParameter(f"parameter {p.name} must be a {p.type}: {raw!r}") from None
    return json.dumps(raw), raw  # a string: JSON escaping is valid SPARQL escaping


def bind(q: Question, values: dict[str, str] | None = None) -> str:
    """The question's SPARQL text with each ``{{name}}`` replaced by a typed literal."""
    values = dict(values or {})
    unknown = set(values) - {p.name for p in q.params}
    if unknown:
        raise BadParameter(
            f"question {q.name} has no parameter {', '.join(sorted(unknown))} "
            f"(it has: {', '.join(p.name for p in q.params) or 'none'})"
        )
    literals: dict[str, str] = {}
    typed: dict[str, Any] = {}
    for p in q.params:
        literals[p.name], typed[p.name] = _literal(p, str(values.get(p.name, p.default)))
    for name, day, days in q.computed:
        value = typed[day] - dt.timedelta(days=int(typed[days]))
        literals[name] = f'"{value.isoformat()}"^^xsd:date'
    text = q.text
    for name, literal in literals.items():
        text = text.replace("{{" + name + "}}", literal)
    left = re.findall(r"\{\{(\w+)\}\}", text)
    if left:
        raise BadParameter(f"question {q.name} uses undeclared parameters: {', '.join(left)}")
    if "xsd:date" in text and "PREFIX xsd:" not in text:
        text = "PREFIX xsd: <http://www.w3.org/2001/XMLSchema#>\n" + text
    return text


def ask(text: str, kb: KnowledgeBase | None = None, result_format: str = "json") -> Answer:
    """Run a query (never an update) on the knowledge base."""
    return (kb or open_kb()).query(text, result_format)


def rows(answer: Answer) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and rows (plain values) of a SPARQL JSON answer."""
    doc = json.loads(answer.body)
    if "boolean" in doc:
        return ["boolean"], [{"boolean": doc["boolean"]}]
    names = list(doc["head"]["vars"])
    out = [
        {v: (b[v]["value"] if v in b else None) for v in names} for b in doc["results"]["bindings"]
    ]
    return names, out


def to_csv(answer: Answer) -> str:
    names, data = rows(answer)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(data)
    return buf.getvalue()


def read_query(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadParameter(f"cannot read the query file {path}: {exc}") from None


def load_arguments(
    source: str, files: list[str], key: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The ``rdf-etl`` service's arguments for ``candela kb load SOURCE FILE…``; a run's
    ``run.json`` gives the results source its items, workflow, run id and output key."""
    from candela_sdk import storage

    if source not in SOURCES:
        raise BadParameter(f"unknown source {source!r} (known: {', '.join(SOURCES)})")
    args: dict[str, Any] = {"source": source, "inputs": [storage.to_uri(f) for f in files]}
    if source in ("results", "landcover-run"):
        if len(files) != 1:
            raise BadParameter(f"source {source} takes one run.json (the run summary)")
        listed = "results" if source == "results" else "landcover"
        try:
            summary = json.loads(storage.read_text(args["inputs"][0]))
            args.update(
                inputs=[r["item"] for r in summary[listed]],
                workflow=summary["workflow"],
                run_id=summary["run_id"],
                output_key=summary["output_key"],
            )
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise BadParameter(f"{files[0]} is not a run summary (run.json): {exc}") from None
        if not args["inputs"]:
            raise BadParameter(f"{files[0]}: the run published no {listed} item")
    if key:
        args["key"] = key
    args.update({k: v for k, v in extra.items() if v is not None})
    return args


_DATA = Path(__file__).resolve().parents[2] / "data"
SAMPLE_CONTEXT = [
    {"source": "communes", "inputs": ["context/admin/communes-33-gironde.geojson"]},
    {"source": "weather-ecad", "inputs": ["weather/ecad-bordeaux-merignac/RR_STAID000034.txt"]},
]


def context_jobs(
    sources: list[dict[str, Any]] | None = None, settings: Any = None
) -> list[dict[str, Any]]:
    """The ``rdf-etl`` jobs of the context sources: ``sources`` (the DAG's parameter), else the
    JSON list in ``CANDELA_KB_CONTEXT``, else the samples in the repository's ``data/``.
    Each entry is the service's arguments (``source``, ``inputs``, optional ``key``…)."""
    from candela.settings import get_settings
    from candela_sdk import storage

    if not sources:
        s = settings or get_settings()
        if s.kb_context:
            try:
                sources = json.loads(storage.read_text(s.kb_context))
            except (OSError, json.JSONDecodeError) as exc:
                raise BadParameter(f"CANDELA_KB_CONTEXT {s.kb_context}: {exc}") from None
        elif _DATA.is_dir():
            sources = [
                {**entry, "inputs": [str(_DATA / p) for p in entry["inputs"]]}
                for entry in SAMPLE_CONTEXT
                if all((_DATA / p).is_file() for p in entry["inputs"])
            ]
    jobs = []
    for entry in sources or []:
        if (
            not isinstance(entry, dict)
            or entry.get("source") not in SOURCES
            or not entry.get("inputs")
        ):
            raise BadParameter(f"a context source needs a known 'source' and 'inputs': {entry!r}")
        if entry["source"] == "results":
            raise BadParameter("results are loaded by their run (load_rdf), not as context")
        jobs.append({**entry, "inputs": [storage.to_uri(i) for i in entry["inputs"]]})
    return jobs


def load(arguments: dict[str, Any]) -> dict[str, Any]:
    """Run the ``rdf-etl`` service in this process (its declaration from the catalogue)."""
    from candela_sdk.contract import execute
    from candela_sdk.services import get_service

    service = get_service("rdf-etl")
    return execute(service, service.params.model_validate(arguments))


__all__ = [
    "Answer",
    "BadParameter",
    "QuerySyntaxError",
    "Question",
    "ask",
    "bind",
    "load",
    "question",
    "questions",
]
