"""``candela-changedetect``: subcommands ``detect`` (the service contract) and ``evaluate``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: candela-changedetect {detect,evaluate,models} [options]

  detect     change probability + mask from two stacks (the pipeline step; --help for options)
  evaluate   precision/recall/F1/IoU/kappa of a change mask against labels
  models     list the available change models (built-in and registered)
"""


def dispatch(argv: Sequence[str]) -> int:
    from candela_changedetect.service import EVALUATE, SERVICE
    from candela_sdk.contract import main as contract_main

    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], list(argv[1:])
    if command == "detect":
        return contract_main(SERVICE, rest)
    if command == "evaluate":
        return contract_main(EVALUATE, rest)
    if command == "models":
        from candela_changedetect.models import available_models, model_class

        for name in available_models():
            doc = (
                model_class(name).__module__ and sys.modules[model_class(name).__module__].__doc__
            ) or ""
            sys.stdout.write(f"{name}\t{doc.strip().splitlines()[0] if doc else ''}\n")
        from candela_changedetect import registry

        for name in registry.names():
            sys.stdout.write(f"{name}\tregistered encoder ({registry.registry_root()})\n")
        return 0
    sys.stderr.write(f"candela-changedetect: unknown command {command!r}\n{USAGE}")
    return 2


def main() -> None:
    raise SystemExit(dispatch(sys.argv[1:]))
