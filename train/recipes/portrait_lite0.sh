#!/usr/bin/env bash
# The next `portrait`: lite0_unet_sod (EfficientNet-Lite0 encoder, UNet decoder, BCE + soft IoU) at 256x256,
# initialised from the new sod (sod_lite0.sh's best.pt, itself from ImageNet), on the people data of
# portrait_people.sh (ecoreal_* minus ecoreal_3*, DUTS-TR people, composites); vikram_* held out. Resumable.
set -euo pipefail
MODEL=${MODEL:-lite0_unet_sod}
INIT=${INIT:-runs/sod_lite0_224/best.pt}
RUN=${RUN:-runs/portrait_lite0}
EPOCHS=${EPOCHS:-12}
LR=${LR:-3e-4}
MODEL="$MODEL" INIT="$INIT" RUN="$RUN" EPOCHS="$EPOCHS" LR="$LR" bash "$(dirname "$0")/portrait_people.sh" "$@"
