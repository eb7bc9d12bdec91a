"""MobileNetV2-UNet: MobileNetV2 encoder, light UNet decoder with additive skips; 3-class trimap head (mbv2_unet)
or 1-channel saliency head (mbv2_unet_sod)."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import ModelConfig, ZooModel
from .mobilenetv2 import MobileNetV2Backbone
from .registry import register_model


@dataclass
class MBV2UNetConfig(ModelConfig):
    """Trimap net settings: encoder width multiplier and decoder widths (stride 32, 16, 8, 4, 2)."""

    width: float = 1.0
    decoder_channels: List[int] = field(default_factory=lambda: [96, 64, 32, 24, 16])
    num_classes: int = 3  # background, unknown, foreground


def conv_bn_relu(cin: int, cout: int, kernel: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SkipProjection(nn.Module):
    """1x1 conv + BatchNorm mapping an encoder feature to the decoder width, so it can be added."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class DecoderBlock(nn.Module):
    """Depthwise-separable refinement: 3x3 depthwise + 1x1 pointwise, each with BatchNorm + ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.dw = conv_bn_relu(cin, cin, 3, groups=cin)
        self.pw = conv_bn_relu(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


@register_model("mbv2_unet", config=MBV2UNetConfig, task="trimap", encoder="mobilenetv2")
class MBV2UNet(ZooModel):
    """Trimap estimation at stride 2, upsampled to the input; logits (N,3,H,W), out = softmax over classes."""

    def __init__(self, config: MBV2UNetConfig) -> None:
        super().__init__(config)
        dec = list(config.decoder_channels)
        if len(dec) != 5:
            raise ValueError("decoder_channels needs 5 widths (stride 32, 16, 8, 4, 2), got {}".format(dec))
        self.encoder = self.make_encoder(config)
        enc = self.encoder.enc_channels  # stride 2, 4, 8, 16, 32
        self.top = conv_bn_relu(enc[4], dec[0], 1)
        # level i (stride 16, 8, 4, 2): up(x) + skips[i](enc) -> blocks[i] -> dec[i + 1]
        self.skips = nn.ModuleList(SkipProjection(enc[3 - i], dec[i]) for i in range(4))
        self.blocks = nn.ModuleList(DecoderBlock(dec[i], dec[i + 1]) for i in range(4))
        self.head = nn.Conv2d(dec[4], config.num_classes, 1)
        encoder_modules = set(self.encoder.modules())
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m not in encoder_modules:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @staticmethod
    def make_encoder(config: MBV2UNetConfig) -> nn.Module:
        """The encoder: features at strides 2, 4, 8, 16, 32, channels in .enc_channels."""
        return MobileNetV2Backbone(3, config.width)

    def pretrained_encoder(self) -> Tuple[Optional[nn.Module], str]:
        """(module that takes ImageNet weights, encoder name); (None, name) when there are none."""
        return None, "mobilenetv2"

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, num_classes, H, W) class logits."""
        enc = self.encoder(x)
        y = self.top(enc[4])
        for i, (skip, block) in enumerate(zip(self.skips, self.blocks)):
            feature = enc[3 - i]
            y = block(F.interpolate(y, size=feature.shape[2:], mode="bilinear", align_corners=False) + skip(feature))
        return F.interpolate(self.head(y), size=x.shape[2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        logits = self.logits(x)
        return {"out": torch.softmax(logits, dim=1), "logits": logits}

    def deploy_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities [bg, unknown, fg]."""
        return torch.softmax(self.logits(x), dim=1)


@dataclass
class MBV2UNetSODConfig(MBV2UNetConfig):
    """Saliency variant settings: as MBV2UNetConfig with a single foreground channel."""

    num_classes: int = 1


@register_model("mbv2_unet_sod", config=MBV2UNetSODConfig, task="saliency", encoder="mobilenetv2")
class MBV2UNetSOD(MBV2UNet):
    """The MobileNetV2-UNet with a 1-channel head: logits (N,1,H,W), out = sigmoid; the CPU-trainable saliency
    net (about 20x the training throughput of U^2-NetP at the same size)."""

    def __init__(self, config: MBV2UNetSODConfig) -> None:
        if config.num_classes != 1:
            raise ValueError("mbv2_unet_sod has one output channel, got num_classes={}".format(config.num_classes))
        super().__init__(config)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        logits = self.logits(x)
        return {"out": torch.sigmoid(logits), "logits": logits}

    def deploy_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Foreground probability (N,1,H,W)."""
        return torch.sigmoid(self.logits(x))
