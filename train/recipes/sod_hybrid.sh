#!/usr/bin/env bash
# Second stage of the shipped `sod` default: continue mbv2_unet_sod from the first stage (sod.sh, BCE only) with
# BASNet's hybrid loss (BCE + soft IoU), a fresh cosine schedule at half the peak learning rate, same data and size.
# Resumable in chunks exactly like sod.sh. Run from the repository root.
set -euo pipefail
DATA=${DATA:-../shared/data}
INIT=${INIT:-runs/sod_e7/best.pt}        # best.pt of the first stage (or `sod`: the shipped checkpoint, for a third stage)
RUN=${RUN:-runs/sod_hybrid}
EPOCHS=${EPOCHS:-6}
BATCH=${BATCH:-8}
CHUNK=${CHUNK:-750}
LR=${LR:-5e-4}
SEED=${SEED:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

TRAIN_PAIRS=$(ls "$DATA/duts-tr/images" | wc -l)
TOTAL=$(( TRAIN_PAIRS / BATCH * EPOCHS ))
train() {
  edgematte train mbv2_unet_sod "$DATA/duts-tr" --val "$DATA/duts-te-val" -o "$RUN" --init "$INIT" \
    --loss bce_iou --size 224 --epochs "$EPOCHS" --batch "$BATCH" --lr "$LR" --optimizer adamw \
    --scheduler cosine --warmup 100 --workers 1 --ckpt-every 250 --log-every 25 --seed "$SEED" --resume "$@"
}
for (( TARGET = CHUNK; TARGET < TOTAL; TARGET += CHUNK )); do
  train --max-steps "$TARGET"
done
train
echo "done: $RUN/best.pt (best val MAE), log in $RUN/log.csv"
