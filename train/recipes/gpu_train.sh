#!/usr/bin/env bash
# One whole GPU training in one call, on a machine that has torch and CUDA but nothing of ours: install the kit from
# the repository into a scratch folder (no downloads), unpack what gpu_pack.py packed, train with AMP for at most
# MINUTES, and leave best.pt / last.pt / log.csv / config.json under $OUT. Run from the repository root there.
#   here:  python -m edgematte.train.recipes.gpu_pack ../shared/data/duts-tr --val ../shared/data/duts-te-val -o .gpu
#   there: bash train/recipes/gpu_train.sh          (carry .gpu; DEVICE=cpu STEPS=2 rehearses it on a CPU)
set -euo pipefail
PACK=${PACK:-.gpu}
OUT=${OUT:-/tmp/gpu_out}
WORK=${WORK:-/tmp/edgematte_gpu}
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-8}
EPOCHS=${EPOCHS:-30}
BATCH=${BATCH:-64}
LR=${LR:-2e-3}
WORKERS=${WORKERS:-8}
STEPS=${STEPS:-}
PY=${PYTHON:-python3}
MODEL=$("$PY" -c "import json; print(json.load(open('$PACK/pack.json'))['model'])")
SIZE=$("$PY" -c "import json; print(json.load(open('$PACK/pack.json'))['size'])")
mkdir -p "$WORK" "$OUT"
# wheels carried in .whl (e.g. opencv-python-headless when the machine lacks cv2) go in first
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" .whl/*.whl
fi
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$WORK/site" .
export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch, cv2, numpy, edgematte.train.trainer" || {
  echo "gpu_train: this machine lacks a package the trainer needs (torch, opencv, numpy): carry its wheel in .whl" >&2
  exit 2; }
tar -xf "$PACK/data.tar" -C "$WORK"
limit=()
[ -n "$STEPS" ] && limit=(--max-steps "$STEPS")
status=0
timeout -s INT "$((MINUTES * 60))" "$PY" -c "import sys; from edgematte.edge.cli import main; sys.exit(main())" \
  train "$MODEL" "$WORK/train" --val "$WORK/val" -o "$WORK/run" --init "$PACK/init.pt" --device "$DEVICE" \
  --size "$SIZE" --epochs "$EPOCHS" --batch "$BATCH" --lr "$LR" --warmup 100 --workers "$WORKERS" \
  --ckpt-every 200 --log-every 20 "${limit[@]}" || status=$?
# SIGINT at the time limit checkpoints last.pt first (exit 130 or 1): what was trained comes back either way
for f in best.pt checkpoints/last.pt log.csv config.json; do
  [ -f "$WORK/run/$f" ] && cp "$WORK/run/$f" "$OUT/"
done
echo "gpu_train: exit $status; $(ls "$OUT" | tr '\n' ' ')in $OUT"
