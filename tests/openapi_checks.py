"""Checks of an OpenAPI document shared by the web apps' tests: every ``$ref`` is local and
resolves (an offline client can read the document), and an operation's error answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` in the document."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def assert_self_contained(doc: dict[str, Any]) -> None:
    """No remote ``$ref``; each local one points at something in the document."""
    found = list(refs(doc))
    remote = sorted({r for r in found if not r.startswith("#/")})
    assert not remote, f"remote $ref: {remote}"
    for r in set(found):
        node: Any = doc
        for part in r[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            assert isinstance(node, dict) and part in node, f"$ref {r} does not resolve"
            node = node[part]


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def documented(doc: dict[str, Any], path: str, method: str, status: int) -> set[str]:
    """The content types the document lists for ``status`` of an operation (KeyError: none)."""
    response = doc["paths"][path][method]["responses"][str(status)]
    return set(response.get("content", {}))
