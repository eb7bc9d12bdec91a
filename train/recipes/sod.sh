#!/usr/bin/env bash
# Train the shipped `sod` default: U2NetP (1.1 M params, saliency) at 224x224 on DUTS-TR, validated on
# duts-te-val, on 2 CPU cores, in resumable chunks of CHUNK steps. Re-run the script after any stop: finished
# chunks return at once, the current one continues exactly from RUN/checkpoints/last.pt.
set -euo pipefail
DATA=${DATA:-../shared/data}            # holds duts-tr/ and duts-te-val/ (images/ + masks/)
RUN=${RUN:-runs/sod_u2netp_224}
EPOCHS=${EPOCHS:-10}
BATCH=${BATCH:-8}
CHUNK=${CHUNK:-250}                     # steps per chunk (~1 h on 2 cores at the measured rate)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

TRAIN_PAIRS=$(ls "$DATA/duts-tr/images" | wc -l)
TOTAL=$(( TRAIN_PAIRS / BATCH * EPOCHS ))
for (( TARGET = CHUNK; ; TARGET += CHUNK )); do
  (( TARGET > TOTAL )) && TARGET=$TOTAL
  edgematte train u2netp "$DATA/duts-tr" --val "$DATA/duts-te-val" -o "$RUN" \
    --size 224 --epochs "$EPOCHS" --batch "$BATCH" --lr 1e-3 --optimizer adamw --scheduler cosine --warmup 100 \
    --workers 1 --ckpt-every 50 --log-every 10 --seed 0 --resume --max-steps "$TARGET"
  (( TARGET >= TOTAL )) && break
done
echo "done: $RUN/best.pt (best val MAE), log in $RUN/log.csv"
