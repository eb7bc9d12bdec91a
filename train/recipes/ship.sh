#!/usr/bin/env bash
# Install the trained defaults into the package's zoo (edge/zoo/<name>/): export, INT8 on calib_data/, evaluate
# FP32/FP16/INT8 with the edge runtime, keep INT8 if it holds quality (else FP16); ship.json records the table.
# Run from the repository root after sod.sh and portrait_mbv2.sh (or set SOD / PORTRAIT to other checkpoints).
set -euo pipefail
DATA=${DATA:-../shared/data}
SOD=${SOD:-runs/sod_hybrid/best.pt}   # second stage (sod_hybrid.sh) of sod.sh's run
PORTRAIT=${PORTRAIT:-runs/portrait_mbv2_224/best.pt}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

edgematte ship "$SOD" --name sod --val "$DATA/duts-te-val" --work runs/ship/sod
edgematte ship "$PORTRAIT" --name portrait --val "$DATA/portraits" --val-filter 'ecoreal_3*' --work runs/ship/portrait
