"""MODNet whose low-resolution semantic branch stands on an ImageNet-pretrained EfficientNet-Lite0/1/2 instead of
the from-scratch MobileNetV2; detail and fusion branches as in MODNet (lite0_modnet, lite1_modnet, lite2_modnet)."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .base import ModelConfig
from .efficientnet_lite import VARIANTS
from .lite_unet import LiteEncoderMixin
from .modnet import MODNet
from .pretrained import LITE_MEAN, LITE_STD
from .registry import register_model


@dataclass
class LiteMODNetConfig(ModelConfig):
    """MODNet-Lite settings: encoder (pinned by the model name), detail-branch width; `encoder_origin` records the
    encoder's weight origin (None: random init)."""

    input_size: List[int] = field(default_factory=lambda: [512, 512])
    mean: List[float] = field(default_factory=lambda: list(LITE_MEAN))
    std: List[float] = field(default_factory=lambda: list(LITE_STD))
    encoder: str = "efficientnet_lite0"
    hr_channels: int = 32
    encoder_origin: Optional[Dict[str, str]] = None


class LiteMODNet(LiteEncoderMixin, MODNet):
    """Trimap-free matting (semantic, detail, fused matte) on an EfficientNet-Lite backbone."""

    encoder_attr = "backbone"


for _encoder in VARIANTS:
    register_model("{}_modnet".format(_encoder.replace("efficientnet_", "")), config=LiteMODNetConfig,
                   task="alpha", encoder=_encoder, fixed={"encoder": _encoder})(LiteMODNet)
