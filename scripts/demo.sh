#!/usr/bin/env bash
# Install reloblur and run the pipeline on the built-in simulated rig (no hardware, no downloads).
# Usage: bash scripts/demo.sh [OUT]   (default OUT: demo-out, which must be new or empty;
#        VENV=path to choose the environment)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
OUT=${1:-demo-out}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
"$VENV/bin/python" -m pip install --quiet -e ".[train,capture]"
# The whole pipeline on the simulated rig: capture (sim cameras + sync-box emulator on a
# pseudo-terminal), align, masks, split, train a small LBAG, eval, deblur, HTML report.
"$VENV/bin/reloblur" demo --out "$OUT"
echo "open $OUT/report.html"
