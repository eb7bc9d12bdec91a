"""Loader plugin (entry point edgematte.loaders): kit checkpoints (.pt/.pth/.ckpt) open in edgematte.edge.runtime.

Registering costs nothing: torch is imported only when a checkpoint is actually loaded.
"""
from typing import Any

from edgematte.edge.errors import MissingExtraError
from edgematte.edge.runtime import Predictor

SUFFIXES = (".pt", ".pth", ".ckpt")


def load_torch_predictor(path: str, device: str = "CPU", **opts: Any) -> Predictor:
    """The loader factory the edge runtime calls for .pt/.pth/.ckpt files (a TorchPredictor)."""
    try:
        from .torch_predictor import TorchPredictor
    except ImportError:
        raise MissingExtraError("{}: running a PyTorch checkpoint".format(path), "torch", "train") from None
    return TorchPredictor.from_checkpoint(path, device=device, **opts)


def register() -> None:
    """Entry point (edgematte.loaders): let edgematte.edge.runtime.load_model open kit checkpoints."""
    from edgematte.edge.runtime import register_loader

    register_loader(SUFFIXES, load_torch_predictor)


def __getattr__(name: str) -> Any:
    """TorchPredictor and torch_device stay importable from here, loaded on first use (PEP 562)."""
    if name in ("TorchPredictor", "torch_device"):
        from . import torch_predictor

        return getattr(torch_predictor, name)
    raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name))
