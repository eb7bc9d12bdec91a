"""L1 filter pruning of zoo models with Torch-Pruning's dependency graph, and the `edgematte prune` verb.

Strategies: `adaptive` keeps, per backbone layer, the fewest filters (by descending L1 norm) whose
cumulative L1 reaches `backbone_threshold` of the layer's total, and removes `ratio` of every other layer; `fixed`
removes `ratio` of every layer; `global` removes `ratio` of all channels ranked together. Kept counts are rounded
up to multiples of `round_to`. Output heads and the network input are never pruned. The pruned model is an
ordinary kit checkpoint whose config.channels rebuilds it (create_model / load_checkpoint, strict).

This module imports no torch at load time (the CLI registers every verb at startup); the work is in _prune_engine.
"""
import argparse
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from edgematte.edge.configs import dataclass_from_dict
from edgematte.edge.errors import InputError
from edgematte.edge.verbs import add_verb

from ._prune_targets import STRATEGIES, PruneTarget, known_targets, prune_target, register_prune_target

__all__ = ["PruneConfig", "PruneConfigError", "PruneRecord", "PruneResult", "PruneTarget", "STRATEGIES",
           "known_targets", "prune_checkpoint", "prune_model", "prune_target", "read_record", "register",
           "register_prune_target"]

CHECKPOINT_NAME = "pruned.pt"
RECORD_NAME = "prune.json"
RECORD_FORMAT = 1


class PruneConfigError(InputError, ValueError):
    """A pruning setting is out of range or unknown."""


@dataclass
class PruneConfig:
    """How to prune: strategy (None = the model's default), removed fraction, backbone L1 threshold, rounding."""

    strategy: Optional[str] = None  # "adaptive" | "fixed" | "global"; None: adaptive for modnet, fixed otherwise
    ratio: float = 0.5  # fraction of filters removed per layer (fixed, adaptive's non-backbone layers) or overall
    backbone_threshold: float = 0.9  # adaptive: share of a backbone layer's total L1 norm the kept filters carry
    round_to: int = 8  # kept channel counts are multiples of this (and at least this)

    def __post_init__(self) -> None:
        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise PruneConfigError("unknown pruning strategy {!r} (known: {})".format(
                self.strategy, ", ".join(STRATEGIES)))
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) or not 0.0 < self.ratio < 1.0:
            raise PruneConfigError("pruning ratio must be a number in (0, 1), got {!r}".format(self.ratio))
        threshold = self.backbone_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
            raise PruneConfigError("backbone threshold must be a number in (0, 1], got {!r}".format(threshold))
        if isinstance(self.round_to, bool) or not isinstance(self.round_to, int) or self.round_to < 1:
            raise PruneConfigError("round_to must be a whole number >= 1, got {!r}".format(self.round_to))
        self.ratio = float(self.ratio)
        self.backbone_threshold = float(self.backbone_threshold)

    def resolve(self, arch: str) -> str:
        """The strategy used for `arch`: the configured one, or the architecture's default."""
        target = prune_target(arch)
        strategy = self.strategy or target.default_strategy
        if strategy == "adaptive" and target.backbone is None:
            raise PruneConfigError("{} has no backbone, so the adaptive strategy does not apply: use --strategy "
                                   "fixed or global".format(arch))
        return strategy

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "PruneConfig":
        """From a JSON-style dict; unknown fields are an error."""
        return dataclass_from_dict(cls, data, "prune config", PruneConfigError)


@dataclass
class PruneRecord:
    """What a pruning run did: settings, per-group kept/original channels, the channel record, size before/after."""

    arch: str
    strategy: str
    ratio: float
    backbone_threshold: Optional[float]  # None unless the strategy was adaptive
    round_to: int
    input_size: List[int]  # where FLOPs were counted
    params_before: int
    params_after: int
    flops_before: int
    flops_after: int
    groups: List[Dict[str, Any]] = field(default_factory=list)  # {"layer", "branch", "original", "kept"}
    channels: Optional[Dict[str, List[int]]] = None  # the pruned model's config.channels
    tools: Dict[str, str] = field(default_factory=dict)
    source: Optional[str] = None  # checkpoint the model came from
    format: int = RECORD_FORMAT

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able dict (what checkpoints, cards and prune.json hold)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "PruneRecord":
        """From a JSON-style dict; unknown fields are an error."""
        return dataclass_from_dict(cls, data, "prune record", PruneConfigError)

    def branches(self) -> Dict[str, Tuple[int, int, int]]:
        """branch -> (groups, channels before, channels after), in the order branches first appear."""
        summary: Dict[str, Tuple[int, int, int]] = {}
        for group in self.groups:
            count, before, after = summary.get(group["branch"], (0, 0, 0))
            summary[group["branch"]] = (count + 1, before + int(group["original"]), after + int(group["kept"]))
        return summary


@dataclass
class PruneResult:
    """Files written by prune_checkpoint and the record they carry."""

    checkpoint: str
    record_path: str
    record: PruneRecord


def prune_model(model: Any, config: PruneConfig, example_input: Any = None) -> PruneRecord:
    """Prune a zoo model in place (Torch-Pruning dependency graph, L1 filter norms); returns the record.

    `example_input` (N,3,H,W) is what the dependency graph is traced with (default 1x3x64x64 zeros).
    """
    from ._prune_engine import prune_model as run

    return run(model, config, example_input)


def prune_checkpoint(src_ckpt: str, out_dir: str, config: PruneConfig) -> PruneResult:
    """Load a kit checkpoint, prune it, write OUT/pruned.pt (card and "prune" key carry the record) + prune.json."""
    from ._prune_engine import prune_checkpoint as run

    return run(src_ckpt, out_dir, config)


# -- the `edgematte prune` verb ---------------------------------------------------------------------
EPILOG = """\
CKPT is a kit checkpoint (written by `edgematte train`, or an earlier prune). Filters are ranked by the L1 norm of
the weights producing them; Torch-Pruning's dependency graph removes each one everywhere it is used (residual adds,
concatenations, depthwise convs, IBNorm halves). Output heads and the network input are never pruned.

strategies:
  adaptive  backbone layers keep the fewest filters carrying --backbone-threshold of their total L1 norm;
            other layers lose --ratio (default for modnet; needs a backbone, so not for u2net/u2netp)
  fixed     every layer loses --ratio of its filters (default for the others)
  global    --ratio of all filters go, ranked together (L1 divided by the layer's mean L1)
Kept counts are rounded up to multiples of --round-to and never fall below it.

Writes into DIR:
  pruned.pt    the pruned checkpoint (config.channels rebuilds it; "prune" key and model card hold the record)
  prune.json   the record: settings, kept/original channels per layer group, params and FLOPs before/after

Fine-tune the result before use: `edgematte train MODEL DATA --init DIR/pruned.pt ...`.

example:
  edgematte prune runs/sod/best.pt -o runs/sod_pruned --ratio 0.5
"""


def register(subparsers: Any) -> None:
    """Add the `prune` verb."""
    p = add_verb(subparsers, "prune",
                 description="Remove low-L1 filters from a kit checkpoint with Torch-Pruning's dependency graph and "
                             "write a smaller checkpoint that rebuilds from its config.", epilog=EPILOG,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt", metavar="CKPT", help="kit checkpoint (.pt) to prune")
    p.add_argument("-o", "--out", metavar="DIR", required=True, help="output folder (created if absent)")
    p.add_argument("--strategy", choices=STRATEGIES, default=None,
                   help="adaptive, fixed or global (default: adaptive for modnet, fixed otherwise)")
    p.add_argument("--ratio", type=float, default=PruneConfig.ratio,
                   help="fraction of filters removed per layer (fixed, adaptive's non-backbone layers) or overall "
                        "(global); in (0, 1), default 0.5")
    p.add_argument("--backbone-threshold", type=float, default=PruneConfig.backbone_threshold,
                   help="adaptive: share of each backbone layer's total L1 norm the kept filters carry; in (0, 1], "
                        "default 0.9")
    p.add_argument("--round-to", type=int, default=PruneConfig.round_to,
                   help="kept channel counts are multiples of this and at least this (default 8)")
    p.set_defaults(func=run)


def _millions(n: int) -> str:
    return "{:.3f} M".format(n / 1e6)


def _change(before: int, after: int) -> str:
    return "{:+.1f}%".format(100.0 * (after - before) / before) if before else "n/a"


def summary_lines(record: PruneRecord) -> List[str]:
    """The verb's table: params and GFLOPs before/after, then channels per branch."""
    size = "x".join(str(v) for v in record.input_size)
    lines = ["{:<10} {:>12} {:>12} {:>9}".format("", "before", "after", "change"),
             "{:<10} {:>12} {:>12} {:>9}".format("params", _millions(record.params_before),
                                                  _millions(record.params_after),
                                                  _change(record.params_before, record.params_after)),
             "{:<10} {:>12.3f} {:>12.3f} {:>9}   (at {})".format("GFLOPs", record.flops_before / 1e9,
                                                                 record.flops_after / 1e9,
                                                                 _change(record.flops_before, record.flops_after),
                                                                 size),
             "{:<10} {:>12} {:>12} {:>9}   {}".format("branch", "channels", "kept", "change", "layer groups")]
    for branch, (count, before, after) in record.branches().items():
        lines.append("{:<10} {:>12} {:>12} {:>9}   {}".format(branch, before, after, _change(before, after), count))
    return lines


def run(args: argparse.Namespace) -> int:
    """Handler of `edgematte prune`."""
    config = PruneConfig(strategy=args.strategy, ratio=args.ratio, backbone_threshold=args.backbone_threshold,
                         round_to=args.round_to)
    result = prune_checkpoint(args.ckpt, args.out, config)
    record = result.record
    settings = "ratio {:g}".format(record.ratio)
    if record.backbone_threshold is not None:
        settings += ", backbone threshold {:g}".format(record.backbone_threshold)
    print("pruned {} ({}, {}, round to {}): {} -> {}".format(record.arch, record.strategy, settings,
                                                              record.round_to, args.ckpt, result.checkpoint))
    for line in summary_lines(record):
        print(line)
    print("record: {}".format(result.record_path))
    print("fine-tune it before use: edgematte train {} DATA --init {}".format(record.arch, result.checkpoint))
    return 0


def read_record(path: str) -> PruneRecord:
    """A prune.json written by prune_checkpoint."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise InputError("{}: cannot read prune record ({})".format(path, exc.strerror or exc)) from None
    except ValueError as exc:
        raise InputError("{}: prune record is not valid JSON ({})".format(path, exc)) from None
    try:
        return PruneRecord.from_dict(data)
    except PruneConfigError as exc:
        raise InputError("{}: {}".format(path, exc)) from None
