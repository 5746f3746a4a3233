"""``candela models``: the change-detection model registry (list, show, register).

The files (``model.keras`` + ``metadata.json``) go under the registry root — the
``CANDELA_MODEL_REGISTRY`` folder/S3 prefix, else ``<storage root>/models`` — where the
changedetect service finds them by name (``--model NAME``); the records are mirrored in the
platform table ``candela.models`` (migration 0003).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from candela import cli_console

log = logging.getLogger(__name__)

app = typer.Typer(help="Change-detection models: the model registry.", no_args_is_help=True)
console = cli_console.console


def _dsn() -> str:
    from candela.cli import platform_dsn

    return platform_dsn()


def registry_root() -> str:
    """The registry folder: ``CANDELA_MODEL_REGISTRY`` or ``<storage root>/models``."""
    from candela.settings import get_settings
    from candela_sdk.registry import registry_root as root_of

    return root_of(get_settings().storage)


def _json_option(text: str | None, flag: str) -> dict[str, Any]:
    if not text:
        return {}
    from candela.cli import fail
    from candela_sdk.errors import InputError
    from candela_sdk.jsonarg import read_json_arg

    try:
        return dict(read_json_arg(text, flag, obj=True))
    except InputError as exc:
        raise fail(str(exc), 2) from None


@app.command("register")
def register(
    name: Annotated[str, typer.Argument(help="model name (lower case), used as --model NAME")],
    file: Annotated[Path, typer.Argument(help="the trained .keras file (Candela encoder)")],
    bands: Annotated[
        str, typer.Option(help="input bands in order, comma-separated, e.g. B02,B03,B04,…")
    ],
    description: Annotated[str, typer.Option(help="one line about the model")] = "",
    training: Annotated[
        str | None, typer.Option(help="training data/parameters: JSON or @file.json")
    ] = None,
    metrics: Annotated[str | None, typer.Option(help="metrics: JSON or @file.json")] = None,
    options: Annotated[
        str | None, typer.Option(help="default encoder options (e.g. fine-tuning epochs): JSON")
    ] = None,
) -> None:
    """Register a trained encoder: copy it into the registry and record it in the database."""
    from candela.cli import fail
    from candela_changedetect import registry
    from candela_sdk.errors import CandelaError

    band_list = [b.strip() for b in bands.split(",") if b.strip()]
    dsn = _dsn()
    try:
        record = registry.register(
            name,
            file,
            bands=band_list,
            training=_json_option(training, "--training"),
            metrics=_json_option(metrics, "--metrics"),
            options=_json_option(options, "--options"),
            description=description,
            root=registry_root(),
        )
    except CandelaError as exc:
        raise fail(str(exc), int(exc.exit_code)) from None
    from candela.db.models import record_model

    record_model(dsn, record)
    console.print(
        f"registered {record['name']} sha256 {record['sha256'][:12]} at {record['uri']}",
        highlight=False,
    )


@app.command("list")
def list_cmd() -> None:
    """List the registered models."""
    from candela.db.models import list_models

    rows = list_models(_dsn())
    t = Table("name", "architecture", "bands", "sha256", "size", "registered", "description")
    for r in rows:
        t.add_row(
            r["name"],
            r["architecture"],
            ",".join(r["bands"]),
            r["sha256"][:12],
            f"{r['size_bytes'] / 1024:.0f} KiB",
            r["registered_at"].isoformat(timespec="seconds"),
            r["description"],
        )
    out = Console()  # width from COLUMNS at call time
    out.print(t)
    if not rows:
        from candela_sdk.registry import builtin_names

        out.print(f"no registered model (built-in: {', '.join(builtin_names())})")


@app.command("show")
def show(name: Annotated[str, typer.Argument(help="registered model name")]) -> None:
    """Print a registered model's metadata record (JSON)."""
    from candela.cli import fail
    from candela.db.models import get_model
    from candela_sdk.registry import UnknownModel, find_model

    row = get_model(_dsn(), name)
    if row is None:
        try:  # the one rule: is it known at all, and where?
            found = find_model(name, registry_root())
        except UnknownModel as exc:
            raise fail(str(exc), 2) from None
        raise fail(f"model {name!r} is {found.kind}: it has no registry record", 2)
    out = dict(row["metadata"])
    out["registered_at"] = row["registered_at"].isoformat()
    console.print_json(json.dumps(out))
