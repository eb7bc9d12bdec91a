"""EfficientNet-Lite0/1/2 (Tan & Le; the TF "lite" variants: ReLU6, no squeeze-excite, fixed stem and head) as an
encoder with taps at strides 2, 4, 8, 16, 32, and the mapping of the official ImageNet weights onto it.

TensorFlow's "SAME" padding is asymmetric for stride-2 convolutions on even inputs (no padding before, the rest
after). The kit's layers reproduce it exactly with an explicit ZeroPad2d in front of each stride-2 conv and plain
symmetric padding elsewhere (equal to SAME for stride 1), so the pretrained weights compute what they were trained to
compute (tests compare the classifier with the reference implementation) while every layer stays a plain
nn.Conv2d that ONNX opset 10, NCS2 and Torch-Pruning handle. Inputs must be multiples of 32 (checked by the configs).
"""
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

# (repeats, kernel, stride, expansion, in, out) of the seven stages, as in efficientnet_lite_builder.py
_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
_TAP_STAGES = (0, 1, 2, 4, 6)  # the stages that end at stride 2, 4, 8, 16, 32
BN_EPS = 1e-3  # TF's batch-norm epsilon, which the pretrained statistics go with
BN_MOMENTUM = 0.01  # TF's decay 0.99


@dataclass(frozen=True)
class LiteVariant:
    """Width and depth multipliers of one EfficientNet-Lite and its ImageNet classification size."""

    width: float
    depth: float
    image_size: int


VARIANTS: Dict[str, LiteVariant] = {
    "efficientnet_lite0": LiteVariant(1.0, 1.0, 224),
    "efficientnet_lite1": LiteVariant(1.0, 1.1, 240),
    "efficientnet_lite2": LiteVariant(1.1, 1.2, 260),
}


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channel count scaled by the width multiplier and rounded as the TF builder does."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def _same_pad(kernel: int, stride: int) -> Tuple[int, int]:
    """(before, after) of TF SAME padding for an even input: symmetric at stride 1, one less before at stride 2."""
    total = kernel - stride if stride > 1 else kernel - 1
    return total // 2, total - total // 2


def conv_unit(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """[pad] + conv (no bias) + BatchNorm (TF eps) + [ReLU6], named pad/conv/bn/act."""
    before, after = _same_pad(kernel, stride)
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    if stride > 1 and before != after:
        layers["pad"] = nn.ZeroPad2d((before, after, before, after))
        padding = 0
    else:
        padding = before
    layers["conv"] = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
    layers["bn"] = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
    if act:
        layers["act"] = nn.ReLU6(inplace=True)
    return nn.Sequential(layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-excite: [1x1 expand] -> kxk depthwise -> 1x1 linear project."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.expand = conv_unit(cin, hidden, 1) if expansion != 1 else None
        self.dw = conv_unit(hidden, hidden, kernel, stride, groups=hidden)
        self.project = conv_unit(hidden, cout, 1, act=False)
        self.use_res_connect = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.dw(y))
        return x + y if self.use_res_connect else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite: stem, 16-23 MBConv blocks and, with num_classes, the 1280-wide head and classifier."""

    def __init__(self, variant: str = "efficientnet_lite0", num_classes: int = 0) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError("unknown EfficientNet-Lite {!r} (known: {})".format(variant, ", ".join(VARIANTS)))
        spec = VARIANTS[variant]
        self.variant = variant
        self.stem = conv_unit(3, 32, 3, 2)  # the stem is not scaled in the lite variants
        blocks: List[nn.Module] = []
        self.tap_blocks: List[int] = []  # index of the last block of each tapped stage
        cin = 32
        for i, (repeats, kernel, stride, expansion, _, out) in enumerate(_STAGES):
            cout = round_filters(out, spec.width)
            # the first and last stages keep their depth in the lite variants
            n = repeats if i in (0, len(_STAGES) - 1) else int(math.ceil(spec.depth * repeats))
            for j in range(n):
                blocks.append(MBConv(cin, cout, kernel, stride if j == 0 else 1, expansion))
                cin = cout
            if i in _TAP_STAGES:
                self.tap_blocks.append(len(blocks) - 1)
        self.blocks = nn.ModuleList(blocks)
        self.enc_channels = [_block_out(self.blocks[i]) for i in self.tap_blocks]
        self.head: Optional[nn.Module] = None
        self.classifier: Optional[nn.Module] = None
        if num_classes:
            self.head = conv_unit(cin, 1280, 1)
            self.classifier = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Features at strides 2, 4, 8, 16, 32 (channels: .enc_channels)."""
        x = self.stem(x)
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.tap_blocks:
                taps.append(x)
        return taps

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.features(x)

    def upstream_key_map(self) -> Dict[str, str]:
        """Upstream weight name -> this module's name (see upstream_key_map)."""
        return upstream_key_map(self)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (needs num_classes)."""
        if self.head is None or self.classifier is None:
            raise RuntimeError("this EfficientNet-Lite was built without a classifier (num_classes=0)")
        y = self.head(self.features(x)[-1])
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


def _block_out(block: MBConv) -> int:
    return int(block.project.conv.out_channels)


def _unit_names(upstream_conv: str, upstream_bn: str, unit: str) -> Dict[str, str]:
    names = {upstream_conv + ".weight": unit + ".conv.weight"}
    for field in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        names["{}.{}".format(upstream_bn, field)] = "{}.bn.{}".format(unit, field)
    return names


def upstream_key_map(encoder: "EfficientNetLite") -> Dict[str, str]:
    """Upstream state-dict name (the official weights as packaged for PyTorch) -> this module's name; explicit,
    one entry per tensor, no fuzzy matching."""
    names = _unit_names("_conv_stem", "_bn0", "stem")
    for i, block in enumerate(encoder.blocks):
        prefix, kit = "_blocks.{}.".format(i), "blocks.{}.".format(i)
        if block.expand is not None:
            names.update(_unit_names(prefix + "_expand_conv", prefix + "_bn0", kit + "expand"))
        names.update(_unit_names(prefix + "_depthwise_conv", prefix + "_bn1", kit + "dw"))
        names.update(_unit_names(prefix + "_project_conv", prefix + "_bn2", kit + "project"))
    if encoder.head is not None:
        names.update(_unit_names("_conv_head", "_bn1", "head"))
        names.update({"_fc.weight": "classifier.weight", "_fc.bias": "classifier.bias"})
    return names
