#!/usr/bin/env bash
# What edge refinement does to a shipped model's alpha: `edgematte eval` plain, with --refine cf and knn (alpha
# matting in the predicted edge band), on duts-te-val (soft DUTS edges: MAE, MAD, boundary IoU) and on the held-out
# vikram_* people (binary masks). Prints one line per run; the JSONs land in $OUT. Run from the repository root.
set -euo pipefail
MODEL=${MODEL:-sod}
DATA=${DATA:-../shared/data}
LIMIT=${LIMIT:-200}
OUT=${OUT:-runs/edge_refine/$MODEL}
mkdir -p "$OUT"
for set in duts portraits; do
  if [ "$set" = duts ]; then args=("$DATA/duts-te-val" --limit "$LIMIT"); else args=("$DATA/portraits" --include 'vikram_*'); fi
  for refine in none cf knn; do
    extra=(); [ "$refine" = none ] || extra=(--refine "$refine")
    edgematte eval "$MODEL" "${args[@]}" --no-sod --no-progress ${extra[@]+"${extra[@]}"} --json "$OUT/$set-$refine.json" >/dev/null
    python - "$OUT/$set-$refine.json" "$set" "$refine" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); m = r["summary"]["mean"]; mat = r["summary"].get("matting") or {}
ms = r["meta"].get("refine_ms_median")
print("{:9s} {:5s} images {:3d}  IoU {:.4f}  boundary IoU {:.4f}  MAE {:.4f}  MAD(soft GT) {}  refine ms {}".format(
    sys.argv[2], sys.argv[3], r["summary"]["images"], m["iou"], m["boundary_iou"], m["mae"],
    "{:.4f}".format(mat["mad"]) if "mad" in mat else "-", "{:.0f}".format(ms) if ms else "-"))
PY
  done
done
