"""Convolution rewrites: swap a dense conv for a grouped or depthwise-separable one, initialised from its weights.

A rewrite record (config.rewrites) maps module path -> kind ("grouped:G" or "dwsep"); the registry applies it to the
designed network before the channel record, so a rewritten model can also be pruned and still rebuild from its config.

Initialisation from the dense kernel W[out, in, k, k]:
  grouped:G  W_g[o, j] = mean of W[o, G*j : G*j + G] (each run of G adjacent input channels), bias copied;
  dwsep      depthwise[i] = mean over o of W[o, i] (groups=in, no bias, the conv's stride/padding/dilation),
             pointwise[o, i] = mean over the k x k window of W[o, i], pointwise bias = the dense bias.
"""
from typing import Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

DWSEP = "dwsep"
GROUPED = "grouped"


class RewriteError(ValueError):
    """A rewrite record names a layer that is not a dense conv, an unknown kind, or channels a kind cannot split."""


class DWSepConv2d(nn.Module):
    """Depthwise k x k conv (no bias) then pointwise 1x1 conv: the depthwise-separable form of a dense conv."""

    def __init__(self, depthwise: nn.Conv2d, pointwise: nn.Conv2d) -> None:
        super().__init__()
        self.depthwise = depthwise
        self.pointwise = pointwise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def parse_kind(kind: str) -> Tuple[str, int]:
    """("grouped", G) for "grouped:G" (G >= 2), ("dwsep", 0) for "dwsep"; RewriteError otherwise."""
    text = str(kind).strip().lower()
    if text == DWSEP:
        return DWSEP, 0
    name, sep, count = text.partition(":")
    if name == GROUPED and sep and count.isdigit() and int(count) >= 2:
        return GROUPED, int(count)
    raise RewriteError("unknown rewrite kind {!r} (expected grouped:G with G >= 2, e.g. grouped:2, or dwsep)".format(
        kind))


def is_dense_conv(module: nn.Module) -> bool:
    """A plain nn.Conv2d with groups == 1 (transposed convs are not rewritten)."""
    return type(module) is nn.Conv2d and module.groups == 1


def check_rewritable(conv: nn.Module, kind: str, path: str = "layer") -> None:
    """RewriteError unless `conv` is a dense conv whose channels `kind` can split."""
    name, groups = parse_kind(kind)
    if not is_dense_conv(conv):
        detail = "groups={}".format(conv.groups) if isinstance(conv, nn.Conv2d) else type(conv).__name__
        raise RewriteError("{}: not a dense Conv2d ({}), cannot rewrite it as {}".format(path, detail, kind))
    if name == GROUPED and (conv.in_channels % groups or conv.out_channels % groups):
        raise RewriteError("{}: in={} out={} channels are not divisible by {} groups".format(
            path, conv.in_channels, conv.out_channels, groups))


def grouped_from_dense(conv: nn.Conv2d, groups: int) -> nn.Conv2d:
    """A grouped conv (same kernel, stride, padding, dilation, bias) whose weights average runs of `groups` inputs."""
    check_rewritable(conv, "{}:{}".format(GROUPED, groups))
    weight = conv.weight.detach()
    out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                    dilation=conv.dilation, groups=groups, bias=conv.bias is not None, padding_mode=conv.padding_mode,
                    device=weight.device, dtype=weight.dtype)
    cout, cin, kh, kw = weight.shape
    with torch.no_grad():
        out.weight.copy_(weight.reshape(cout, cin // groups, groups, kh, kw).mean(dim=2))
        if conv.bias is not None:
            out.bias.copy_(conv.bias.detach())
    out.train(conv.training)
    return out


def dwsep_from_dense(conv: nn.Conv2d) -> DWSepConv2d:
    """A DWSepConv2d: depthwise = kernel averaged over outputs, pointwise = kernel averaged over space (+ bias)."""
    check_rewritable(conv, DWSEP)
    weight = conv.weight.detach()
    like = {"device": weight.device, "dtype": weight.dtype}
    cin, cout = conv.in_channels, conv.out_channels
    depthwise = nn.Conv2d(cin, cin, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                          dilation=conv.dilation, groups=cin, bias=False, padding_mode=conv.padding_mode, **like)
    pointwise = nn.Conv2d(cin, cout, 1, bias=conv.bias is not None, **like)
    with torch.no_grad():
        depthwise.weight.copy_(weight.mean(dim=0).unsqueeze(1))
        pointwise.weight.copy_(weight.mean(dim=(2, 3), keepdim=True))
        if conv.bias is not None:
            pointwise.bias.copy_(conv.bias.detach())
    module = DWSepConv2d(depthwise, pointwise)
    module.train(conv.training)
    return module


def rewritten(conv: nn.Conv2d, kind: str) -> nn.Module:
    """The rewritten replacement of dense `conv` for `kind`, initialised from its weights."""
    name, groups = parse_kind(kind)
    return dwsep_from_dense(conv) if name == DWSEP else grouped_from_dense(conv, groups)


def _recorded_dense(conv: nn.Conv2d, path: str, kind: str,
                    channels: Optional[Mapping[str, List[int]]]) -> nn.Conv2d:
    """`conv` resized to the dense in/out counts a channel record gives the rewritten layer (pruned after rewrite)."""
    if not channels:
        return conv
    if parse_kind(kind)[0] == DWSEP:
        depthwise, pointwise = channels.get(path + ".depthwise"), channels.get(path + ".pointwise")
        cin = depthwise[0] if depthwise else (pointwise[0] if pointwise else conv.in_channels)
        cout = pointwise[1] if pointwise else conv.out_channels
    else:
        counts = channels.get(path)
        cin, cout = (counts[0], counts[1]) if counts and len(counts) == 3 else (conv.in_channels, conv.out_channels)
    if (int(cin), int(cout)) == (conv.in_channels, conv.out_channels):
        return conv
    if min(int(cin), int(cout)) < 1:
        raise RewriteError("{}: channel record gives in={} out={}".format(path, cin, cout))
    return nn.Conv2d(int(cin), int(cout), conv.kernel_size, stride=conv.stride, padding=conv.padding,
                     dilation=conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode,
                     device=conv.weight.device, dtype=conv.weight.dtype)


def apply_rewrites(model: nn.Module, rewrites: Mapping[str, str],
                   channels: Optional[Mapping[str, List[int]]] = None, strict: bool = True) -> nn.Module:
    """Replace each conv named in `rewrites` by its rewritten form (in place, parents before children); returns model.

    `channels` (a channel record applied afterwards) sizes a layer that was pruned before or after its rewrite, so
    the divisibility check sees the counts it will have. strict=False skips layers the kind cannot split instead of
    raising (used for the design record, where a pruned layer may be divisible although its designed one is not).
    """
    for path in sorted(rewrites):
        kind = rewrites[path]
        parse_kind(kind)
        modules = dict(model.named_modules())
        conv = modules.get(path)
        if conv is None or not path:
            raise RewriteError("{}: no such layer in {}".format(path or "''", type(model).__name__))
        try:
            conv = _recorded_dense(conv, path, kind, channels) if is_dense_conv(conv) else conv
            new = rewritten(conv, kind)
        except RewriteError:
            if strict:
                raise
            continue
        parent_path, _, attr = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, attr, new)  # a shared parent (MODNet's backbone) updates every path that reaches it
    return model


def normalise_rewrites(rewrites: object) -> Optional[Dict[str, str]]:
    """The record as {path: canonical kind}, None when empty; RewriteError when it is not a map of known kinds."""
    if rewrites is None:
        return None
    if not isinstance(rewrites, Mapping):
        raise RewriteError("rewrites must map module path -> kind (grouped:G or dwsep), got {}".format(
            type(rewrites).__name__))
    out = {}
    for path, kind in rewrites.items():
        if not isinstance(kind, str):
            raise RewriteError("{}: rewrite kind must be a string, got {!r}".format(path, kind))
        try:
            name, groups = parse_kind(kind)
        except RewriteError as exc:
            raise RewriteError("{}: {}".format(path, exc)) from None
        out[str(path)] = DWSEP if name == DWSEP else "{}:{}".format(GROUPED, groups)
    return out or None
