#!/usr/bin/env bash
# Creates .venv and installs sagaflow with its pinned dependencies. Wheels come from pip's cache
# outside the clone, so a second clone installs in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
if ! command -v "$py" >/dev/null; then
  echo "bootstrap: $py not found; install Python >= 3.11 or set PYTHON=/path/to/python3.11" >&2; exit 1
fi
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "bootstrap: $("$py" -V) is too old; sagaflow needs Python >= 3.11 (set PYTHON=...)" >&2; exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv with $("$py" -V)"
  "$py" -m venv .venv
fi
echo "==> installing sagaflow and its pinned dependencies into .venv"
.venv/bin/pip install --progress-bar off -q -e '.[dev]' || {
  echo "bootstrap: pip install failed; check network access to PyPI and re-run 'make install'" >&2; exit 1; }
echo "==> .venv ready"
