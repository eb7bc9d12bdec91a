#!/usr/bin/env bash
# Install the trained defaults into the package's zoo (edge/zoo/<name>/): export, INT8 on calib_data/, evaluate
# FP32/FP16/INT8 with the edge runtime, keep INT8 if it holds quality (else FP16); ship.json records the table.
# Run from the repository root after the recipes named below (or set SOD / PORTRAIT / MATTE to other checkpoints;
# ONLY=matte installs one).
# Each installs model.xml/.bin (INT8 or FP16), model.pt (the compact int8-weight kit checkpoint) and ship.json.
set -euo pipefail
DATA=${DATA:-../shared/data}
SOD=${SOD:-runs/sod_lite0_224/best.pt}   # sod_lite0.sh (the EfficientNet-Lite0 UNet; before: sod_hybrid.sh fourth stage)
PORTRAIT=${PORTRAIT:-runs/portrait_lite0/best.pt}   # portrait_lite0.sh (before: portrait_pruned.sh)
MATTE=${MATTE:-runs/matte_lite0/best.pt}   # matte_lite0.sh
ONLY=${ONLY:-sod portrait}                # which to (re)install; ONLY=matte once matte_lite0.sh has finished
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

has() { [[ " $ONLY " == *" $1 "* ]]; }
has sod && edgematte ship "$SOD" --name sod --val "$DATA/duts-te-val" --work runs/ship/sod
has portrait && edgematte ship "$PORTRAIT" --name portrait --val "$DATA/portraits" --val-filter 'ecoreal_3*' --work runs/ship/portrait \
  --fp16-max-diff 0.03   # FP16 IR: max |diff| 0.027 on the subject's edge, IoU@0.5 0.9992 (README there)
# validated on the people ID photos it never trained on (ecoreal_3*); vikram_* stays the held-out test
has matte && edgematte ship "$MATTE" --name matte --val "$DATA/portraits" --val-filter 'ecoreal_3*' --work runs/ship/matte
