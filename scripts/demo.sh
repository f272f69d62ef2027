#!/usr/bin/env bash
# Install reloblur and run the pipeline on the built-in simulated rig (no hardware, no downloads).
# Usage: bash scripts/demo.sh [OUT]   (default OUT: demo-out, or a new demo-out-<time> when
#        demo-out holds an earlier run; VENV=path to choose the environment)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
OUT=${1:-demo-out}
# A rerun without OUT goes to a new folder instead of stopping on the last run's.
if [ $# -eq 0 ] && [ -d "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
  OUT="demo-out-$(date +%Y%m%d-%H%M%S)"
  echo "demo-out holds an earlier run: this one goes to $OUT"
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
"$VENV/bin/python" -m pip install --quiet -e ".[train,capture]"
# The whole pipeline on the simulated rig: capture (sim cameras + sync-box emulator on a
# pseudo-terminal), align, masks, split, train a small LBAG, eval, deblur, HTML report.
"$VENV/bin/reloblur" demo --out "$OUT"
echo "open $OUT/report.html"
