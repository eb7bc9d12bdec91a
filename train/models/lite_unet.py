"""UNets on ImageNet-pretrained EfficientNet-Lite0/1/2 encoders: the MobileNetV2-UNet's decoder and heads (3-class
trimap, 1-channel saliency) on the stronger encoder, one registry name per encoder and head (lite0_unet_sod, ...)."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from torch import nn

from .base import ModelConfig
from .efficientnet_lite import VARIANTS, EfficientNetLite
from .mbv2_unet import MBV2UNet, MBV2UNetSOD
from .pretrained import LITE_MEAN, LITE_STD
from .registry import ModelConfigError, register_model


def check_stride32(config: Any, name: str) -> None:
    """TF-SAME padding is reproduced for inputs that stay even down to stride 32: sizes must be multiples of 32."""
    if any(int(v) % 32 for v in config.input_size):
        raise ModelConfigError("{}: input size {} must be a multiple of 32 (EfficientNet-Lite encoder)".format(
            name, "x".join(str(int(v)) for v in config.input_size)))


@dataclass
class LiteUNetConfig(ModelConfig):
    """EfficientNet-Lite UNet settings: encoder (pinned by the model name), decoder widths (stride 32..2), classes;
    `encoder_origin` records where the encoder's initial weights came from (None: random init)."""

    input_size: List[int] = field(default_factory=lambda: [224, 224])
    mean: List[float] = field(default_factory=lambda: list(LITE_MEAN))
    std: List[float] = field(default_factory=lambda: list(LITE_STD))
    encoder: str = "efficientnet_lite0"
    decoder_channels: List[int] = field(default_factory=lambda: [96, 64, 32, 24, 16])
    num_classes: int = 3
    encoder_origin: Optional[Dict[str, str]] = None


@dataclass
class LiteUNetSODConfig(LiteUNetConfig):
    """Saliency variant: one foreground channel."""

    num_classes: int = 1


class LiteEncoderMixin:
    """Builds the EfficientNet-Lite named by config.encoder and offers it (attribute `encoder_attr`) for ImageNet
    weights."""

    config: Any
    encoder_attr = "encoder"

    @staticmethod
    def make_encoder(config: Any) -> nn.Module:
        check_stride32(config, config.encoder)
        return EfficientNetLite(config.encoder)

    def pretrained_encoder(self) -> Tuple[Optional[nn.Module], str]:
        return getattr(self, self.encoder_attr), self.config.encoder


class LiteUNet(LiteEncoderMixin, MBV2UNet):
    """Trimap UNet on an EfficientNet-Lite encoder: softmax over [bg, unknown, fg]."""


class LiteUNetSOD(LiteEncoderMixin, MBV2UNetSOD):
    """Saliency UNet on an EfficientNet-Lite encoder: sigmoid foreground probability."""


for _encoder in VARIANTS:
    _short = _encoder.replace("efficientnet_", "")  # lite0, lite1, lite2
    register_model("{}_unet".format(_short), config=LiteUNetConfig, task="trimap", encoder=_encoder,
                   fixed={"encoder": _encoder})(LiteUNet)
    register_model("{}_unet_sod".format(_short), config=LiteUNetSODConfig, task="saliency", encoder=_encoder,
                   fixed={"encoder": _encoder})(LiteUNetSOD)
