"""``candela kb``: the knowledge base (load a source, ask a ready-made question or a SPARQL file).

The store is the embedded one under ``$CANDELA_HOME/kb`` unless ``CANDELA_KB_ENDPOINT`` names an
external SPARQL 1.1 endpoint. Loads run the ``rdf-etl`` service in this process; a rerun of the
same source and key replaces its named graph.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from candela import cli_console

app = typer.Typer(
    help="The knowledge base: load sources, ask questions (SPARQL).", no_args_is_help=True
)
console = cli_console.console


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"candela kb: {message}", err=True)
    return typer.Exit(code)


def _kb() -> Any:
    from candela.settings import get_settings
    from candela_sdk.kb import open_kb

    return open_kb(get_settings())


@app.command("load")
def load(
    source: Annotated[
        str,
        typer.Argument(
            help="communes | weather-ecad | weather-ghcn | weather-meteofrance | products | "
            "results | landcover-run | corine | rpg | bigearthnet"
        ),
    ],
    files: Annotated[
        list[str], typer.Argument(help="the source's files (results, landcover-run: a run.json)")
    ],
    key: Annotated[
        str | None, typer.Option(help="name of the source's graph (default: file name)")
    ] = None,
    stations: Annotated[
        str | None, typer.Option(help="weather: the publisher's station list")
    ] = None,
    start: Annotated[str | None, typer.Option(help="weather: first day kept (YYYY-MM-DD)")] = None,
    end: Annotated[str | None, typer.Option(help="weather: last day kept (YYYY-MM-DD)")] = None,
) -> None:
    """Map a source to RDF, check it (SHACL) and replace its named graph in the knowledge base."""
    from candela import kb
    from candela_sdk.errors import CandelaError

    try:
        args = kb.load_arguments(source, files, key, stations=stations, start=start, end=end)
        result = kb.load(args)
    except kb.BadParameter as exc:
        raise _fail(str(exc), 2) from None
    except CandelaError as exc:
        raise _fail(str(exc), int(exc.exit_code)) from None
    except ValueError as exc:  # pydantic validation of the service parameters
        raise _fail(str(exc).splitlines()[0] if str(exc) else repr(exc), 2) from None
    console.print(
        f"loaded {result['triples']} triples from {result['rows']} row(s) into {result['graph']} "
        f"({result['knowledge_base']}); skipped {sum(result['skipped'].values())}, "
        f"repaired geometries {result['repaired_geometries']}, rejected {result['rejected_geometries']}"
    )


@app.command("questions")
def list_questions(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The ready-made questions and their parameters."""
    from candela import kb

    qs = kb.questions()
    if as_json:
        typer.echo(json.dumps([q.describe() for q in qs], indent=2))
        return
    table = Table("question", "title", "parameters (default)")
    for q in qs:
        table.add_row(q.name, q.title, ", ".join(f"{p.name}={p.default}" for p in q.params))
    console.print(table)


@app.command("query")
def query(
    file: Annotated[Path | None, typer.Argument(help="a SPARQL query file (.rq)")] = None,
    question: Annotated[
        str | None, typer.Option("--question", "-q", help="a ready-made question")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable)")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | json | csv")] = "table",
) -> None:
    """Ask the knowledge base: a .rq file or a ready-made question (json = SPARQL 1.1 Query
    Results JSON)."""
    from candela import kb
    from candela_sdk.errors import CandelaError

    if (file is None) == (question is None):
        raise _fail("give either a query file or --question NAME", 2)
    if fmt not in ("table", "json", "csv"):
        raise _fail(f"unknown format {fmt!r}: table, json or csv", 2)
    try:
        values: dict[str, str] = {}
        for item in param or []:
            name, sep, value = item.partition("=")
            if not sep:
                raise kb.BadParameter(f"--param wants NAME=VALUE, got {item!r}")
            values[name.strip()] = value.strip()
        if question:
            text = kb.bind(kb.question(question), values)
        else:
            assert file is not None
            if values:
                raise kb.BadParameter("--param applies to --question only")
            text = kb.read_query(file)
        answer = kb.ask(text, _kb())
    except kb.BadParameter as exc:
        raise _fail(str(exc), 2) from None
    except CandelaError as exc:
        raise _fail(str(exc), int(exc.exit_code)) from None
    if answer.kind == "graph":
        sys.stdout.write(answer.body.decode())
        return
    if fmt == "json":
        sys.stdout.write(answer.body.decode() + "\n")
        return
    if fmt == "csv":
        sys.stdout.write(kb.to_csv(answer))
        return
    names, data = kb.rows(answer)
    shown = [n for n in names if n != "wkt"]
    table = Table(*shown)
    for row in data:
        table.add_row(*[_cell(row[n]) for n in shown])
    console.print(table)
    console.print(f"{len(data)} row(s)")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if text.startswith(("https://", "http://", "file://")):
        return text.rstrip("/").rsplit("/", 1)[-1]  # IRIs in full with --format json/csv
    try:
        number = float(text)
    except ValueError:
        return text
    return text if number.is_integer() or "." not in text else f"{number:.2f}"
