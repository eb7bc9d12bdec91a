"""What pruning may touch in each zoo model: its backbone, its output heads and its default strategy (torch-free).

A registry, so a new architecture adds one entry instead of a branch in the pruner.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from edgematte.edge.errors import InputError

STRATEGIES = ("adaptive", "fixed", "global")


@dataclass(frozen=True)
class PruneTarget:
    """Module paths of one architecture: the backbone (None: it has none) and the convs that produce outputs."""

    backbone: Optional[str]
    heads: Tuple[str, ...]
    default_strategy: str = "fixed"

    def __post_init__(self) -> None:
        if self.default_strategy not in STRATEGIES:
            raise ValueError("default strategy {!r} is not one of {}".format(self.default_strategy, STRATEGIES))
        if self.default_strategy == "adaptive" and self.backbone is None:
            raise ValueError("the adaptive strategy needs a backbone")


_TARGETS: Dict[str, PruneTarget] = {}


def register_prune_target(arch: str, target: PruneTarget) -> None:
    """Declare what `prune_model` may touch in architecture `arch` (a zoo registry name)."""
    _TARGETS[arch] = target


def prune_target(arch: str) -> PruneTarget:
    """The registered target of `arch`; InputError for an architecture pruning knows nothing about."""
    if arch not in _TARGETS:
        raise InputError("cannot prune architecture {!r}: no prune target registered (known: {})".format(
            arch, ", ".join(sorted(_TARGETS))))
    return _TARGETS[arch]


def known_targets() -> Tuple[str, ...]:
    """Architectures with a prune target, sorted."""
    return tuple(sorted(_TARGETS))


# MODNet: the MobileNetV2 inside the LR branch (also registered as `backbone`: one shared module) is the backbone;
# the matte, semantic and detail convs are the heads (the last two feed training losses, they stay 1-channel).
_MODNET_HEADS = ("f_branch.conv_f.1.layers.0", "lr_branch.conv_lr.layers.0", "hr_branch.conv_hr.1.layers.0")
register_prune_target("modnet", PruneTarget(backbone="lr_branch.backbone", heads=_MODNET_HEADS,
                                            default_strategy="adaptive"))
# U^2-Net: no separate backbone (nested U-blocks all the way), so only fixed and global apply; the six side convs
# and the fusing 1x1 conv produce the "logits" maps.
_U2_HEADS = tuple("side{}".format(i) for i in range(1, 7)) + ("outconv",)
register_prune_target("u2net", PruneTarget(backbone=None, heads=_U2_HEADS))
register_prune_target("u2netp", PruneTarget(backbone=None, heads=_U2_HEADS))
# MobileNetV2-UNet (trimap and saliency): the MobileNetV2 encoder is the backbone, `head` gives the class logits.
register_prune_target("mbv2_unet", PruneTarget(backbone="encoder", heads=("head",)))
register_prune_target("mbv2_unet_sod", PruneTarget(backbone="encoder", heads=("head",)))
# The EfficientNet-Lite families: the pretrained encoder is the backbone (adaptive thresholds by default, as MODNet),
# the decoder and branches take the fixed ratio; heads as in the MobileNetV2 families they share.
for _short in ("lite0", "lite1", "lite2"):
    register_prune_target(_short + "_unet", PruneTarget(backbone="encoder", heads=("head",),
                                                        default_strategy="adaptive"))
    register_prune_target(_short + "_unet_sod", PruneTarget(backbone="encoder", heads=("head",),
                                                            default_strategy="adaptive"))
    register_prune_target(_short + "_modnet", PruneTarget(backbone="lr_branch.backbone",
                                                          heads=_MODNET_HEADS, default_strategy="adaptive"))
