#!/usr/bin/env bash
# The same short schedule (STEPS steps at SIZE px, batch BATCH, the first LIMIT DUTS-TR pairs) for lite0_unet_sod
# from ImageNet weights (--pretrained) and from random init, each validated on duts-te-val at the end and then
# scored with `edgematte eval` (MAE, max F, ...). Run from the repository root.
set -euo pipefail
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/pretrained_vs_scratch}
SIZE=${SIZE:-192}
BATCH=${BATCH:-8}
STEPS=${STEPS:-300}
MODEL=${MODEL:-lite0_unet_sod}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
LIMIT=$(( STEPS * BATCH ))
for init in pretrained scratch; do
  flag=$([ "$init" = pretrained ] && echo --pretrained || true)
  edgematte train "$MODEL" "$DATA/duts-tr" --val "$DATA/duts-te-val" -o "$OUT/$init" --size "$SIZE" \
    --batch "$BATCH" --epochs 1 --limit "$LIMIT" --lr 1e-3 --warmup 30 --workers 1 --seed 0 --resume $flag
  edgematte eval "$OUT/$init/best.pt" "$DATA/duts-te-val" --json "$OUT/$init/eval.json"
done
