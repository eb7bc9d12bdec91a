"""Shared pieces of every zoo model: the config base dataclass and the module base with deploy_forward."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch
from torch import nn

IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]


@dataclass
class ModelConfig:
    """Fields every model config has: input size [H, W], RGB normalisation (0..255 units), channels, rewrites."""

    input_size: List[int] = field(default_factory=lambda: [320, 320])
    mean: List[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: List[float] = field(default_factory=lambda: list(IMAGENET_STD))
    # module path -> [in, out, groups] (conv), [num_features] (norm), [in, out] (linear); None = as designed
    channels: Optional[Dict[str, List[int]]] = None
    # module path -> "grouped:G" | "dwsep": dense convs rewritten (train/models/rewrites.py), applied before channels
    rewrites: Optional[Dict[str, str]] = None


class ZooModel(nn.Module):
    """A zoo network: forward(x) -> Dict[str, Tensor] with "out"; deploy_forward(x) -> the "out" tensor alone."""

    arch: str = ""
    task: str = ""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    def deploy_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The deployable output only (what ONNX/IR export traces)."""
        return self.forward(x)["out"]


class DeployModule(nn.Module):
    """Wraps a zoo model so that forward() is its deploy_forward (for torch.onnx.export / torch.jit.trace)."""

    def __init__(self, model: ZooModel) -> None:
        super().__init__()
        self.model = model
        self.train(model.training)  # exporters restore the wrapper's mode onto the whole tree afterwards

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.deploy_forward(x)


def deploy_module(model: ZooModel) -> nn.Module:
    """A module whose forward returns only the deployable output; shares weights with `model`."""
    return DeployModule(model)
