#!/usr/bin/env bash
# Make the reference LBAG shipped with reloblur from simulated data, in two stages:
#   1. configs/lbag-reference-sim.yaml on photographic scenes (seed 1000), 7000 steps;
#   2. configs/lbag-reference-varied.yaml: stage 1's best, fine-tuned on scenes simulated
#      with --varied-scenes (plain walls, dark and over-exposed scenes; seed 2000), 2000 steps;
# then stage 2's best validation checkpoint is exported in float16.
# Usage: bash scripts/train_reference_model.sh [WORK]   (default WORK: runs/reference;
#        VENV=path to choose the environment). About 105 minutes on 2 CPU cores.
# A trial run (what tests/lbag/test_reference.py does) shrinks it without touching the
# shipped file: PAIRS=8 SIZE=96x64 SETTINGS="max_steps=2 ..." OUT=/tmp/ref.ckpt
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
WORK=${1:-runs/reference}
PAIRS=${PAIRS:-480}
SIZE=${SIZE:-480x320}
OUT=${OUT:-src/reloblur/lbag/weights/lbag-sim-nr2.ckpt}
read -r -a SETTINGS <<< "${SETTINGS:-}"
SET_ARGS=()
for setting in "${SETTINGS[@]}"; do SET_ARGS+=(--set "$setting"); done

# stage NAME CONFIG SEED [simulate options...]: simulate its data, train (or resume) its run.
stage() {
  local name=$1 config=$2 seed=$3
  shift 3
  # 480 pairs in 120 scenes at the demo's frame size; the seeds keep them apart from the
  # demo's scenes (seed 0), and 10 % of the scenes are held out for validation.
  "$VENV/bin/reloblur" simulate "$WORK/$name/data" --layout reloblur --size "$SIZE" --pairs "$PAIRS" \
    --seed "$seed" --test-fraction 0.1 "$@"
  if [ -d "$WORK/$name/run" ] && ls "$WORK/$name/run"/model_ckpt_steps_*.ckpt >/dev/null 2>&1; then
    "$VENV/bin/reloblur" train --resume "$WORK/$name/run"
  else
    "$VENV/bin/reloblur" train --config "$config" --set "data=$WORK/$name/data/dataset" \
      --set "masks=$WORK/$name/data/masks" ${INIT:+--init "$INIT"} ${SET_ARGS[@]+"${SET_ARGS[@]}"} \
      --run-dir "$WORK/$name/run"
  fi
}
# export CHECKPOINT OUT STAGES: the weights alone, float16, with how they were made.
export_model() {
  "$VENV/bin/python" - "$1" "$2" "$SIZE" "$PAIRS" "$3" <<'PY'
import sys
from reloblur.lbag.reference import export_reference
checkpoint, out, size, pairs, stages = sys.argv[1:]
data = f"reloblur simulate --layout reloblur --size {size} --pairs {pairs} --test-fraction 0.1"
recipe = ["configs/lbag-reference-sim.yaml", "configs/lbag-reference-varied.yaml"][: int(stages)]
print("reference model written:", export_reference(checkpoint, out, provenance={
    "recipe": recipe, "data": [f"{data} --seed 1000", f"{data} --seed 2000 --varied-scenes"][: int(stages)]}))
PY
}
INIT= stage photographic configs/lbag-reference-sim.yaml 1000
# Stage 2 starts from stage 1 as shipped before it existed (float16 weights).
export_model "$WORK/photographic/run/model_ckpt_best.ckpt" "$WORK/photographic/reference.ckpt" 1
INIT="$WORK/photographic/reference.ckpt" stage varied configs/lbag-reference-varied.yaml 2000 --varied-scenes
export_model "$WORK/varied/run/model_ckpt_best.ckpt" "$OUT" 2
