"""Channel records: read the channel counts of a network's conv/norm/linear layers and rebuild layers to match one.

A pruned network differs from its design only in these counts, so a record is all a checkpoint needs to rebuild it
before load_state_dict(strict=True).
"""
from typing import Dict, List

import torch
from torch import nn

CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d)
NORM_TYPES = (nn.BatchNorm2d, nn.InstanceNorm2d, nn.BatchNorm1d, nn.InstanceNorm1d)
LINEAR_TYPES = (nn.Linear,)


class ChannelRecordError(ValueError):
    """A channel record names a layer the network lacks, or gives counts that cannot form that layer."""


def layer_channels(module: nn.Module) -> List[int]:
    """[in, out, groups] for a conv, [num_features] for a norm, [in, out] for a linear layer."""
    if isinstance(module, CONV_TYPES):
        return [int(module.in_channels), int(module.out_channels), int(module.groups)]
    if isinstance(module, NORM_TYPES):
        return [int(module.num_features)]
    if isinstance(module, LINEAR_TYPES):
        return [int(module.in_features), int(module.out_features)]
    raise ChannelRecordError("{} has no channel record".format(type(module).__name__))


def channel_record(model: nn.Module) -> Dict[str, List[int]]:
    """Channel counts of every conv, norm and linear layer, keyed by module path (shared modules listed once)."""
    return {name: layer_channels(module) for name, module in model.named_modules()
            if isinstance(module, CONV_TYPES + NORM_TYPES + LINEAR_TYPES)}


def _like(old: torch.nn.Parameter) -> dict:
    return {"device": old.device, "dtype": old.dtype}


def _resized_conv(old: nn.Module, counts: List[int], path: str) -> nn.Module:
    if len(counts) != 3:
        raise ChannelRecordError("{}: a conv record is [in, out, groups], got {}".format(path, counts))
    cin, cout, groups = (int(c) for c in counts)
    if min(cin, cout, groups) < 1 or cin % groups or cout % groups:
        raise ChannelRecordError("{}: in={} out={} groups={} do not form a conv".format(path, cin, cout, groups))
    kwargs = dict(kernel_size=old.kernel_size, stride=old.stride, padding=old.padding, dilation=old.dilation,
                  groups=groups, bias=old.bias is not None, padding_mode=old.padding_mode, **_like(old.weight))
    if isinstance(old, nn.ConvTranspose2d):
        kwargs["output_padding"] = old.output_padding
    return type(old)(cin, cout, **kwargs)


def _resized_norm(old: nn.Module, counts: List[int], path: str) -> nn.Module:
    if len(counts) != 1 or int(counts[0]) < 1:
        raise ChannelRecordError("{}: a norm record is [num_features], got {}".format(path, counts))
    like = _like(old.weight) if old.weight is not None else (
        _like(old.running_mean) if old.running_mean is not None else {})
    return type(old)(int(counts[0]), eps=old.eps, momentum=old.momentum, affine=old.affine,
                     track_running_stats=old.track_running_stats, **like)


def _resized_linear(old: nn.Module, counts: List[int], path: str) -> nn.Module:
    if len(counts) != 2 or min(int(c) for c in counts) < 1:
        raise ChannelRecordError("{}: a linear record is [in, out], got {}".format(path, counts))
    return type(old)(int(counts[0]), int(counts[1]), bias=old.bias is not None, **_like(old.weight))


def resized(old: nn.Module, counts: List[int], path: str = "layer") -> nn.Module:
    """A fresh layer like `old` (same kind, kernel, stride, eps, ...) with the channel counts in `counts`."""
    if isinstance(old, CONV_TYPES):
        return _resized_conv(old, counts, path)
    if isinstance(old, NORM_TYPES):
        return _resized_norm(old, counts, path)
    if isinstance(old, LINEAR_TYPES):
        return _resized_linear(old, counts, path)
    raise ChannelRecordError("{}: a {} has no channel counts".format(path, type(old).__name__))


def apply_channels(model: nn.Module, record: Dict[str, List[int]]) -> nn.Module:
    """Replace each layer named in `record` whose counts differ by a resized one (in place); returns `model`."""
    modules = dict(model.named_modules())
    for path in sorted(record):
        counts = [int(c) for c in record[path]]
        old = modules.get(path)
        if old is None or not path:
            raise ChannelRecordError("{}: no such layer in {}".format(path or "''", type(model).__name__))
        if layer_channels(old) == counts:
            continue
        parent_path, _, attr = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        new = resized(old, counts, path)
        new.train(old.training)
        setattr(parent, attr, new)  # a shared parent updates every path that reaches it
    return model
