"""MobileNetV2 encoder shared by MODNet and the trimap UNet; layer names follow MODNet's backbone (model.features.N)."""
import math
from typing import List

import torch
from torch import nn

# t (expansion), c (channels), n (repeats), s (stride) of the inverted residual stages
_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
# features[a:b] that end at stride 2, 4, 8, 16, 32
_LEVELS = [(0, 2), (2, 4), (4, 7), (7, 14), (14, 19)]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor`, never more than 10% below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU6, as features.0 and features.18."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear project; residual when shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = round(cin * expansion)
        self.use_res_connect = stride == 1 and cin == cout
        layers: List[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(cin, hidden, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 feature extractor (no classifier): features.0..18, width multiplier `alpha`."""

    def __init__(self, in_channels: int = 3, alpha: float = 1.0) -> None:
        super().__init__()
        cin = make_divisible(32 * alpha)
        self.last_channel = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
        features: List[nn.Module] = [conv_bn_relu6(in_channels, cin, 3, 2)]
        for t, c, n, s in _STAGES:
            cout = make_divisible(int(c * alpha))
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(conv_bn_relu6(cin, self.last_channel, 1, 1))
        self.features = nn.Sequential(*features)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


class MobileNetV2Backbone(nn.Module):
    """MobileNetV2 returning the features at stride 2, 4, 8, 16, 32 (channels in .enc_channels at build time)."""

    def __init__(self, in_channels: int = 3, alpha: float = 1.0) -> None:
        super().__init__()
        self.model = MobileNetV2(in_channels, alpha)
        self.enc_channels = [_out_channels(self.model.features[b - 1]) for _, b in _LEVELS]

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs = []
        for a, b in _LEVELS:
            for n in range(a, b):
                x = self.model.features[n](x)
            outs.append(x)
        return outs


def _out_channels(block: nn.Module) -> int:
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels
