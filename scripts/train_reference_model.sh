#!/usr/bin/env bash
# Make the reference LBAG shipped with reloblur: simulated data, the recipe in
# configs/lbag-reference-sim.yaml, the best validation checkpoint exported in float16.
# Usage: bash scripts/train_reference_model.sh [WORK]   (default WORK: runs/reference;
#        VENV=path to choose the environment). About 80 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
WORK=${1:-runs/reference}
# 480 pairs in 120 scenes at the demo's frame size; seed 1000 keeps them apart from the
# demo's scenes (seed 0), and 10 % of the scenes are held out for validation.
"$VENV/bin/reloblur" simulate "$WORK/data" --layout reloblur --size 480x320 --pairs 480 --seed 1000 \
  --test-fraction 0.1
if [ -d "$WORK/run" ] && ls "$WORK/run"/model_ckpt_steps_*.ckpt >/dev/null 2>&1; then
  "$VENV/bin/reloblur" train --resume "$WORK/run"
else
  "$VENV/bin/reloblur" train --config configs/lbag-reference-sim.yaml --set "data=$WORK/data/dataset" \
    --set "masks=$WORK/data/masks" --run-dir "$WORK/run"
fi
"$VENV/bin/python" - "$WORK/run/model_ckpt_best.ckpt" <<'PY'
import sys
from reloblur.lbag.reference import export_reference
print("reference model written:", export_reference(sys.argv[1], provenance={
    "recipe": "configs/lbag-reference-sim.yaml", "data": "reloblur simulate --layout reloblur --size 480x320 "
    "--pairs 480 --seed 1000 --test-fraction 0.1"}))
PY
