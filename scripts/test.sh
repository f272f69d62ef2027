#!/usr/bin/env bash
# Install reloblur with its test dependencies into a virtual environment and run the tests.
# Usage: bash scripts/test.sh [pytest arguments]     (VENV=path to choose the environment)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# torch first, pinned: the CPU build this project is tested with (train/eval/deblur tests).
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
extras="test,train,capture,pylon"
# The Aravis tests need the system's Aravis and the headers PyGObject builds against.
if command -v pkg-config >/dev/null && pkg-config --exists gobject-introspection-1.0 cairo; then
  extras="$extras,aravis"
fi
"$VENV/bin/python" -m pip install --quiet -e ".[$extras]"
# The architecture and lint gates (docs/architecture.md): layers import only downward.
"$VENV/bin/lint-imports" --no-cache
"$VENV/bin/ruff" check src tests benchmarks
"$VENV/bin/mypy"
set +e
"$VENV/bin/python" -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treating as a failure" >&2
  exit 1
fi
exit "$status"
