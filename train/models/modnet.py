"""MODNet (Ke et al., AAAI 2022) with a MobileNetV2 backbone: semantic, detail and fusion branches.

Parameter names match the reference implementation (github.com/ZHKKKe/MODNet, src/models/modnet.py), so the
released `modnet_photographic_portrait_matting.ckpt` loads with strict=True once its `module.` prefix is removed.
Like the reference, the backbone is registered twice (`backbone.` and `lr_branch.backbone.`, one shared module).
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import ModelConfig, ZooModel
from .mobilenetv2 import MobileNetV2Backbone
from .registry import register_model


@dataclass
class MODNetConfig(ModelConfig):
    """MODNet settings; MODNet normalises RGB to [-1, 1]."""

    input_size: List[int] = field(default_factory=lambda: [512, 512])
    mean: List[float] = field(default_factory=lambda: [127.5, 127.5, 127.5])
    std: List[float] = field(default_factory=lambda: [127.5, 127.5, 127.5])
    hr_channels: int = 32
    width: float = 1.0  # MobileNetV2 width multiplier


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of x to the size of `like`; equals the reference's x2 / x0.5 steps when H, W % 32 == 0."""
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)


class SafeInstanceNorm2d(nn.InstanceNorm2d):
    """Instance norm (no affine) whose variance cannot overflow in FP16.

    The mean is subtracted first and the centred values are divided by their per-channel max |x| before squaring,
    so every squared term is <= 1 in any precision; the result equals (x - mean) / sqrt(var + eps) exactly.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(dim=(2, 3), keepdim=True)
        scale = centred.abs().amax(dim=(2, 3), keepdim=True).clamp_min(1e-2).detach()  # output does not depend on it
        unit = centred / scale
        var = (unit * unit).mean(dim=(2, 3), keepdim=True)
        eps = (self.eps ** 0.5 / scale) ** 2  # eps / scale^2 without forming scale^2
        return unit * torch.rsqrt(var + eps)


class IBNorm(nn.Module):
    """Batch norm on the first channels, instance norm on the rest; the split comes from bnorm.num_features."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        bn_channels = in_channels // 2
        self.bnorm = nn.BatchNorm2d(bn_channels, affine=True)
        self.inorm = SafeInstanceNorm2d(in_channels - bn_channels, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_bn = self.bnorm.num_features
        # Slices, not torch.split: Torch-Pruning 1.6 mis-maps split outputs that feed more than one op.
        return torch.cat((self.bnorm(x[:, :n_bn]), self.inorm(x[:, n_bn:])), dim=1)


class Conv2dIBNormRelu(nn.Module):
    """Conv + optional IBNorm + optional ReLU, in `.layers` as in the reference."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0,
                 with_ibn: bool = True, with_relu: bool = True) -> None:
        super().__init__()
        layers: List[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=True)]
        if with_ibn:
            layers.append(IBNorm(cout))
        if with_relu:
            layers.append(nn.ReLU(inplace=True))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class SEBlock(nn.Module):
    """Squeeze-and-excitation channel attention."""

    def __init__(self, in_channels: int, out_channels: int, reduction: int = 1) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(in_channels, in_channels // reduction, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(in_channels // reduction, out_channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.fc(torch.flatten(self.pool(x), 1))
        return x * weight[:, :, None, None]


class LRBranch(nn.Module):
    """Low-resolution semantic branch: backbone + SE + two 5x5 convs; 1/16-scale semantic logit."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        enc = backbone.enc_channels
        self.backbone = backbone
        self.se_block = SEBlock(enc[4], enc[4], reduction=4)
        self.conv_lr16x = Conv2dIBNormRelu(enc[4], enc[3], 5, stride=1, padding=2)
        self.conv_lr8x = Conv2dIBNormRelu(enc[3], enc[2], 5, stride=1, padding=2)
        self.conv_lr = Conv2dIBNormRelu(enc[2], 1, 3, stride=2, padding=1, with_ibn=False, with_relu=False)

    def forward(self, enc: Sequence[torch.Tensor]) -> torch.Tensor:
        """lr8x features from the backbone outputs (the backbone itself runs once, in MODNet.forward)."""
        lr16x = self.conv_lr16x(_resize(self.se_block(enc[4]), enc[3]))
        return self.conv_lr8x(_resize(lr16x, enc[2]))


class HRBranch(nn.Module):
    """High-resolution detail branch on image + stride-2/4 features + upsampled semantics."""

    def __init__(self, hr: int, enc: Sequence[int]) -> None:
        super().__init__()
        self.tohr_enc2x = Conv2dIBNormRelu(enc[0], hr, 1, stride=1, padding=0)
        self.conv_enc2x = Conv2dIBNormRelu(hr + 3, hr, 3, stride=2, padding=1)
        self.tohr_enc4x = Conv2dIBNormRelu(enc[1], hr, 1, stride=1, padding=0)
        self.conv_enc4x = Conv2dIBNormRelu(2 * hr, 2 * hr, 3, stride=1, padding=1)
        # hr4x (2*hr) + upsampled lr8x semantics (enc[2]) + image; the reference's 3*hr+3 when enc[2] == hr == 32
        self.conv_hr4x = nn.Sequential(Conv2dIBNormRelu(2 * hr + enc[2] + 3, 2 * hr, 3, padding=1),
                                       Conv2dIBNormRelu(2 * hr, 2 * hr, 3, padding=1),
                                       Conv2dIBNormRelu(2 * hr, hr, 3, padding=1))
        self.conv_hr2x = nn.Sequential(Conv2dIBNormRelu(2 * hr, 2 * hr, 3, padding=1),
                                       Conv2dIBNormRelu(2 * hr, hr, 3, padding=1),
                                       Conv2dIBNormRelu(hr, hr, 3, padding=1),
                                       Conv2dIBNormRelu(hr, hr, 3, padding=1))
        self.conv_hr = nn.Sequential(Conv2dIBNormRelu(hr + 3, hr, 3, padding=1),
                                     Conv2dIBNormRelu(hr, 1, 1, padding=0, with_ibn=False, with_relu=False))

    def forward(self, img: torch.Tensor, enc2x: torch.Tensor, enc4x: torch.Tensor,
                lr8x: torch.Tensor) -> torch.Tensor:
        """hr2x features (the detail logit is computed by `detail`)."""
        enc2x = self.tohr_enc2x(enc2x)
        hr4x = self.conv_enc2x(torch.cat((_resize(img, enc2x), enc2x), dim=1))
        enc4x = self.tohr_enc4x(enc4x)
        hr4x = self.conv_enc4x(torch.cat((hr4x, enc4x), dim=1))
        hr4x = self.conv_hr4x(torch.cat((hr4x, _resize(lr8x, hr4x), _resize(img, hr4x)), dim=1))
        return self.conv_hr2x(torch.cat((_resize(hr4x, enc2x), enc2x), dim=1))

    def detail(self, img: torch.Tensor, hr2x: torch.Tensor) -> torch.Tensor:
        """Full-resolution detail logit (training only)."""
        return self.conv_hr(torch.cat((_resize(hr2x, img), img), dim=1))


class FusionBranch(nn.Module):
    """Fuses semantics and details into the full-resolution matte logit."""

    def __init__(self, hr: int, enc: Sequence[int]) -> None:
        super().__init__()
        self.conv_lr4x = Conv2dIBNormRelu(enc[2], hr, 5, stride=1, padding=2)
        self.conv_f2x = Conv2dIBNormRelu(2 * hr, hr, 3, stride=1, padding=1)
        self.conv_f = nn.Sequential(Conv2dIBNormRelu(hr + 3, hr // 2, 3, padding=1),
                                    Conv2dIBNormRelu(hr // 2, 1, 1, padding=0, with_ibn=False, with_relu=False))

    def forward(self, img: torch.Tensor, lr8x: torch.Tensor, hr2x: torch.Tensor, enc4x: torch.Tensor) -> torch.Tensor:
        lr4x = self.conv_lr4x(_resize(lr8x, enc4x))
        f2x = self.conv_f2x(torch.cat((_resize(lr4x, hr2x), hr2x), dim=1))
        return self.conv_f(torch.cat((_resize(f2x, img), img), dim=1))


@register_model("modnet", config=MODNetConfig, task="alpha", encoder="mobilenetv2")
class MODNet(ZooModel):
    """Trimap-free portrait matting: semantic (1/16), detail (1/1) and fused matte, all sigmoid probabilities."""

    def __init__(self, config: MODNetConfig) -> None:
        super().__init__(config)
        self.backbone = self.make_encoder(config)
        self.lr_branch = LRBranch(self.backbone)
        self.hr_branch = HRBranch(config.hr_channels, self.backbone.enc_channels)
        self.f_branch = FusionBranch(config.hr_channels, self.backbone.enc_channels)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=0, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def make_encoder(config: MODNetConfig) -> nn.Module:
        """The low-resolution branch's encoder: features at strides 2-32, channels in .enc_channels."""
        return MobileNetV2Backbone(3, config.width)

    def pretrained_encoder(self) -> Tuple[Optional[nn.Module], str]:
        """(module that takes ImageNet weights, encoder name); (None, name) when there are none."""
        return None, "mobilenetv2"

    def _shared(self, img: torch.Tensor):
        enc = self.backbone(img)
        lr8x = self.lr_branch(enc)
        hr2x = self.hr_branch(img, enc[0], enc[1], lr8x)
        return enc, lr8x, hr2x

    def forward(self, img: torch.Tensor) -> Dict[str, torch.Tensor]:
        enc, lr8x, hr2x = self._shared(img)
        matte = torch.sigmoid(self.f_branch(img, lr8x, hr2x, enc[1]))
        return {"out": matte, "matte": matte,
                "semantic": torch.sigmoid(self.lr_branch.conv_lr(lr8x)),
                "detail": torch.sigmoid(self.hr_branch.detail(img, hr2x))}

    def deploy_forward(self, img: torch.Tensor) -> torch.Tensor:
        """The matte only; skips the semantic and detail heads (the reference's inference=True path)."""
        enc, lr8x, hr2x = self._shared(img)
        return torch.sigmoid(self.f_branch(img, lr8x, hr2x, enc[1]))
