#!/usr/bin/env bash
# Install reloblur and run the pipeline on the built-in simulated rig (no hardware, no downloads).
# Usage: bash scripts/demo.sh [OUT]   (default OUT: demo-out; VENV=path to choose the environment)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
OUT=${1:-demo-out}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e .
rb="$VENV/bin/reloblur"
# 1. What the two cameras record: raw 16-bit B/S frames, manifest, pair log, ground truth.
"$rb" simulate "$OUT/session" --size 720x480 --pairs 8
# 2. What perfect post-processing makes of it: a ReLoBlur-layout dataset with masks.
"$rb" simulate "$OUT/data" --layout reloblur --size 538x359 --pairs 24
"$rb" dataset validate "$OUT/data/dataset"
"$rb" dataset stats "$OUT/data/dataset" --plot "$OUT/blur_ratio.png"
echo "done: see $OUT/ (session, data/dataset, data/masks, blur_ratio.png)"
