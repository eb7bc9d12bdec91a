"""Kit checkpoints: one torch.save'd dict of tensors and plain data (arch, config, state_dict, card), never modules.

`load_checkpoint` rebuilds the model from arch + config (a pruned model's channel record lives in config.channels)
and turns every way a file can be wrong into a one-line ModelFileError naming the file.
"""
import os
import pickle
from dataclasses import asdict
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from edgematte.edge.card import ModelCard, Normalisation
from edgematte.edge.errors import ModelFileError
from edgematte.edge.io import atomic_path

from .models import build_from_config, config_from_dict, list_models, sync_channels
from .models.registry import ModelConfigError
from .models.stats import count_params

FORMAT = "edgematte-checkpoint/1"
RESERVED = ("format", "arch", "config", "state_dict", "card", "weights_codec", "qweights", "qscales")
# Compact checkpoints (the zoo's): every float weight of 2+ dims as int8 with one fp32 scale per output channel
# (symmetric, max-abs), everything else as saved. A quarter of the size; read_checkpoint expands them, so every
# consumer sees an ordinary state dict.
WEIGHT_CODEC = "int8-per-channel"
CHECKPOINT_INPUT = {"dtype": "f32", "layout": "NCHW", "color": "RGB", "normalised": True}


def card_for(model: nn.Module, name: Optional[str] = None) -> ModelCard:
    """A model card describing `model` as a checkpoint/ONNX artifact (normalised f32 RGB NCHW input)."""
    channels = sync_channels(model)
    config = model.config
    rewrites = getattr(config, "rewrites", None)
    prune = {"channels": channels, "params": count_params(model)} if channels else None
    if rewrites:  # conv rewrites (grouped / depthwise-separable) change the architecture like pruning does
        prune = dict(prune or {"params": count_params(model)}, rewrites=dict(rewrites))
    return ModelCard(name=name or model.arch, task=model.task, arch=model.arch, config=asdict(config),
                     input_size=[int(v) for v in config.input_size], input=dict(CHECKPOINT_INPUT),
                     normalisation=Normalisation(color="RGB", mean=[float(v) for v in config.mean],
                                                 std=[float(v) for v in config.std]),
                     prune=prune, encoder=getattr(config, "encoder_origin", None))


def quantize_weights(state: Mapping[str, torch.Tensor]) -> Dict[str, Dict[str, torch.Tensor]]:
    """{state_dict: tensors kept as they are, qweights: int8, qscales: fp32 per output channel} of `state`."""
    kept, qweights, qscales = {}, {}, {}
    for name, tensor in state.items():
        if tensor.is_floating_point() and tensor.dim() >= 2:
            flat = tensor.detach().float().reshape(tensor.shape[0], -1)
            scale = flat.abs().amax(dim=1).clamp_min(1e-12) / 127.0
            qweights[name] = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(tensor.shape)
            qscales[name] = scale
        else:
            kept[name] = tensor
    return {"state_dict": kept, "qweights": qweights, "qscales": qscales}


def expand_weights(ckpt: Dict[str, Any], source: str = "checkpoint") -> Dict[str, Any]:
    """The checkpoint with a compact one's int8 weights turned back into float tensors in `state_dict`."""
    codec = ckpt.get("weights_codec")
    if codec is None:
        return ckpt
    if codec != WEIGHT_CODEC:
        raise ModelFileError("{}: unknown weights codec {!r} (known: {})".format(source, codec, WEIGHT_CODEC))
    qweights, qscales = ckpt.get("qweights"), ckpt.get("qscales")
    if not (_is_state_dict(qweights) and _is_state_dict(qscales)) or set(qweights) != set(qscales):
        raise ModelFileError("{}: damaged compact checkpoint (int8 weights and scales disagree)".format(source))
    state = dict(ckpt.get("state_dict") or {})
    for name, q in qweights.items():
        scale = qscales[name].float()
        if q.dtype != torch.int8 or q.dim() < 2 or q.numel() == 0 or scale.numel() != q.shape[0]:
            raise ModelFileError("{}: damaged compact checkpoint ({})".format(source, name))
        state[name] = (q.float().reshape(q.shape[0], -1) * scale[:, None]).reshape(q.shape)
    out = {k: v for k, v in ckpt.items() if k not in ("weights_codec", "qweights", "qscales")}
    out["state_dict"] = state
    return out


def save_checkpoint(path: str, model: nn.Module, card: Optional[ModelCard] = None,
                    extra: Optional[Dict[str, Any]] = None, compact: bool = False) -> None:
    """Write {format, arch, config, state_dict, card, **extra} atomically; the channel record is refreshed first.
    `compact` stores the weights as int8 per output channel (WEIGHT_CODEC): for shipping, not for training."""
    clash = sorted(set(extra or {}) & set(RESERVED))
    if clash:
        raise ValueError("extra keys {} clash with the checkpoint's own keys".format(clash))
    sync_channels(model)
    payload: Dict[str, Any] = {
        "format": FORMAT,
        "arch": model.arch,
        "config": asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "card": card.to_dict() if card is not None else None,
    }
    payload.update(extra or {})
    if compact:
        payload.update(quantize_weights(payload["state_dict"]), weights_codec=WEIGHT_CODEC)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str, map_location: Any = "cpu") -> Any:
    """torch.load(weights_only=True) of `path`, with a one-line ModelFileError for missing/empty/corrupt files."""
    if not os.path.exists(path):
        raise ModelFileError("{}: no such checkpoint file".format(path))
    if os.path.isdir(path):
        raise ModelFileError("{}: is a folder, not a checkpoint file".format(path))
    if os.path.getsize(path) == 0:
        raise ModelFileError("{}: empty file, not a checkpoint".format(path))
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head != b"PK\x03\x04" and head[:1] != b"\x80":  # torch.save writes a zip, or a pickle (protocol 2+)
        raise ModelFileError("{}: not a PyTorch checkpoint (neither a zip nor a pickle header)".format(path))
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise ModelFileError("{}: holds pickled Python objects, not plain tensors (refusing to unpickle code; "
                                 "not an edgematte checkpoint)".format(path)) from None
        raise ModelFileError("{}: not a PyTorch checkpoint".format(path)) from None
    except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds on foreign or damaged bytes
        if _starts_like_zip(path):
            reason = (str(exc).split(".")[0] or type(exc).__name__).strip()
            raise ModelFileError("{}: truncated or corrupt checkpoint ({})".format(path, reason)) from None
        raise ModelFileError("{}: not a PyTorch checkpoint ({})".format(path, type(exc).__name__)) from None
    return expand_weights(ckpt, path) if isinstance(ckpt, dict) else ckpt


def _starts_like_zip(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"PK\x03\x04"


def load_checkpoint(path: str, map_location: Any = "cpu") -> Tuple[nn.Module, Dict[str, Any]]:
    """(model in eval mode with the checkpoint's weights, the checkpoint dict); ModelFileError if anything is off."""
    ckpt = read_checkpoint(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        hint = " (a bare state dict: load it with load_state_dict_into)" if _is_state_dict(ckpt) else ""
        raise ModelFileError("{}: not an edgematte checkpoint (format {!r} expected){}".format(path, FORMAT, hint))
    arch = ckpt.get("arch")
    if arch not in list_models():
        raise ModelFileError("{}: unknown architecture {!r} (known: {})".format(path, arch, ", ".join(list_models())))
    config = ckpt.get("config") or {}
    if not isinstance(config, Mapping):
        raise ModelFileError("{}: bad model config: a mapping expected, got {}".format(path, type(config).__name__))
    try:
        model = build_from_config(arch, config_from_dict(arch, dict(config)))
    except ModelConfigError as exc:
        raise ModelFileError("{}: bad model config: {}".format(path, exc)) from None
    if ckpt.get("card") is not None:
        card = ModelCard.from_dict(ckpt["card"], source=path)  # raises ModelFileError when malformed
        if card.task != model.task:  # the runtime reads the output by the card's task
            raise ModelFileError("{}: the model card says task {} but the {} model predicts {}".format(
                path, card.task, arch, model.task))
    state = ckpt.get("state_dict")
    if not _is_state_dict(state):
        raise ModelFileError("{}: the checkpoint has no state_dict of tensors".format(path))
    load_state_dict_into(model, state, path)
    return model.eval(), ckpt


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def load_state_dict_into(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "state dict",
                         strip_prefix: str = "module.") -> nn.Module:
    """load_state_dict(strict=True) after dropping a DataParallel `module.` prefix; mismatches -> one-line error."""
    if strip_prefix and state and all(k.startswith(strip_prefix) for k in state):
        state = {k[len(strip_prefix):]: v for k, v in state.items()}
    problem = describe_mismatch(model, state)
    if problem:
        raise ModelFileError("{}: weights do not fit model {!r}: {}".format(
            source, getattr(model, "arch", type(model).__name__), problem))
    check_finite(state, source)
    model.load_state_dict(state, strict=True)
    return model


def check_finite(state: Mapping[str, torch.Tensor], source: str = "state dict") -> None:
    """Refuse weights holding NaN or Inf: such a model predicts an all-zero mask and nothing else would say why."""
    complex_ = [name for name, tensor in state.items() if tensor.is_complex()]
    if complex_:  # load_state_dict would drop the imaginary part with a warning and go on
        raise ModelFileError("{}: tensor {} holds complex numbers, not real weights".format(source, complex_[0]))
    bad = [name for name, tensor in state.items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        tensor = state[bad[0]]
        what = "NaN" if bool(torch.isnan(tensor).any()) else "Inf"
        more = " and {} more tensor(s)".format(len(bad) - 1) if len(bad) > 1 else ""
        raise ModelFileError("{}: non-finite weights: tensor {} holds {}{} (a diverged training run? use an "
                             "earlier checkpoint)".format(source, bad[0], what, more))


def load_upstream_weights(model: nn.Module, path: str) -> nn.Module:
    """Load a released upstream file (u2net.pth, u2netp.pth, modnet_*.ckpt: a bare state dict) into `model`."""
    state = read_checkpoint(path)
    if isinstance(state, Mapping) and _is_state_dict(state.get("state_dict")):
        state = state["state_dict"]
    if not _is_state_dict(state):
        raise ModelFileError("{}: not a state dict of tensors".format(path))
    return load_state_dict_into(model, state, path)


def describe_mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """'' when `state` fits `model` exactly; else a one-line summary of missing/unexpected/reshaped tensors."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    parts = []
    if missing:
        parts.append("{} missing (e.g. {})".format(len(missing), missing[0]))
    if unexpected:
        parts.append("{} unexpected (e.g. {})".format(len(unexpected), unexpected[0]))
    if reshaped:
        k = reshaped[0]
        parts.append("{} with other shapes (e.g. {}: file {} vs model {})".format(
            len(reshaped), k, list(state[k].shape), list(own[k].shape)))
    return "; ".join(parts)
