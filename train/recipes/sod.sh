#!/usr/bin/env bash
# Train the shipped `sod` default: mbv2_unet_sod (MobileNetV2-UNet, 1-channel saliency head, 2.4 M params) at
# 224x224 on DUTS-TR, validated on duts-te-val, on 2 CPU cores, in resumable chunks of CHUNK steps.
# Re-run the script after any stop: reached chunks return at once, the current one continues exactly from
# RUN/checkpoints/last.pt. Run from the repository root.
set -euo pipefail
DATA=${DATA:-../shared/data}            # holds duts-tr/ and duts-te-val/ (images/ + masks/)
RUN=${RUN:-runs/sod_mbv2_unet_sod_224}
EPOCHS=${EPOCHS:-30}
BATCH=${BATCH:-8}
CHUNK=${CHUNK:-1500}                    # steps per chunk (2 epochs of DUTS-TR at batch 8; see README.md)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

TRAIN_PAIRS=$(ls "$DATA/duts-tr/images" | wc -l)
TOTAL=$(( TRAIN_PAIRS / BATCH * EPOCHS ))
train() {
  edgematte train mbv2_unet_sod "$DATA/duts-tr" --val "$DATA/duts-te-val" -o "$RUN" \
    --size 224 --epochs "$EPOCHS" --batch "$BATCH" --lr 1e-3 --optimizer adamw --scheduler cosine --warmup 200 \
    --workers 1 --ckpt-every 250 --log-every 25 --seed 0 --resume "$@"
}
for (( TARGET = CHUNK; TARGET < TOTAL; TARGET += CHUNK )); do
  train --max-steps "$TARGET"
done
train                                   # the last chunk runs to the end of --epochs
echo "done: $RUN/best.pt (best val MAE), log in $RUN/log.csv"
