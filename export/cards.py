"""Model cards for exported artifacts: the ONNX card (f32 NCHW RGB normalised) and the IR card (u8 NHWC BGR raw)."""
import copy
import dataclasses
from typing import Any, Dict, Optional, Sequence

from torch import nn

from edgematte.edge.card import ModelCard, Normalisation
from edgematte.train.checkpoint import card_for

ONNX_INPUT = {"dtype": "f32", "layout": "NCHW", "color": "RGB", "normalised": True}
IR_INPUT = {"dtype": "u8", "layout": "NHWC", "color": "BGR", "normalised": False}
PRECISIONS = ("fp32", "fp16")


def tool_versions() -> Dict[str, str]:
    """Versions of the tools that made the artifact."""
    import onnx
    import torch

    from edgematte.edge._ov import version as ov_version

    return {"torch": torch.__version__, "onnx": onnx.__version__, "openvino": ov_version()}


def _config_dict(model: nn.Module) -> Dict[str, Any]:
    config = getattr(model, "config", None)
    if config is None:
        return {}
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return dict(config)


def onnx_card(model: nn.Module, input_size: Sequence[int], dynamic: bool = False,
              base: Optional[ModelCard] = None) -> ModelCard:
    """The card an ONNX file carries: `base` (or a fresh one) at `input_size`, taking normalised f32 RGB NCHW."""
    card = copy.deepcopy(base) if base is not None else card_for(model)
    size = [int(input_size[0]), int(input_size[1])]
    config = _config_dict(model)
    if config:
        config["input_size"] = size
        card.config = config
        card.normalisation = Normalisation(color="RGB", mean=[float(v) for v in config["mean"]],
                                           std=[float(v) for v in config["std"]])
    card.input_size = size
    card.dynamic = bool(dynamic)
    card.input = dict(ONNX_INPUT)
    card.precision = "FP32"
    card.weights_sha256 = None
    card.tools = tool_versions()
    return card


def ir_card(card: ModelCard, precision: str) -> ModelCard:
    """The card an IR carries: same model, u8 BGR NHWC input (preprocessing inside), FP32/FP16 weights."""
    if precision not in PRECISIONS:
        raise ValueError("precision must be one of {}, got {!r}".format(PRECISIONS, precision))
    out = copy.deepcopy(card)
    out.input = dict(IR_INPUT)
    out.precision = precision.upper()
    out.weights_sha256 = None
    out.tools = tool_versions()
    return out
