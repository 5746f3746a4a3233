"""``candela-fusion``: subcommands ``classify`` (the service contract), ``train``, ``evaluate``,
``models``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: candela-fusion {classify,train,evaluate,models} [options]

  classify   land cover from an S2 stack + an S1 scene (the pipeline step; --help for options)
  train      train an s2, s1 or fused network on a patch store (tf.data)
  evaluate   S2-only / S1-only / fused side by side under 0-90 % real clouds, held out
  models     list the fusion models (built-in and registered)
"""


def dispatch(argv: Sequence[str]) -> int:
    from candela_fusion.service import EVALUATE, SERVICE, TRAIN
    from candela_sdk.contract import main as contract_main

    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], list(argv[1:])
    services = {"classify": SERVICE, "train": TRAIN, "evaluate": EVALUATE}
    if command in services:
        return contract_main(services[command], rest)
    if command == "models":
        from candela_fusion.models import available

        for name in available():
            sys.stdout.write(f"{name}\n")
        return 0
    sys.stderr.write(f"candela-fusion: unknown command {command!r}\n{USAGE}")
    return 2


def main() -> None:
    raise SystemExit(dispatch(sys.argv[1:]))
