#!/usr/bin/env bash
# Train the interim `portrait` default: mbv2_unet_sod (MobileNetV2-UNet, 2.4 M params, sigmoid foreground) at
# 224x224, initialised from the trained `sod` checkpoint and fine-tuned on ../shared/data/portraits, foregrounds
# composited onto DUTS-TR images for half the samples. Held out: every vikram_* portrait (evaluation only) and the
# ecoreal_3* portraits (58, validation: picks best.pt). About 15 min on 2 idle cores. The MODNet recipe
# (portrait.sh) is the matting model to come; this one exists because it fits one session of 2 CPU cores.
# Run from the repository root after sod.sh (or set INIT to any mbv2_unet_sod checkpoint).
set -euo pipefail
DATA=${DATA:-../shared/data}            # holds portraits/ and duts-tr/ (images/ + masks/)
INIT=${INIT:-runs/sod_e7/best.pt}
RUN=${RUN:-runs/portrait_mbv2_224}
EPOCHS=${EPOCHS:-20}
BATCH=${BATCH:-8}
CHUNK=${CHUNK:-300}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

TRAIN_PAIRS=$(ls "$DATA/portraits/images" | grep -v -e '^vikram_' -e '^ecoreal_3' | wc -l)
TOTAL=$(( TRAIN_PAIRS / BATCH * EPOCHS ))
train() {
  edgematte train mbv2_unet_sod "$DATA/portraits" -o "$RUN" --init "$INIT" --exclude 'vikram_*' 'ecoreal_3*' \
    --val "$DATA/portraits" --val-include 'ecoreal_3*' \
    --composite "$DATA/duts-tr" --composite-prob 0.5 \
    --size 224 --epochs "$EPOCHS" --batch "$BATCH" --lr 5e-4 --optimizer adamw --scheduler cosine --warmup 50 \
    --workers 1 --ckpt-every 100 --log-every 10 --seed 0 --resume "$@"
}
for (( TARGET = CHUNK; TARGET < TOTAL; TARGET += CHUNK )); do
  train --max-steps "$TARGET"
done
train
echo "done: $RUN/best.pt (best val MAE on ecoreal_3*); evaluate on the held-out vikram_* portraits"
