#!/usr/bin/env bash
# The `matte` model: lite0_modnet (MODNet's semantic / detail / fusion branches on an EfficientNet-Lite0 encoder,
# detail branch 16 channels wide) at 256x256, its encoder taken from the shipped sod (ImageNet, then all of
# DUTS-TR), trained with MODNet's loss (semantic MSE, detail L1 in the trimap's unknown band, matte L1 +
# compositional L1) on the people data of portrait_people.sh: ecoreal_* minus ecoreal_3*, the DUTS-TR people
# (soft edges kept) twice, 60 % composited onto DUTS-TR scenes at 35-100 % scale; vikram_* held out. Resumable.
set -euo pipefail
MODEL=${MODEL:-lite0_modnet}
INIT=${INIT:-sod}
RUN=${RUN:-runs/matte_lite0}
EPOCHS=${EPOCHS:-8}
LR=${LR:-5e-4}
LOSS=${LOSS:-modnet}
CHUNK=${CHUNK:-200}
MODEL="$MODEL" INIT="$INIT" RUN="$RUN" EPOCHS="$EPOCHS" LR="$LR" LOSS="$LOSS" CHUNK="$CHUNK" bash "$(dirname "$0")/portrait_people.sh" --model-config hr_channels=16 "$@"
