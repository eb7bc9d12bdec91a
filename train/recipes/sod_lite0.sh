#!/usr/bin/env bash
# The next `sod`: lite0_unet_sod (EfficientNet-Lite0 encoder from ImageNet, UNet decoder, BCE + soft IoU) at 224x224
# on the whole DUTS-TR (10,553), validated on duts-te-val, on 2 CPU cores, in resumable chunks of CHUNK steps.
# Re-run after any stop: reached chunks return at once, the current one continues from RUN/checkpoints/last.pt.
set -euo pipefail
DATA=${DATA:-../shared/data}
RUN=${RUN:-runs/sod_lite0_224}
EPOCHS=${EPOCHS:-4}                     # 5276 steps at batch 8: about 55 min on 2 idle AVX512-BF16 cores
BATCH=${BATCH:-8}
LR=${LR:-5e-4}
CHUNK=${CHUNK:-660}                     # half an epoch at batch 8
CACHE=${CACHE:-runs/cache}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

TRAIN_PAIRS=$(ls "$DATA/duts-tr/images" | wc -l)
TOTAL=$(( TRAIN_PAIRS / BATCH * EPOCHS ))
train() {
  edgematte train lite0_unet_sod "$DATA/duts-tr" --val "$DATA/duts-te-val" -o "$RUN" --pretrained \
    --size 224 --epochs "$EPOCHS" --batch "$BATCH" --lr "$LR" --warmup 300 --workers 1 --cache "$CACHE" \
    --ckpt-every 220 --log-every 25 --seed 0 --resume "$@"
}
for (( TARGET = CHUNK; TARGET < TOTAL; TARGET += CHUNK )); do
  train --max-steps "$TARGET"
done
train
echo "done: $RUN/best.pt (best val MAE), log in $RUN/log.csv"
