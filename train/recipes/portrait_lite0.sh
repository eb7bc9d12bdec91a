#!/usr/bin/env bash
# The people model: lite0_unet_sod (EfficientNet-Lite0 encoder, UNet decoder, BCE + soft IoU) at 256x256,
# initialised from the shipped sod (its compact checkpoint, edge/zoo/sod/model.pt: ImageNet, then DUTS-TR), on the
# people data of portrait_people.sh (ecoreal_* minus ecoreal_3*, DUTS-TR people, composites); vikram_* held out. Resumable.
set -euo pipefail
MODEL=${MODEL:-lite0_unet_sod}
INIT=${INIT:-sod}
RUN=${RUN:-runs/portrait_lite0}
EPOCHS=${EPOCHS:-8}
LR=${LR:-3e-4}
MODEL="$MODEL" INIT="$INIT" RUN="$RUN" EPOCHS="$EPOCHS" LR="$LR" bash "$(dirname "$0")/portrait_people.sh" "$@"
