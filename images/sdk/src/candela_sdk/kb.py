"""The knowledge base: where Candela's RDF lives and how it is written and read (one home).

* embedded (default): a pyoxigraph store on disk under ``$CANDELA_HOME/kb``. Writers open it
  briefly (one process at a time: a busy store is waited for, a bounded time); readers open it
  read-only, so the review app's SPARQL endpoint answers while a load runs;
* external (``CANDELA_KB_ENDPOINT`` and, if different, ``CANDELA_KB_UPDATE_ENDPOINT``): any
  SPARQL 1.1 Query/Update endpoint, reached with bounded retries, then one clear line.

Loads are idempotent: each source (a context file, a workflow run) owns one named graph
(:func:`graph_iri`), and :meth:`KnowledgeBase.replace_graph` drops and refills it in one SPARQL
update (one transaction). Questions read the union of the named graphs (the embedded store's
default graph is that union; an external store must be configured so, e.g. Fuseki's
``tdb2:unionDefaultGraph``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from candela_sdk.errors import CandelaError, InputError
from candela_sdk.settings import SdkSettings, get_settings

log = logging.getLogger(__name__)

ONTOLOGY = "https://w3id.org/candela/ontology#"
IDS = "https://w3id.org/candela/id/"
GRAPHS = "https://w3id.org/candela/graph/"

#: result media types by short name (SELECT/ASK) and graph media types (CONSTRUCT/DESCRIBE)
RESULT_TYPES = {
    "json": "application/sparql-results+json",
    "xml": "application/sparql-results+xml",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
}
GRAPH_TYPES = {
    "nt": "application/n-triples",
    "ttl": "text/turtle",
    "rdf": "application/rdf+xml",
}

_SAFE = re.compile(r"[^A-Za-z0-9._~-]+")


class KnowledgeBaseError(CandelaError):
    """The knowledge base could not be reached or written (one clear line)."""


class QuerySyntaxError(InputError):
    """A SPARQL text that does not parse; the message gives the line and column."""


class UpdateRefused(InputError):
    """An update sent where only queries are accepted."""


def safe_part(text: str) -> str:
    """``text`` as one IRI path segment (letters, digits, ``._~-``; the rest → ``-``)."""
    return _SAFE.sub("-", text).strip("-") or "x"


def graph_iri(source: str, key: str) -> str:
    """The named graph that one source (``communes``, ``weather``, ``run``…) owns for ``key``."""
    return f"{GRAPHS}{safe_part(source)}/{safe_part(key)}"


def is_update(text: str) -> bool:
    """Whether a SPARQL text is an update (after its prologue, comments and strings)."""
    body = re.sub(r"#[^\n]*", " ", text)
    body = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', body)
    body = re.sub(r"<[^>\s]*>", "<>", body)
    body = re.sub(r"(?is)^\s*((BASE\s*<>|PREFIX\s+[\w.-]*:\s*<>)\s*)*", "", body)
    return bool(
        re.match(r"(?i)\s*(INSERT|DELETE|LOAD|CLEAR|CREATE|DROP|COPY|MOVE|ADD|WITH)\b", body)
    )


@dataclass
class Answer:
    """A query's answer, already serialised: ``kind`` is ``select``, ``ask`` or ``graph``."""

    kind: str
    media_type: str
    body: bytes


class KnowledgeBase:
    """The store the settings name. Built by :func:`open_kb`."""

    def replace_graph(self, graph: str, ntriples: str) -> None:
        raise NotImplementedError

    def drop_graph(self, graph: str) -> None:
        raise NotImplementedError

    def query(self, text: str, result_format: str = "json") -> Answer:
        raise NotImplementedError

    def select(self, text: str) -> list[dict[str, Any]]:
        """A SELECT's rows as plain Python values (``None`` where unbound)."""
        import json

        answer = self.query(text, "json")
        doc = json.loads(answer.body)
        if "boolean" in doc:
            return [{"boolean": doc["boolean"]}]
        return [
            {v: _plain(row.get(v)) for v in doc["head"]["vars"]}
            for row in doc["results"]["bindings"]
        ]

    def describe(self) -> str:
        raise NotImplementedError


_NUMERIC = {
    "http://www.w3.org/2001/XMLSchema#" + t
    for t in ("integer", "int", "long", "decimal", "double", "float", "nonNegativeInteger")
}


def _plain(term: dict[str, Any] | None) -> Any:
    if term is None:
        return None
    value = term["value"]
    if term.get("datatype") in _NUMERIC:
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and "integer" in term["datatype"] else number
    return value


def _syntax_error(exc: BaseException, text: str) -> QuerySyntaxError:
    """The parser's message, with the line and column spelled out and the line quoted."""
    message = str(exc)
    m = re.match(r"error at (\d+):(\d+)(?:-\d+:\d+)?:\s*(.*)", message, re.S)
    if not m:
        return QuerySyntaxError(f"SPARQL syntax error: {message}")
    line, column, why = int(m[1]), int(m[2]), m[3].strip()
    lines = text.splitlines()
    quoted = lines[line - 1].strip() if 0 < line <= len(lines) else ""
    return QuerySyntaxError(
        f"SPARQL syntax error at line {line}, column {column}: {why}"
        + (f" (line {line}: {quoted!r})" if quoted else "")
    )


_READERS: dict[Path, tuple[tuple[tuple[str, int, int], ...], Any]] = {}
_READERS_LOCK = threading.Lock()


def _files_stamp(path: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    for entry in os.scandir(path):
        try:
            st = entry.stat()
        except FileNotFoundError:
            continue
        out.append((entry.name, st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


class EmbeddedKnowledgeBase(KnowledgeBase):
    """pyoxigraph on disk. ``wait_s``: how long a writer waits for another writer."""

    def __init__(self, path: Path, wait_s: float = 120.0) -> None:
        self.path = path
        self.wait_s = wait_s

    def describe(self) -> str:
        return f"embedded store {self.path}"

    def _writer(self) -> Any:
        import pyoxigraph as ox

        self.path.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                return ox.Store(str(self.path))
            except OSError as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise KnowledgeBaseError(
                        f"the knowledge base {self.path} cannot be opened for writing: {exc}"
                    ) from None
                time.sleep(0.5)

    def _reader(self) -> Any:
        """A read-only handle, reused while the store's files are unchanged (a read-only
        RocksDB handle does not see later writes, so a load makes the next query reopen it)."""
        import pyoxigraph as ox

        if not (self.path / "CURRENT").exists():
            store = self._writer()  # an empty store, made once
            del store
        stamp = _files_stamp(self.path)
        with _READERS_LOCK:
            cached = _READERS.get(self.path)
            if cached and cached[0] == stamp:
                return cached[1]
            reader = ox.Store.read_only(str(self.path))
            _READERS[self.path] = (stamp, reader)
            return reader

    def replace_graph(self, graph: str, ntriples: str) -> None:
        store = self._writer()
        try:
            store.update(
                f"DROP SILENT GRAPH <{graph}> ;\nINSERT DATA {{ GRAPH <{graph}> {{\n{ntriples}\n}} }}"
            )
            store.flush()
        finally:
            del store

    def bulk_load(self, graph: str, path: Path) -> None:
        """Fast, non-transactional load of an N-Triples file into ``graph`` (benchmarks)."""
        import pyoxigraph as ox

        store = self._writer()
        try:
            store.bulk_load(
                path=str(path), format=ox.RdfFormat.N_TRIPLES, to_graph=ox.NamedNode(graph)
            )
            store.flush()
        finally:
            del store

    def drop_graph(self, graph: str) -> None:
        store = self._writer()
        try:
            store.update(f"DROP SILENT GRAPH <{graph}>")
        finally:
            del store

    def query(self, text: str, result_format: str = "json") -> Answer:
        import pyoxigraph as ox

        if is_update(text):
            raise UpdateRefused("updates are refused here: this is a query interface")
        store = self._reader()
        try:
            result = store.query(text, use_default_graph_as_union=True)
        except SyntaxError as exc:
            raise _syntax_error(exc, text) from None
        if isinstance(result, ox.QueryTriples):
            fmt = {
                "nt": ox.RdfFormat.N_TRIPLES,
                "ttl": ox.RdfFormat.TURTLE,
                "rdf": ox.RdfFormat.RDF_XML,
            }
            short = result_format if result_format in fmt else "nt"
            return Answer("graph", GRAPH_TYPES[short], result.serialize(format=fmt[short]) or b"")
        rfmt = {
            "json": ox.QueryResultsFormat.JSON,
            "xml": ox.QueryResultsFormat.XML,
            "csv": ox.QueryResultsFormat.CSV,
            "tsv": ox.QueryResultsFormat.TSV,
        }
        short = result_format if result_format in rfmt else "json"
        kind = "ask" if isinstance(result, ox.QueryBoolean) else "select"
        return Answer(kind, RESULT_TYPES[short], result.serialize(format=rfmt[short]) or b"")


class RemoteKnowledgeBase(KnowledgeBase):
    """A SPARQL 1.1 Protocol endpoint (query + update), with bounded retries."""

    def __init__(self, query_url: str, update_url: str | None, retries: int = 3) -> None:
        self.query_url = query_url
        self.update_url = update_url or query_url
        self.retries = retries

    def describe(self) -> str:
        return f"SPARQL endpoint {self.query_url}"

    def _send(self, request: urllib.request.Request) -> tuple[str, bytes]:
        last = ""
        for attempt in range(1, self.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return response.headers.get("Content-Type", ""), response.read()
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace").strip().splitlines()
                line = detail[0][:300] if detail else exc.reason
                if exc.code == 400:
                    raise QuerySyntaxError(f"the endpoint refused the request: {line}") from None
                if exc.code < 500:
                    raise KnowledgeBaseError(
                        f"the knowledge base {request.full_url} answered {exc.code}: {line}"
                    ) from None
                last = f"HTTP {exc.code} {line}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
            if attempt < self.retries:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
        raise KnowledgeBaseError(
            f"the knowledge base {request.full_url} is unreachable after {self.retries} "
            f"attempt(s): {last}"
        )

    def replace_graph(self, graph: str, ntriples: str) -> None:
        body = (
            f"DROP SILENT GRAPH <{graph}> ;\nINSERT DATA {{ GRAPH <{graph}> {{\n{ntriples}\n}} }}"
        )
        self._update(body)

    def drop_graph(self, graph: str) -> None:
        self._update(f"DROP SILENT GRAPH <{graph}>")

    def _update(self, text: str) -> None:
        request = urllib.request.Request(
            self.update_url,
            data=text.encode(),
            headers={"Content-Type": "application/sparql-update"},
            method="POST",
        )
        self._send(request)

    def query(self, text: str, result_format: str = "json") -> Answer:
        if is_update(text):
            raise UpdateRefused("updates are refused here: this is a query interface")
        accept = (
            RESULT_TYPES.get(result_format, RESULT_TYPES["json"]) + ", application/n-triples;q=0.5"
        )
        request = urllib.request.Request(
            self.query_url,
            data=urllib.parse.urlencode({"query": text}).encode(),
            headers={"Accept": accept, "Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        media, body = self._send(request)
        media = media.split(";")[0].strip()
        if media in GRAPH_TYPES.values():
            return Answer("graph", media, body)
        kind = "ask" if media.endswith("json") and b'"boolean"' in body[:200] else "select"
        return Answer(kind, media or RESULT_TYPES["json"], body)


def open_kb(settings: SdkSettings | None = None) -> KnowledgeBase:
    """The knowledge base the settings name: the external endpoint, else the embedded store."""
    s = settings or get_settings()
    if s.kb_endpoint:
        return RemoteKnowledgeBase(s.kb_endpoint, s.kb_update_endpoint, s.kb_retries)
    return EmbeddedKnowledgeBase(s.home.expanduser().absolute() / "kb")
