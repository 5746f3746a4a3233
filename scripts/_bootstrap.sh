# Sourced by scripts/demo and scripts/test: installs what Candela needs, idempotently.
# Needs only Python 3.11 and network access to PyPI (and Debian's archive for apt packages).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

apt_install() {
  # apt packages some features need; installed only when missing and when we may.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

PYTHON="${CANDELA_PYTHON:-$(command -v python3.11 || command -v python3)}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "Candela needs Python 3.11 ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi

if ! command -v uv >/dev/null 2>&1; then
  if [ ! -x "$HOME/.local/bin/uv" ]; then
    say "installing uv (from PyPI)"
    "$PYTHON" -m pip install --quiet --user uv 2>/dev/null \
      || "$PYTHON" -m pip install --quiet --user --break-system-packages uv
  fi
  export PATH="$HOME/.local/bin:$PATH"
fi

say "installing Candela and its services (uv sync)"
t0=$(date +%s)
uv sync --all-packages --frozen --python "$PYTHON" --quiet
say "environment ready in $(( $(date +%s) - t0 )) s"
export PATH="$REPO/.venv/bin:$PATH"
