#!/bin/sh
# Installs the platform into the virtual environment VENV from the repository at SRC: the
# locked third-party wheels of the `candela` package (and of its extra EXTRAS, if given), the
# SDK, the plugin packages and the services' declarations (without their dependencies: their
# libraries run in their own images), then the platform itself, editable, so that its paths
# relative to the repository (dags/, data/, ontology/) stay those of SRC.
# Used by infra/docker/platform.Dockerfile, and by tests/test_images.py on this machine to
# check what the image holds.
#   infra/docker/install-platform.sh SRC VENV [EXTRAS]
set -eu
src="$1"
venv="$2"
extras="${3:-}"
req="$(mktemp)"
uv export --directory "$src" --frozen --no-dev --no-emit-workspace --package candela \
    ${extras:+--extra "$extras"} --quiet -o "$req"
uv venv --quiet --python python3.11 "$venv"
uv pip install --quiet --python "$venv/bin/python" --compile-bytecode -r "$req"
rm -f "$req"
# every workspace member but the platform: SDK, services (declarations only), plugins
set --
for member in "$src"/images/*/ "$src"/plugins/*/; do
    [ -f "$member/pyproject.toml" ] && set -- "$@" "$member"
done
uv pip install --quiet --python "$venv/bin/python" --compile-bytecode --no-deps "$@"
uv pip install --quiet --python "$venv/bin/python" --no-deps --editable "$src"
