#!/usr/bin/env bash
# Install the trained defaults into the package's zoo (edge/zoo/<name>/): export, INT8 on calib_data/, evaluate
# FP32/FP16/INT8 with the edge runtime, keep INT8 if it holds quality (else FP16); ship.json records the table.
# Run from the repository root after sod_hybrid.sh and portrait_pruned.sh (or set SOD / PORTRAIT to other checkpoints).
# Each installs model.xml/.bin (INT8 or FP16), model.pt (the compact int8-weight kit checkpoint) and ship.json.
set -euo pipefail
DATA=${DATA:-../shared/data}
SOD=${SOD:-runs/sod_lite0_224/best.pt}   # sod_lite0.sh (the EfficientNet-Lite0 UNet; before: sod_hybrid.sh fourth stage)
PORTRAIT=${PORTRAIT:-runs/portrait_pruned/run/best.pt}   # portrait_people.sh, pruned by portrait_pruned.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

edgematte ship "$SOD" --name sod --val "$DATA/duts-te-val" --work runs/ship/sod
edgematte ship "$PORTRAIT" --name portrait --val "$DATA/portraits" --val-filter 'ecoreal_3*' --work runs/ship/portrait \
  --fp16-max-diff 0.03   # FP16 IR: max |diff| 0.027 on the subject's edge, IoU@0.5 0.9992 (README there)
