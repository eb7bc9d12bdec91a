#!/usr/bin/env bash
# Compress the shipped `sod` checkpoint: prune (fixed 0.5) -> one distilled fine-tune epoch -> FP32/FP16 IR -> INT8,
# with report.md/json/png. Resumable: re-run the same command after any stop. Run from the repository root.
set -euo pipefail
DATA=${DATA:-../shared/data}
CKPT=${CKPT:-runs/sod_e7/best.pt}
OUT=${OUT:-runs/pipe_sod}
RATIO=${RATIO:-0.5}
EPOCHS=${EPOCHS:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
edgematte pipeline "$CKPT" -o "$OUT" --ratio "$RATIO" --train "$DATA/duts-tr" --val "$DATA/duts-te-val" \
  --finetune-epochs "$EPOCHS" --distill --bench-runs 100 --threads 2 "$@"
