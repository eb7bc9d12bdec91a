#!/usr/bin/env bash
# The shipped defaults next to the peer models of ../shared/peers, measured in one `edgematte bench` run each
# (interleaved latency rounds, 2 threads for every backend, quality on the same images):
#   people: portrait and sod vs the six peers on the held-out vikram_* portraits (145);
#   salient objects: sod and portrait vs the same peers on the first 100 duts-te-val images.
# Then the full `edgematte eval` tables (max F, S, E, matting errors) of portrait, sod and MediaPipe selfie on vikram_*.
# Run from the repository root after ship.sh. Writes runs/bench_people.*, runs/bench_sod.*, runs/eval_vikram_*.json.
set -euo pipefail
DATA=${DATA:-../shared/data}
PEERS=${PEERS:-../shared/peers}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
PEER_ROWS=("$PEERS/mediapipe_selfie.xml@mediapipe_selfie" "$PEERS/prisma.onnx@prisma" "$PEERS/sinet.onnx@sinet"
  "$PEERS/mnv3_unet.tflite@mnv3_unet" "$PEERS/slimnet.tflite@slimnet" "$PEERS/deeplab_mnv2.onnx@deeplab_mnv2")

edgematte bench portrait sod "${PEER_ROWS[@]}" --threads 2 --niter 100 --data "$DATA/portraits" \
  --include 'vikram_*' --limit 145 --json runs/bench_people.json --csv runs/bench_people.csv \
  --plot runs/bench_people.png
edgematte bench sod portrait "${PEER_ROWS[@]}" --threads 2 --niter 100 --data "$DATA/duts-te-val" \
  --limit 100 --json runs/bench_sod.json --csv runs/bench_sod.csv --plot runs/bench_sod.png
for model in portrait sod; do
  edgematte eval "$model" "$DATA/portraits" --include 'vikram_*' --no-progress --json "runs/eval_vikram_$model.json"
done
edgematte eval "$PEERS/mediapipe_selfie.xml" "$DATA/portraits" --spec mediapipe_selfie --include 'vikram_*' \
  --no-progress --json runs/eval_vikram_mediapipe.json
