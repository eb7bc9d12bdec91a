"""`edgematte train --benchmark`: img/s of the plain FP32 training step against the trainer's step settings (and
each lever alone), on synthetic batches and through the real data loader, measured in interleaved rounds so the
ratios hold on a noisy machine; the last line is the speed-up of the default path."""
import argparse
import copy
import itertools
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional

import torch
from torch.utils.data import DataLoader

from edgematte.edge.errors import InputError

from .losses import loss_for
from .speed import StepPolicy, autocast, cpu_flags, fp32_outputs, prepare_batch, prepare_model, resolve_policy


@dataclass
class Variant:
    """One way of running the step: a name, its policy and whether batches come from the real loader."""

    name: str
    policy: StepPolicy
    loader: bool = False


def synthetic_batch(n: int, size: int, mean: List[float], std: List[float]) -> Dict[str, torch.Tensor]:
    """A fixed batch shaped like the loader's: normalised image, alpha, trimap (unit and classes)."""
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(n, 3, size, size, generator=g) * 255.0
    image = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    alpha = (torch.rand(n, 1, size // 8, size // 8, generator=g) > 0.5).float()
    alpha = torch.nn.functional.interpolate(alpha, size=(size, size), mode="bilinear", align_corners=False)
    classes = (alpha[:, 0] > 0.9).long() * 2 + ((alpha[:, 0] > 0.1) & (alpha[:, 0] <= 0.9)).long()
    return {"image": image, "alpha": alpha, "trimap": classes[:, None].float() / 2.0, "trimap_cls": classes}


class Stepper:
    """A model copy, optimizer and loss run under one policy; step(batch) does forward, loss, backward, AdamW."""

    def __init__(self, model: torch.nn.Module, policy: StepPolicy) -> None:
        self.core = copy.deepcopy(model).train()
        self.policy = policy
        self.loss_fn = loss_for(self.core.arch, self.core.task)
        self.model = prepare_model(self.core, policy)
        self.optimizer = torch.optim.AdamW(self.core.parameters(), lr=1e-4)

    def step(self, batch: Dict[str, torch.Tensor]) -> float:
        batch = prepare_batch(batch, self.policy, torch.device("cpu"))
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.policy):
            outputs = self.model(batch["image"])
        loss, _ = self.loss_fn(fp32_outputs(outputs), batch)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def _datasets(args: argparse.Namespace, size: int, mean: List[float], std: List[float]) -> Dict[str, Any]:
    """{"decode": dataset reading the files, "cache": dataset reading the decoded cache (with --cache)}."""
    from .data.dataset import PairDataset, gather_pairs

    pairs = gather_pairs(args.data, args.split, args.include, args.exclude)
    if args.limit:
        pairs = pairs[:args.limit]
    if len(pairs) < args.batch:
        raise InputError("{}: {} pairs are fewer than one batch of {}".format(", ".join(args.data), len(pairs),
                                                                              args.batch))
    out = {"decode": PairDataset(pairs, (size, size), mean, std, train=True)}
    if args.cache:
        from .data.cache import DecodedCache, cache_side

        cache = DecodedCache(args.cache, pairs, cache_side((size, size)))
        out["cache"] = PairDataset(pairs, (size, size), mean, std, train=True, cache=cache)
    return out


def _loader(args: argparse.Namespace, dataset: Any) -> Iterator[Dict[str, Any]]:
    """Endless batches of `dataset` through a DataLoader with the command's workers."""
    from .trainer import _worker_context, _worker_init

    loader = DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=args.workers, drop_last=True,
                        worker_init_fn=_worker_init if args.workers else None, persistent_workers=args.workers > 0,
                        multiprocessing_context=_worker_context() if args.workers else None)
    return iter(itertools.chain.from_iterable(itertools.repeat(loader)))


def _timed(fn: Callable[[], Any], steps: int) -> List[float]:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def run_benchmark(args: argparse.Namespace) -> int:
    """Measure and print the table; returns 0."""
    from .models import create_model

    model = create_model(args.model, **({"input_size": [args.size, args.size]} if args.size else {}))
    size = int(model.config.input_size[0])
    mean, std = list(model.config.mean), list(model.config.std)
    chosen = resolve_policy("cpu", args.precision, args.memory_format, args.compile)
    plain = StepPolicy("cpu")
    variants = [Variant("fp32 plain", plain), Variant("default: " + chosen.describe(), chosen)]
    for lever in (StepPolicy("cpu", autocast="bf16"), StepPolicy("cpu", channels_last=True)):
        if lever != chosen and lever != plain:
            variants.append(Variant("lever: " + lever.describe(), lever))
    if args.compile and chosen != StepPolicy("cpu", compile=True):
        variants.append(Variant("lever: " + StepPolicy("cpu", compile=True).describe(),
                                StepPolicy("cpu", compile=True)))
    batches: Optional[Iterator[Dict[str, Any]]] = None
    datasets: Dict[str, Any] = {}
    if args.data:
        datasets = _datasets(args, size, mean, std)
        batches = _loader(args, datasets.get("cache", datasets["decode"]))
        variants += [Variant("fp32 plain + loader", plain, True), Variant("default + loader", chosen, True)]
    fixed = synthetic_batch(args.batch, size, mean, std)
    steppers = {v.name: Stepper(model, v.policy) for v in variants}
    print("train --benchmark {} at {}x{}, batch {}, {} torch threads, {} loader workers; cpu: {}".format(
        args.model, size, size, args.batch, torch.get_num_threads(), args.workers if args.data else "-",
        cpu_flags()))
    for v in variants:  # warm-up (compilation, oneDNN primitive caches) outside the timing
        steppers[v.name].step(next(batches) if v.loader and batches is not None else fixed)
    times: Dict[str, List[float]] = {v.name: [] for v in variants}
    loader_times: Dict[str, List[float]] = {name: [] for name in datasets}
    rng = torch.Generator().manual_seed(1)
    for _ in range(args.repeats):
        for v in variants:
            stepper = steppers[v.name]
            if v.loader and batches is not None:
                times[v.name] += _timed(lambda: stepper.step(next(batches)), args.steps)
            else:
                times[v.name] += _timed(lambda: stepper.step(fixed), args.steps)
        for name, dataset in datasets.items():  # one process, no prefetch: the pure cost of making a batch
            picks = torch.randint(len(dataset), (args.steps, args.batch), generator=rng).tolist()
            loader_times[name] += _timed(lambda: [dataset[i] for i in picks.pop()], args.steps)
    base = statistics.median(times["fp32 plain"])
    print("{:<52} {:>9} {:>8} {:>8}".format("variant", "img/s", "s/step", "x fp32"))
    for v in variants:
        median = statistics.median(times[v.name])
        print("{:<52} {:>9.2f} {:>8.3f} {:>7.2f}x".format(v.name, args.batch / median, median, base / median))
    for name, values in loader_times.items():
        median = statistics.median(values)
        label = "loader alone, 1 process: " + ("decode + augment" if name == "decode" else "cache + augment")
        print("{:<52} {:>9.2f} {:>8.3f}".format(label, args.batch / median, median))
    key = "default + loader" if batches is not None else variants[1].name
    base_key = "fp32 plain + loader" if batches is not None else "fp32 plain"
    print("speed-up {:.2f}x".format(statistics.median(times[base_key]) / statistics.median(times[key])))
    return 0
