"""U^2-Net and U^2-NetP (Qin et al., 2020): nested U-structure of residual U-blocks, six side outputs + fused map.

Parameter names match the reference (github.com/xuebinqin/U-2-Net, model/u2net.py), so u2net.pth / u2netp.pth
load with strict=True.
"""
from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import ModelConfig, ZooModel
from .registry import register_model


@dataclass
class U2NetConfig(ModelConfig):
    """U^2-Net settings (the stage widths are fixed per variant: u2net or u2netp)."""


def _upsample_like(src: torch.Tensor, tar: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of src to tar's spatial size (ONNX-exportable form of the reference's F.upsample)."""
    return F.interpolate(src, size=tar.shape[2:], mode="bilinear", align_corners=False)


class REBNCONV(nn.Module):
    """3x3 (dilated) conv + BatchNorm + ReLU."""

    def __init__(self, in_ch: int, out_ch: int, dirate: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dirate, dilation=dirate)
        self.bn_s1 = nn.BatchNorm2d(out_ch)
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu_s1(self.bn_s1(self.conv_s1(x)))


class RSU(nn.Module):
    """Residual U-block RSU-L (L = depth 4..7): an L-level U-Net inside, pooled by 2, plus the input residual."""

    def __init__(self, depth: int, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.depth = depth
        self.rebnconvin = REBNCONV(in_ch, out_ch, 1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, 1)
        for i in range(2, depth):
            setattr(self, "rebnconv{}".format(i), REBNCONV(mid_ch, mid_ch, 1))
        setattr(self, "rebnconv{}".format(depth), REBNCONV(mid_ch, mid_ch, 2))
        for i in range(depth - 1, 1, -1):
            setattr(self, "rebnconv{}d".format(i), REBNCONV(mid_ch * 2, mid_ch, 1))
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, 1)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        skips: List[torch.Tensor] = []
        hx = hxin
        for i in range(1, self.depth):
            hx = getattr(self, "rebnconv{}".format(i))(hx)
            skips.append(hx)
            if i < self.depth - 1:
                hx = self.pool(hx)
        hx = getattr(self, "rebnconv{}".format(self.depth))(hx)
        for i in range(self.depth - 1, 0, -1):
            hx = getattr(self, "rebnconv{}d".format(i))(torch.cat((hx, skips[i - 1]), 1))
            if i > 1:
                hx = _upsample_like(hx, skips[i - 2])
        return hx + hxin


class RSU4F(nn.Module):
    """RSU-4F: RSU-4 with dilations 1/2/4/8 instead of pooling (for the low-resolution stages)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.rebnconvin = REBNCONV(in_ch, out_ch, 1)
        self.rebnconv1 = REBNCONV(out_ch, mid_ch, 1)
        self.rebnconv2 = REBNCONV(mid_ch, mid_ch, 2)
        self.rebnconv3 = REBNCONV(mid_ch, mid_ch, 4)
        self.rebnconv4 = REBNCONV(mid_ch, mid_ch, 8)
        self.rebnconv3d = REBNCONV(mid_ch * 2, mid_ch, 4)
        self.rebnconv2d = REBNCONV(mid_ch * 2, mid_ch, 2)
        self.rebnconv1d = REBNCONV(mid_ch * 2, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(hx1)
        hx3 = self.rebnconv3(hx2)
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat((hx4, hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((hx3d, hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((hx2d, hx1), 1))
        return hx1d + hxin


# (block depth, 0 = RSU4F; in, mid, out) for encoder stages 1..6 and decoder stages 5d..1d
Spec = Tuple[int, int, int, int]
_SPECS: Dict[str, Dict[str, Spec]] = {
    "u2net": {"stage1": (7, 3, 32, 64), "stage2": (6, 64, 32, 128), "stage3": (5, 128, 64, 256),
              "stage4": (4, 256, 128, 512), "stage5": (0, 512, 256, 512), "stage6": (0, 512, 256, 512),
              "stage5d": (0, 1024, 256, 512), "stage4d": (4, 1024, 128, 256), "stage3d": (5, 512, 64, 128),
              "stage2d": (6, 256, 32, 64), "stage1d": (7, 128, 16, 64)},
    "u2netp": {"stage1": (7, 3, 16, 64), "stage2": (6, 64, 16, 64), "stage3": (5, 64, 16, 64),
               "stage4": (4, 64, 16, 64), "stage5": (0, 64, 16, 64), "stage6": (0, 64, 16, 64),
               "stage5d": (0, 128, 16, 64), "stage4d": (4, 128, 16, 64), "stage3d": (5, 128, 16, 64),
               "stage2d": (6, 128, 16, 64), "stage1d": (7, 128, 16, 64)},
}


def _block(spec: Spec) -> nn.Module:
    depth, cin, mid, cout = spec
    return RSU4F(cin, mid, cout) if depth == 0 else RSU(depth, cin, mid, cout)


class U2Net(ZooModel):
    """U^2-Net saliency network: logits = fused d0 then side outputs d1..d6, all at input size."""

    def __init__(self, config: U2NetConfig, variant: str) -> None:
        super().__init__(config)
        spec = _SPECS[variant]
        for name in ("stage1", "stage2", "stage3", "stage4", "stage5", "stage6",
                     "stage5d", "stage4d", "stage3d", "stage2d", "stage1d"):
            setattr(self, name, _block(spec[name]))
        side_in = [spec["stage1d"][3], spec["stage2d"][3], spec["stage3d"][3], spec["stage4d"][3],
                   spec["stage5d"][3], spec["stage6"][3]]
        for i, cin in enumerate(side_in, start=1):
            setattr(self, "side{}".format(i), nn.Conv2d(cin, 1, 3, padding=1))
        self.outconv = nn.Conv2d(6, 1, 1)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 7, H, W) pre-sigmoid maps: fused d0, then d1..d6."""
        hx1 = self.stage1(x)
        hx2 = self.stage2(self.pool(hx1))
        hx3 = self.stage3(self.pool(hx2))
        hx4 = self.stage4(self.pool(hx3))
        hx5 = self.stage5(self.pool(hx4))
        hx6 = self.stage6(self.pool(hx5))
        hx5d = self.stage5d(torch.cat((_upsample_like(hx6, hx5), hx5), 1))
        hx4d = self.stage4d(torch.cat((_upsample_like(hx5d, hx4), hx4), 1))
        hx3d = self.stage3d(torch.cat((_upsample_like(hx4d, hx3), hx3), 1))
        hx2d = self.stage2d(torch.cat((_upsample_like(hx3d, hx2), hx2), 1))
        hx1d = self.stage1d(torch.cat((_upsample_like(hx2d, hx1), hx1), 1))
        d1 = self.side1(hx1d)
        sides = [d1] + [_upsample_like(getattr(self, "side{}".format(i))(h), d1)
                        for i, h in zip(range(2, 7), (hx2d, hx3d, hx4d, hx5d, hx6))]
        d0 = self.outconv(torch.cat(sides, 1))
        return torch.cat([d0] + sides, 1)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        logits = self.logits(x)
        return {"out": torch.sigmoid(logits[:, :1]), "logits": logits}

    def deploy_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sigmoid of the fused map d0."""
        return torch.sigmoid(self.logits(x)[:, :1])


@register_model("u2net", config=U2NetConfig, task="saliency")
def build_u2net(config: U2NetConfig) -> U2Net:
    """U^2-Net (44M parameters)."""
    return U2Net(config, "u2net")


@register_model("u2netp", config=U2NetConfig, task="saliency")
def build_u2netp(config: U2NetConfig) -> U2Net:
    """U^2-NetP, the 1.1M-parameter variant."""
    return U2Net(config, "u2netp")
