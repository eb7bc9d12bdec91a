#!/usr/bin/env bash
# Train the shipped `portrait` default: MODNet (MobileNetV2 backbone, alpha) at 256x256 on the 505 portraits,
# foregrounds composited onto DUTS-TR images (half the samples) to grow the set, on 2 CPU cores, in resumable
# chunks. The last 50 portraits (sorted by name) are held out for validation via symlinks under RUN/data.
set -euo pipefail
DATA=${DATA:-../shared/data}            # holds portraits/ and duts-tr/ (images/ + masks/)
RUN=${RUN:-runs/portrait_modnet_256}
EPOCHS=${EPOCHS:-40}
BATCH=${BATCH:-8}
CHUNK=${CHUNK:-250}
HOLDOUT=${HOLDOUT:-50}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# Held-out split (made once; symlinks, no copies).
if [ ! -d "$RUN/data/val/images" ]; then
  SRC=$(cd "$DATA/portraits" && pwd)
  mkdir -p "$RUN"/data/{train,val}/{images,masks}
  mapfile -t IMAGES < <(ls "$SRC/images" | sort)
  N=${#IMAGES[@]}
  for (( i = 0; i < N; i++ )); do
    NAME=${IMAGES[$i]}; STEM=${NAME%.*}
    PART=train; (( i >= N - HOLDOUT )) && PART=val
    ln -sf "$SRC/images/$NAME" "$RUN/data/$PART/images/$NAME"
    for MASK in "$SRC/masks/$STEM".*; do ln -sf "$MASK" "$RUN/data/$PART/masks/"; done
  done
fi

TRAIN_PAIRS=$(ls "$RUN/data/train/images" | wc -l)
TOTAL=$(( TRAIN_PAIRS / BATCH * EPOCHS ))
for (( TARGET = CHUNK; ; TARGET += CHUNK )); do
  (( TARGET > TOTAL )) && TARGET=$TOTAL
  edgematte train modnet "$RUN/data/train" --val "$RUN/data/val" -o "$RUN" \
    --composite "$DATA/duts-tr" --composite-prob 0.5 \
    --size 256 --epochs "$EPOCHS" --batch "$BATCH" --lr 1e-3 --optimizer adamw --scheduler cosine --warmup 100 \
    --workers 1 --ckpt-every 50 --log-every 10 --seed 0 --resume --max-steps "$TARGET"
  (( TARGET >= TOTAL )) && break
done
echo "done: $RUN/best.pt (best val MAE), log in $RUN/log.csv"
