#!/usr/bin/env bash
# Compress the `portrait` model (portrait_people.sh) to fit the package's size budget and run faster: L1 filter
# pruning (Torch-Pruning, fixed ratio per layer) of its best.pt, then a short fine-tune on the same data, distilled
# from the unpruned model (L1 to its map). Same held-out and validation sets as portrait_people.sh. Resumable.
# Run from the repository root after portrait_people.sh.
set -euo pipefail
DATA=${DATA:-../shared/data}
PEOPLE=${PEOPLE:-runs/data/duts_people}
CKPT=${CKPT:-runs/portrait_people/best.pt}   # the unpruned portrait model: pruned, then the teacher
OUT=${OUT:-runs/portrait_pruned}
RATIO=${RATIO:-0.25}                      # 0.25 keeps both defaults within the 10 MB package budget
EPOCHS=${EPOCHS:-16}
BATCH=${BATCH:-8}
CHUNK=${CHUNK:-400}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

[ -f "$OUT/prune/pruned.pt" ] || edgematte prune "$CKPT" -o "$OUT/prune" --strategy fixed --ratio "$RATIO"
TRAIN_PAIRS=$(( $(ls "$DATA/portraits/images" | grep -v -e '^vikram_' -e '^ecoreal_3' | wc -l) \
  + 2 * $(ls "$PEOPLE/images" | grep -v -e '[05]\.[a-z]*$' | wc -l) ))
TOTAL=$(( TRAIN_PAIRS / BATCH * EPOCHS ))
train() {
  edgematte train mbv2_unet_sod "$DATA/portraits" "$PEOPLE" "$PEOPLE" -o "$OUT/run" --init "$OUT/prune/pruned.pt" \
    --distill "$CKPT" --exclude 'vikram_*' 'ecoreal_3*' '[In]*[05]' \
    --val "$DATA/portraits" "$PEOPLE" --val-include 'ecoreal_3*' '[In]*[05]' \
    --composite "$DATA/duts-tr" --composite-prob 0.6 --composite-zoom 0.35 --loss bce_iou \
    --size 256 --epochs "$EPOCHS" --batch "$BATCH" --lr 2e-4 --optimizer adamw --scheduler cosine --warmup 20 \
    --workers 1 --ckpt-every 100 --log-every 10 --seed 0 --resume "$@"
}
for (( TARGET = CHUNK; TARGET < TOTAL; TARGET += CHUNK )); do
  train --max-steps "$TARGET"
done
train
echo "done: $OUT/run/best.pt (pruned portrait, best val MAE); $OUT/prune/prune.json has the cut"
