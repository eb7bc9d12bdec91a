"""How many filters each pruning group keeps: the fixed, adaptive (cumulative L1 threshold) and global strategies.

Pure arithmetic on per-channel L1 importances; which channels go is decided later (lowest L1 first).
Every kept count is rounded up to a multiple of `round_to` and never drops below `round_to` (or the layer's own
count when it has fewer): a ratio is an upper bound on the fraction a layer loses, never exceeded by rounding.
"""
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List

import torch


@dataclass
class GroupPlan:
    """One Torch-Pruning group (channels that must go together): where it sits and how many channels it keeps."""

    layer: str  # module path of the group's root layer
    branch: str  # "backbone" or the top-level module the root sits in
    original: int
    importance: torch.Tensor  # L1 norm of the filters producing each channel
    in_backbone: bool
    kept: int = -1
    root: Any = field(default=None, repr=False)  # the root layer (Torch-Pruning groups are fetched from it)
    handler: Any = field(default=None, repr=False)  # Torch-Pruning's out-channel pruning function of the root

    def removed(self) -> List[int]:
        """Root channel indices that go: the lowest-L1 ones (ties: lower index first)."""
        order = torch.argsort(self.importance, stable=True)
        return sorted(order[:self.original - self.kept].tolist())


def round_keep(keep: int, original: int, round_to: int) -> int:
    """`keep` rounded up to a multiple of round_to, clamped to [min(round_to, original), original]."""
    step = max(1, int(round_to))
    rounded = -(-int(keep) // step) * step
    return min(original, max(rounded, min(step, original)))


def keep_for_ratio(original: int, ratio: float, round_to: int) -> int:
    """Channels kept when a fraction `ratio` of `original` is removed (kept count rounded up)."""
    return round_keep(math.ceil(original * (1.0 - ratio) - 1e-9), original, round_to)


def keep_for_threshold(importance: torch.Tensor, threshold: float, round_to: int) -> int:
    """Fewest channels, by descending L1 norm, whose cumulative L1 reaches `threshold` of the total (rounded up)."""
    ranked = torch.sort(importance.detach().double().flatten(), descending=True).values
    total = float(ranked.sum())
    if total <= 0.0:
        needed = 1
    else:
        cumulative = torch.cumsum(ranked, 0) / total
        needed = int((cumulative < threshold - 1e-9).sum()) + 1
    return round_keep(min(needed, len(ranked)), len(ranked), round_to)


def plan_fixed(groups: List[GroupPlan], config: Any) -> None:
    """Every group loses `config.ratio` of its channels."""
    for group in groups:
        group.kept = keep_for_ratio(group.original, config.ratio, config.round_to)


def plan_adaptive(groups: List[GroupPlan], config: Any) -> None:
    """Backbone groups keep the channels carrying `backbone_threshold` of their L1; other groups lose `ratio`."""
    for group in groups:
        if group.in_backbone:
            group.kept = keep_for_threshold(group.importance, config.backbone_threshold, config.round_to)
        else:
            group.kept = keep_for_ratio(group.original, config.ratio, config.round_to)


def plan_global(groups: List[GroupPlan], config: Any) -> None:
    """`ratio` of all prunable channels go, ranked together by L1 divided by their group's mean L1.

    The per-group mean normalisation (Torch-Pruning's default normalizer) lets layers of different fan-in compete.
    """
    if not groups:
        return
    scores = [g.importance.detach().double() / g.importance.double().mean().clamp_min(1e-12) for g in groups]
    flat = torch.cat(scores)
    removed = len(flat) - int(len(flat) * (1.0 - config.ratio))
    doomed = torch.zeros(len(flat), dtype=torch.bool)
    if removed > 0:
        doomed[torch.argsort(flat, stable=True)[:removed]] = True
    start = 0
    for group, score in zip(groups, scores):
        gone = int(doomed[start:start + len(score)].sum())
        start += len(score)
        group.kept = round_keep(group.original - gone, group.original, config.round_to)


PLANNERS: Dict[str, Callable[[List[GroupPlan], Any], None]] = {
    "fixed": plan_fixed,
    "adaptive": plan_adaptive,
    "global": plan_global,
}
