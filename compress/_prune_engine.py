"""The pruning work behind compress.prune: trace Torch-Pruning's dependency graph, rank filters by L1, prune, record.

Torch-Pruning does every cut (DependencyGraph.get_pruning_group(...).prune()); this module only decides how many
channels each group keeps (_prune_plan) and which ones (lowest L1 first). MetaPruner is not used: it takes ratios,
not counts, and its round_to rounds kept counts down (a 12-channel layer at ratio 0.5 would keep 0 and be skipped).

Two guards around Torch-Pruning 1.6's shape inference (which placed MODNet's image concatenations wrongly, cutting
live channels while shapes still matched): the image enters the traced graph through an identity 1x1 conv, so every
concatenation with it has all its inputs in the graph, and the true concatenation sizes, recorded while tracing,
replace the inferred ones.
"""
import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch_pruning as tp
from torch import nn
from torch.overrides import TorchFunctionMode

from edgematte.edge.errors import InputError
from edgematte.edge.io import write_text
from edgematte.train.checkpoint import card_for, load_checkpoint, save_checkpoint
from edgematte.train.models import sync_channels
from edgematte.train.models.stats import model_stats

from ._prune_plan import PLANNERS, GroupPlan
from .prune import CHECKPOINT_NAME, RECORD_NAME, PruneConfig, PruneRecord, PruneResult, prune_target

TRACE_SIZE = (64, 64)  # the dependency graph does not depend on the size; small keeps tracing cheap
_ROOT_TYPES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
_CAT_FUNCS = (torch.cat, torch.concat, torch.concatenate)
_OUT_FNS = (tp.prune_conv_out_channels, tp.prune_depthwise_conv_out_channels, tp.prune_linear_out_channels)


class FilterL1Importance(tp.importance.Importance):
    """Per channel: the L1 norm of the filters producing it, summed over every conv/linear the group shrinks.

    (Li et al., "Pruning Filters for Efficient ConvNets": the classic L1 criterion; a depthwise conv coupled to the
    group adds its own per-channel filter. Consumer weights are not counted.)
    """

    @torch.no_grad()
    def __call__(self, group: Any) -> Optional[torch.Tensor]:
        total: Optional[torch.Tensor] = None
        for i, (dep, idxs) in enumerate(group):
            layer = dep.layer
            if dep.pruning_fn not in _OUT_FNS or not isinstance(layer, _ROOT_TYPES):
                continue
            root_idxs = group[i].root_idxs
            if any(r is None for r in root_idxs):
                continue
            weight = layer.weight.detach()
            if isinstance(layer, nn.ConvTranspose2d):
                weight = weight.transpose(0, 1)
            l1 = weight[idxs].abs().flatten(1).sum(1).double()
            if total is None:
                total = torch.zeros(len(group[0].idxs), dtype=torch.float64)
            total.scatter_add_(0, torch.as_tensor(root_idxs, dtype=torch.long), l1.cpu())
        return total


class _ConcatRecorder(TorchFunctionMode):
    """Records the true input sizes of every torch.cat run while tracing, keyed by the output's grad_fn.

    Torch-Pruning infers concatenation sizes by walking the graph (fragile: its issues #146, #481); the recorded
    sizes replace the inferred ones.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sizes: Dict[Any, Tuple[int, List[int]]] = {}

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _CAT_FUNCS and isinstance(out, torch.Tensor) and out.grad_fn is not None:
            tensors = args[0] if args else kwargs["tensors"]
            dim = int(kwargs.get("dim", args[1] if len(args) > 1 else 0)) % out.dim()
            self.sizes[out.grad_fn] = (dim, [int(t.shape[dim]) for t in tensors])
        return out


def _apply_concat_sizes(graph: tp.DependencyGraph, sizes: Dict[Any, Tuple[int, List[int]]]) -> None:
    """Give every channel concatenation in `graph` its recorded input sizes (Torch-Pruning keeps them current)."""
    for node in graph.module2node.values():
        if node.type != tp.ops.OPTYPE.CONCAT or node.grad_fn not in sizes:
            continue
        dim, chs = sizes[node.grad_fn]
        if dim != 1:
            continue
        sources = [f[0] for f in node.grad_fn.next_functions]
        if len(node.inputs) != len(chs) or [n.grad_fn for n in node.inputs] != sources:
            raise RuntimeError("cannot map the inputs of a concatenation ({} traced, {} concatenated)".format(
                len(node.inputs), len(chs)))
        node.module.concat_sizes = list(chs)


class _ImageStem(nn.Module):
    """The model behind an identity 1x1 conv, for tracing only: the image becomes a graph node with a known channel
    count, so Torch-Pruning can place it in the concatenations that reuse it (MODNet's HR and fusion branches)."""

    def __init__(self, model: nn.Module, channels: int) -> None:
        super().__init__()
        reference = next(model.parameters())
        self.stem = nn.Conv2d(channels, channels, 1, bias=False).to(device=reference.device, dtype=reference.dtype)
        with torch.no_grad():
            self.stem.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
        self.model = model

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(self.stem(x))


def build_graph(model: nn.Module, x: torch.Tensor) -> Tuple[tp.DependencyGraph, nn.Module]:
    """Torch-Pruning's dependency graph of model.forward (every output, training heads too) at input `x`, and the
    tracing stem (a layer outside `model` that must be ignored when grouping)."""
    traced = _ImageStem(model, int(x.shape[1]))
    recorder = _ConcatRecorder()
    with torch.enable_grad(), recorder:
        graph = tp.DependencyGraph().build_dependency(traced, example_inputs=x, verbose=False)
    _apply_concat_sizes(graph, recorder.sizes)
    return graph, traced.stem


def _example(model: nn.Module, example_input: Optional[torch.Tensor]) -> torch.Tensor:
    reference = next(model.parameters())
    if example_input is None:
        return torch.zeros(1, 3, *TRACE_SIZE, dtype=reference.dtype, device=reference.device)
    return example_input.to(dtype=reference.dtype, device=reference.device)


def _output_shapes(model: nn.Module, x: torch.Tensor) -> Dict[str, Tuple[int, ...]]:
    with torch.no_grad():
        out = model(x)
    return {k: tuple(v.shape) for k, v in out.items()} if isinstance(out, dict) else {"out": tuple(out.shape)}


def _is_grouped(group: Any) -> bool:
    """True when a grouped (not depthwise) conv is involved: its channel groups must shrink evenly; left alone."""
    for dep, _ in group:
        layer = dep.layer
        if isinstance(layer, nn.Conv2d) and 1 < layer.groups < layer.in_channels:
            return True
    return False


@dataclass
class PrunePlan:
    """What prune_model will do: the resolved strategy, the traced graph and every group with its kept count."""

    strategy: str
    graph: tp.DependencyGraph
    groups: List[GroupPlan]

    def cuts(self) -> Iterator[Tuple[GroupPlan, Any]]:
        """(plan, Torch-Pruning group removing its lowest-L1 channels) for each group that loses channels; lazy,
        because each group's index mapping must see the cuts made before it."""
        for plan in self.groups:
            if plan.kept < plan.original:
                yield plan, self.graph.get_pruning_group(plan.root, plan.handler, plan.removed())


def _plan_groups(model: nn.Module, graph: tp.DependencyGraph, ignored: List[nn.Module],
                 backbone: Optional[nn.Module]) -> List[GroupPlan]:
    """Every prunable group (those of ignored layers excluded) with its L1 importance, root layer and handler."""
    names = {module: name for name, module in model.named_modules()}
    backbone_layers = set(backbone.modules()) if backbone is not None else set()
    importance = FilterL1Importance()
    plans = []
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=_ROOT_TYPES):
        if _is_grouped(group):
            continue
        scores = importance(group)
        if scores is None:
            continue
        root_dep = group[0].dep
        root = root_dep.target.module
        producers = [dep.layer for dep, _ in group if dep.pruning_fn in _OUT_FNS and isinstance(dep.layer, _ROOT_TYPES)]
        in_backbone = any(layer in backbone_layers for layer in producers)
        layer_name = names[root]
        plans.append(GroupPlan(layer=layer_name, branch="backbone" if in_backbone else layer_name.split(".")[0],
                               original=int(graph.get_out_channels(root)), importance=scores,
                               in_backbone=in_backbone, root=root, handler=root_dep.handler))
    return plans


def plan_pruning(model: nn.Module, config: PruneConfig, example_input: Optional[torch.Tensor] = None) -> PrunePlan:
    """Trace `model` and decide each group's kept count; the model is not changed."""
    arch = getattr(model, "arch", "")
    target = prune_target(arch)
    strategy = config.resolve(arch)
    was_training = model.training
    model.eval()  # batch-norm statistics must not move while tracing
    try:
        graph, stem = build_graph(model, _example(model, example_input))
    finally:
        model.train(was_training)
    ignored = [stem] + [model.get_submodule(path) for path in target.heads]
    backbone = model.get_submodule(target.backbone) if target.backbone else None
    groups = _plan_groups(model, graph, ignored, backbone)
    PLANNERS[strategy](groups, config)
    return PrunePlan(strategy=strategy, graph=graph, groups=groups)


def prune_model(model: nn.Module, config: PruneConfig, example_input: Optional[torch.Tensor] = None) -> PruneRecord:
    """See compress.prune.prune_model."""
    input_size = [int(v) for v in model.config.input_size]
    was_training = model.training
    model.eval()  # batch-norm statistics must not move while tracing
    try:
        before = model_stats(model, input_size)
        x = _example(model, example_input)
        shapes = _output_shapes(model, x)
        plan = plan_pruning(model, config, x)
        for group_plan, group in plan.cuts():
            if not plan.graph.check_pruning_group(group):
                raise RuntimeError("{}: Torch-Pruning refused to remove {} of {} channels".format(
                    group_plan.layer, group_plan.original - group_plan.kept, group_plan.original))
            group.prune()
        after_shapes = _output_shapes(model, x)
        if after_shapes != shapes:
            raise RuntimeError("pruning changed the output shapes of {}: {} -> {}".format(
                model.arch, shapes, after_shapes))
        channels = sync_channels(model)
        after = model_stats(model, input_size)
    finally:
        model.train(was_training)
    strategy = plan.strategy
    return PruneRecord(
        arch=model.arch, strategy=strategy, ratio=config.ratio,
        backbone_threshold=config.backbone_threshold if strategy == "adaptive" else None,
        round_to=config.round_to, input_size=input_size,
        params_before=before["params"], params_after=after["params"],
        flops_before=before["flops"], flops_after=after["flops"],
        groups=[{"layer": g.layer, "branch": g.branch, "original": g.original, "kept": g.kept} for g in plan.groups],
        channels={k: list(v) for k, v in (channels or {}).items()} or None,
        tools={"torch_pruning": str(tp.__version__), "torch": str(torch.__version__)})


def prune_checkpoint(src_ckpt: str, out_dir: str, config: PruneConfig) -> PruneResult:
    """See compress.prune.prune_checkpoint."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError("{}: exists and is not a folder".format(out_dir))
    model, ckpt = load_checkpoint(src_ckpt)
    prune_target(model.arch)  # unknown architectures fail before any work
    config.resolve(model.arch)
    record = prune_model(model, config)
    record.source = os.path.abspath(src_ckpt)
    old_card = ckpt.get("card") or {}
    card = card_for(model, name=old_card.get("name"))
    card.prune = record.to_dict()
    card.tools = dict(old_card.get("tools") or {}, **record.tools)
    card.notes = "L1-pruned ({}) from {}; metrics of the source dropped: fine-tune and re-evaluate".format(
        record.strategy, os.path.basename(src_ckpt))
    os.makedirs(out_dir, exist_ok=True)
    checkpoint = os.path.join(out_dir, CHECKPOINT_NAME)
    save_checkpoint(checkpoint, model, card, extra={"prune": record.to_dict()})
    _check_reload(checkpoint, model)
    record_file = os.path.join(out_dir, RECORD_NAME)
    write_text(record_file, json.dumps(record.to_dict(), indent=2, sort_keys=True) + "\n")
    return PruneResult(checkpoint=checkpoint, record_path=record_file, record=record)


def _check_reload(path: str, model: nn.Module) -> None:
    """The written checkpoint rebuilds (config.channels, strict load) and computes what the pruned model computes."""
    rebuilt, _ = load_checkpoint(path)
    x = torch.randn(1, 3, *TRACE_SIZE, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        expected, got = model.deploy_forward(x), rebuilt.deploy_forward(x)
    if not torch.allclose(expected, got, atol=1e-5, rtol=1e-4):
        raise RuntimeError("{}: the reloaded pruned model disagrees with the pruned one".format(path))
    if asdict(rebuilt.config) != asdict(model.config):
        raise RuntimeError("{}: the reloaded config differs from the pruned model's".format(path))
