"""``candela-search``: the service contract's CLI plus ``--format featurecollection``.

Everything but ``--format`` is the contract's (:func:`candela_sdk.contract.main`): the flags come
from :class:`~candela_search.service.SearchParams`, the result JSON is the last stdout line and
goes to ``$CANDELA_RESULT_PATH``. With ``--format featurecollection`` the last stdout line is the
items as a GeoJSON FeatureCollection instead (the result file keeps the contract's form); errors
print the contract's error result either way.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Sequence

from candela_sdk import contract
from candela_search.service import SERVICE

FORMATS = ("result", "featurecollection")


def _split_format(argv: list[str]) -> tuple[str, list[str]]:
    fmt = "result"
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--format":
            if i + 1 >= len(argv):
                raise SystemExit(_bad_format("--format needs a value"))
            fmt = argv[i + 1]
            i += 2
            continue
        if arg.startswith("--format="):
            fmt = arg.split("=", 1)[1]
            i += 1
            continue
        rest.append(arg)
        i += 1
    if fmt not in FORMATS:
        raise SystemExit(_bad_format(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}"))
    return fmt, rest


def _bad_format(message: str) -> int:
    print(f"{SERVICE.command}: error: {message}", file=sys.stderr)
    return 2


def run(argv: Sequence[str] | None = None) -> int:
    """The CLI as a function (exit code returned), for tests and embedding."""
    fmt, rest = _split_format(list(sys.argv[1:] if argv is None else argv))
    if fmt == "result" or any(a in ("-h", "--help") for a in rest):
        return contract.main(SERVICE, rest)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = contract.main(SERVICE, rest)
    lines = buffer.getvalue().splitlines()
    last = lines[-1] if lines else "{}"
    if code == 0:
        from candela_search.core import as_feature_collection

        last = json.dumps(as_feature_collection(json.loads(last)), sort_keys=True)
    sys.stdout.write("\n".join([*lines[:-1], last]) + "\n")
    sys.stdout.flush()
    return code


def main() -> None:
    raise SystemExit(run())
