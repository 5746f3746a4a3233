"""``JSON`` or ``@file.json`` command-line values: the services' structured flags (``--aoi``…)
and the platform's (``--conf``, ``--products``, ``--training``…)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from candela_sdk.errors import InputError


def read_json_arg(value: str, flag: str = "", *, obj: bool = False) -> Any:
    """Parse ``value`` as JSON, or the file it names after ``@``; one-line ``InputError``
    naming ``flag`` (if given) on a missing file, invalid JSON, or (``obj``) a value that is not
    an object."""
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise InputError(f"{flag} file not found: {path}".lstrip())
        text = path.read_text()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise InputError(
            f"{flag} is not valid JSON: {where}" if flag else f"not valid JSON: {where}"
        ) from None
    if obj and not isinstance(parsed, dict):
        raise InputError(f'{flag} must be a JSON object, e.g. \'{{"model": "cva"}}\'')
    return parsed
