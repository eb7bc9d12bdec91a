#!/usr/bin/env bash
# Train the shipped `portrait` default: MODNet (MobileNetV2 backbone, alpha matte, 6.5 M params) at 320x320 on
# ../shared/data/portraits, foregrounds composited onto DUTS-TR images for half the samples, on 2 CPU cores, in
# resumable chunks. Held out: every vikram_* portrait (the evaluation set: never trained or validated on) and the
# ecoreal_3* portraits (58, the validation set that picks best.pt). Run from the repository root.
set -euo pipefail
DATA=${DATA:-../shared/data}            # holds portraits/ and duts-tr/ (images/ + masks/)
RUN=${RUN:-runs/portrait_modnet_320}
EPOCHS=${EPOCHS:-40}
BATCH=${BATCH:-8}
CHUNK=${CHUNK:-300}                     # steps per chunk (about 8 epochs of 302 portraits; see README.md)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

TRAIN_PAIRS=$(ls "$DATA/portraits/images" | grep -v -e '^vikram_' -e '^ecoreal_3' | wc -l)
TOTAL=$(( TRAIN_PAIRS / BATCH * EPOCHS ))
train() {
  edgematte train modnet "$DATA/portraits" -o "$RUN" --exclude 'vikram_*' 'ecoreal_3*' \
    --val "$DATA/portraits" --val-include 'ecoreal_3*' \
    --composite "$DATA/duts-tr" --composite-prob 0.5 \
    --size 320 --epochs "$EPOCHS" --batch "$BATCH" --lr 1e-3 --optimizer adamw --scheduler cosine --warmup 100 \
    --workers 1 --ckpt-every 50 --log-every 10 --seed 0 --resume "$@"
}
for (( TARGET = CHUNK; TARGET < TOTAL; TARGET += CHUNK )); do
  train --max-steps "$TARGET"
done
train                                   # the last chunk runs to the end of --epochs
echo "done: $RUN/best.pt (best val MAE on ecoreal_3*); evaluate on the held-out vikram_* portraits"
