#!/usr/bin/env bash
# Train the shipped `portrait` default: mbv2_unet_sod (MobileNetV2-UNet, 2.4 M params, sigmoid foreground) at
# 256x256 (MediaPipe selfie's input size), initialised from the shipped `sod` checkpoint (sod_hybrid.sh), on
#   - the ecoreal_* portraits of ../shared/data/portraits (ID photos, one framing), foregrounds composited onto
#     DUTS-TR scenes and shrunk to 35-100 % of the frame (busts stay on the bottom edge): --composite-zoom;
#   - the DUTS-TR pairs whose salient object is a person (duts_people.py: OpenCV face/pedestrian detectors + a
#     skin test), listed twice so that they weigh as much as the ID photos.
# Held out: every vikram_* portrait (evaluation only, never trained or validated on). Validation (picks best.pt):
# ecoreal_3* and the DUTS people whose stem ends in 0 or 5 (both left out of training). Resumable in chunks.
# Arguments go to every `edgematte train` call (portrait_pruned.sh passes --distill). Run from the repository root.
set -euo pipefail
DATA=${DATA:-../shared/data}            # holds portraits/ and duts-tr/
PEOPLE=${PEOPLE:-runs/data/duts_people}
INIT=${INIT:-sod}                       # the shipped sod checkpoint (edge/zoo/sod/model.pt); the 2026-12-01 run used the second stage
RUN=${RUN:-runs/portrait_people}
MODEL=${MODEL:-mbv2_unet_sod}          # lite0_unet_sod: the EfficientNet-Lite0 UNet (portrait_lite0.sh)
SIZE=${SIZE:-256}
EPOCHS=${EPOCHS:-28}                    # about 2970 steps, 60-75 min on 2 cores
BATCH=${BATCH:-8}
CHUNK=${CHUNK:-500}
LR=${LR:-5e-4}
WARMUP=${WARMUP:-50}
LOSS=${LOSS:-bce_iou}                   # matte_lite0.sh: modnet (semantic + detail + fusion)
EXTRA=("$@")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

[ -f "$PEOPLE/people.json" ] || python train/recipes/duts_people.py "$DATA/duts-tr" "$PEOPLE"
TRAIN_PAIRS=$(( $(ls "$DATA/portraits/images" | grep -v -e '^vikram_' -e '^ecoreal_3' | wc -l) \
  + 2 * $(ls "$PEOPLE/images" | grep -v -e '[05]\.[a-z]*$' | wc -l) ))
TOTAL=$(( TRAIN_PAIRS / BATCH * EPOCHS ))
train() {
  edgematte train "$MODEL" "$DATA/portraits" "$PEOPLE" "$PEOPLE" -o "$RUN" --init "$INIT" \
    --exclude 'vikram_*' 'ecoreal_3*' '[In]*[05]' \
    --val "$DATA/portraits" "$PEOPLE" --val-include 'ecoreal_3*' '[In]*[05]' \
    --composite "$DATA/duts-tr" --composite-prob 0.6 --composite-zoom 0.35 --loss "$LOSS" \
    --size "$SIZE" --epochs "$EPOCHS" --batch "$BATCH" --lr "$LR" --optimizer adamw --scheduler cosine --warmup "$WARMUP" \
    --workers 1 --ckpt-every 100 --log-every 10 --seed 0 --resume ${EXTRA[@]+"${EXTRA[@]}"} "$@"
}
for (( TARGET = CHUNK; TARGET < TOTAL; TARGET += CHUNK )); do
  train --max-steps "$TARGET"
done
train
echo "done: $RUN/best.pt (best val MAE); evaluate on the held-out vikram_* portraits"
