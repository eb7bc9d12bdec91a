#!/usr/bin/env bash
# Compress the `portrait` model (portrait_people.sh) to fit the package's size budget and run faster: L1 filter
# pruning (Torch-Pruning, fixed ratio per layer) of its best.pt, then a fine-tune through portrait_people.sh (same
# data, held-out and validation sets), distilled from the unpruned model (L1 to its map). Resumable.
# Run from the repository root after portrait_people.sh.
set -euo pipefail
DATA=${DATA:-../shared/data}
PEOPLE=${PEOPLE:-runs/data/duts_people}
CKPT=${CKPT:-runs/portrait_people/best.pt}   # the unpruned portrait model: pruned, then the teacher
OUT=${OUT:-runs/portrait_pruned}
RATIO=${RATIO:-0.25}                      # 0.25 keeps both defaults within the 10 MB package budget
EPOCHS=${EPOCHS:-16}
BATCH=${BATCH:-8}
CHUNK=${CHUNK:-400}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

[ -f "$OUT/prune/pruned.pt" ] || edgematte prune "$CKPT" -o "$OUT/prune" --strategy fixed --ratio "$RATIO"
# the same data, hold-out and validation as the unpruned model: its recipe, started from the pruned checkpoint
RUN="$OUT/run" INIT="$OUT/prune/pruned.pt" EPOCHS="$EPOCHS" BATCH="$BATCH" CHUNK="$CHUNK" LR=2e-4 WARMUP=20 \
  PEOPLE="$PEOPLE" DATA="$DATA" bash "$(dirname "$0")/portrait_people.sh" --distill "$CKPT"
echo "done: $OUT/run/best.pt (pruned portrait, best val MAE); $OUT/prune/prune.json has the cut"
