"""The engine behind `edgematte rewrite` (compress/rewrite.py): conv rewrites of a model or checkpoint: dense convs become grouped or depthwise-separable ones, initialised from
the dense weights (a warm start: fine-tune afterwards), recorded in config.rewrites so the checkpoint rebuilds.

Eligible layers (documented in the verb's epilog): plain nn.Conv2d with groups == 1, kernel >= min_kernel (3x3+ by
default; dwsep never takes a 1x1 conv, which it would make bigger), in and out channels >= min_channels (so never the
first conv on the 3-channel image nor a 1- or 3-channel output head), and for grouped:G in/out divisible by G.
"""
import fnmatch
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from torch import nn

from edgematte.edge.card import ModelCard, sha256_file
from edgematte.edge.errors import EdgematteError
from edgematte.edge.io import write_text
from edgematte.train.checkpoint import card_for, load_checkpoint, save_checkpoint
from edgematte.train.models import sync_channels
from edgematte.train.models.rewrites import DWSEP, GROUPED, RewriteError, is_dense_conv, parse_kind, rewritten
from edgematte.train.models.stats import count_params

CHECKPOINT_NAME = "rewritten.pt"
REPORT_NAME = "rewrite.json"
DEFAULT_MIN_CHANNELS = 8
DEFAULT_MIN_KERNEL = 2
BYTES_PER_FP32 = 4


class RewriteInputError(EdgematteError):
    """A bad rewrite kind, or a model with no convolution the rewrite may take."""


@dataclass
class RewriteRecord:
    """What a rewrite did: kind, the module paths rewritten, parameter count and FP32 parameter bytes around it."""

    kind: str
    layers: List[str] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0

    @property
    def fp32_bytes_before(self) -> int:
        """FP32 size of the parameters before the rewrite."""
        return self.params_before * BYTES_PER_FP32

    @property
    def fp32_bytes_after(self) -> int:
        """FP32 size of the parameters after the rewrite."""
        return self.params_after * BYTES_PER_FP32

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able dict, sizes included."""
        return dict(asdict(self), fp32_bytes_before=self.fp32_bytes_before, fp32_bytes_after=self.fp32_bytes_after)


@dataclass
class RewriteResult:
    """A rewritten checkpoint on disk: the record, the files written and the checkpoint file sizes."""

    record: RewriteRecord
    source: str
    checkpoint: str
    report: str
    file_bytes_before: int
    file_bytes_after: int
    card: ModelCard

    def to_dict(self) -> Dict[str, Any]:
        """JSON-able dict (what rewrite.json holds)."""
        return {"rewrite": self.record.to_dict(), "source": self.source, "checkpoint": self.checkpoint,
                "file_bytes_before": self.file_bytes_before, "file_bytes_after": self.file_bytes_after,
                "card": self.card.to_dict()}


def canonical_kind(kind: str) -> str:
    """"grouped:G" or "dwsep"; RewriteInputError (one line) for anything else."""
    try:
        name, groups = parse_kind(kind)
    except RewriteError as exc:
        raise RewriteInputError(str(exc)) from None
    return DWSEP if name == DWSEP else "{}:{}".format(GROUPED, groups)


def _matches(path: str, patterns: Optional[Sequence[str]]) -> bool:
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns or ())


def eligible_layers(model: nn.Module, kind: str, include: Optional[Sequence[str]] = None,
                    exclude: Optional[Sequence[str]] = None, min_channels: int = DEFAULT_MIN_CHANNELS,
                    min_kernel: int = DEFAULT_MIN_KERNEL) -> List[str]:
    """Paths of the dense convs `kind` may rewrite (see the module docstring); include/exclude are fnmatch globs."""
    name, groups = parse_kind(canonical_kind(kind))
    smallest_kernel = max(int(min_kernel), 2) if name == DWSEP else int(min_kernel)
    paths = []
    for path, module in model.named_modules():  # a shared module (MODNet's backbone) is listed once
        if not path or not is_dense_conv(module):
            continue
        if max(module.kernel_size) < smallest_kernel:
            continue
        if min(module.in_channels, module.out_channels) < min_channels:
            continue
        if name == GROUPED and (module.in_channels % groups or module.out_channels % groups):
            continue
        if include and not _matches(path, include):
            continue
        if _matches(path, exclude):
            continue
        paths.append(path)
    return paths


def rewrite_model(model: nn.Module, kind: str, include: Optional[Sequence[str]] = None,
                  exclude: Optional[Sequence[str]] = None, min_channels: int = DEFAULT_MIN_CHANNELS,
                  min_kernel: int = DEFAULT_MIN_KERNEL) -> RewriteRecord:
    """Rewrite the eligible convs of a zoo model in place, initialised from their dense weights; records them in
    model.config.rewrites (and refreshes config.channels). RewriteInputError when no layer is eligible."""
    kind = canonical_kind(kind)
    paths = eligible_layers(model, kind, include, exclude, min_channels, min_kernel)
    if not paths:
        hint = "a lower --min-channels" if kind == DWSEP else "--min-kernel 1 (1x1 convs) or a lower --min-channels"
        raise RewriteInputError("no convolution of {} is eligible for {} (dense Conv2d, kernel >= {}, in/out >= {} "
                                "channels{}{}); try {}".format(
                                    getattr(model, "arch", type(model).__name__), kind,
                                    max(min_kernel, 2) if kind == DWSEP else min_kernel, min_channels,
                                    ", divisible by the groups" if kind != DWSEP else "",
                                    ", matching --include/--exclude" if include or exclude else "", hint))
    record = RewriteRecord(kind=kind, layers=paths, params_before=count_params(model))
    for path in paths:
        parent_path, _, attr = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, attr, rewritten(getattr(parent, attr), kind))
    record.params_after = count_params(model)
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "rewrites"):
        config.rewrites = dict(config.rewrites or {}, **{path: kind for path in paths})
        sync_channels(model)
    return record


def rewritten_card(model: nn.Module, source: Optional[ModelCard], record: RewriteRecord, source_path: str) -> ModelCard:
    """The card of a rewritten model: fresh from the model, named <source>_<kind>, the rewrite in `prune` (merged with
    any earlier prune record) and in the notes; the source's metrics are dropped (they described other weights)."""
    base = source.name if source is not None else str(getattr(model, "arch", "model"))
    card = card_for(model, name="{}_{}".format(base, record.kind.replace(":", "")))  # e.g. sod_e7_grouped2
    prune = {k: v for k, v in ((source.prune if source is not None else None) or {}).items()
             if k not in ("channels", "params")}
    prune.update(card.prune or {})
    prune["rewrite"] = {"kind": record.kind, "layers": len(record.layers), "params_before": record.params_before,
                        "params_after": record.params_after, "fine_tuned": False}
    card.prune = prune
    lineage = "{} rewrite of {} dense convs of {}, initialised from the dense weights, not fine-tuned".format(
        record.kind, len(record.layers), os.path.basename(source_path))
    earlier = source.notes if source is not None else ""
    card.notes = (earlier + "; " if earlier else "") + lineage
    return card


def rewrite_checkpoint(src: str, out_dir: str, kind: str, include: Optional[Sequence[str]] = None,
                       exclude: Optional[Sequence[str]] = None, min_channels: int = DEFAULT_MIN_CHANNELS,
                       min_kernel: int = DEFAULT_MIN_KERNEL) -> RewriteResult:
    """Rewrite a kit checkpoint: out_dir/rewritten.pt (extra key "rewrite" = the record) and out_dir/rewrite.json,
    both written atomically."""
    kind = canonical_kind(kind)
    model, ckpt = load_checkpoint(src)
    source_card = ModelCard.from_dict(ckpt["card"], source=src) if ckpt.get("card") else None
    record = rewrite_model(model, kind, include, exclude, min_channels, min_kernel)
    card = rewritten_card(model, source_card, record, src)
    out_ckpt = os.path.join(out_dir, CHECKPOINT_NAME)
    extra = {"rewrite": dict(record.to_dict(), source=os.path.abspath(src), source_sha256=sha256_file(src))}
    save_checkpoint(out_ckpt, model, card, extra=extra)
    result = RewriteResult(record=record, source=src, checkpoint=out_ckpt, report=os.path.join(out_dir, REPORT_NAME),
                           file_bytes_before=os.path.getsize(src), file_bytes_after=os.path.getsize(out_ckpt),
                           card=card)
    write_text(result.report, json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n")
    return result


# -- the `edgematte rewrite` verb ------------------------------------------------------------------------------------
