"""Measure training throughput (images/s of one forward+backward+AdamW step) per zoo model and size: the
numbers the recipes' model choice and time budgets come from.

usage: python -m edgematte.train.recipes.throughput [--models u2netp modnet] [--sizes 224 320] [--batch 8]
       [--threads 2] [--steps 3] [--json out.json]
"""
import argparse
import json
import time
from typing import Any, Dict, Optional, Sequence

import torch

from edgematte.train.losses import loss_for
from edgematte.train.models import create_model, list_models


def _batch(n: int, size: int, classes: bool) -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    alpha = (torch.rand(n, 1, size, size, generator=g) > 0.5).float()
    batch = {"image": torch.randn(n, 3, size, size, generator=g), "alpha": alpha,
             "trimap": alpha * 0.5 + 0.25 * (alpha == 0).float()}
    if classes:
        batch["trimap_cls"] = (alpha[:, 0] * 2).long()
    return batch


def train_throughput(name: str, size: int, batch: int = 8, steps: int = 3, warmup: int = 1,
                     overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Images/s of full training steps (forward, loss, backward, AdamW) of model `name` at size x size."""
    model = create_model(name, input_size=[size, size], **(overrides or {})).train()
    loss_fn = loss_for(model.arch, model.task)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    data = _batch(batch, size, model.task == "trimap")
    timings = []  # type: List[float]
    for i in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss, _ = loss_fn(model(data["image"]), data)
        loss.backward()
        optimizer.step()
        if i >= warmup:
            timings.append(time.perf_counter() - start)
    best = min(timings)
    return {"model": name, "size": size, "batch": batch, "threads": torch.get_num_threads(),
            "params": sum(p.numel() for p in model.parameters()), "step_s": best,
            "median_step_s": sorted(timings)[len(timings) // 2], "images_per_s": batch / best}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print one line per (model, size) and optionally write all results as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list_models(), help="zoo models (default: all)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[224, 320], help="square sizes (default 224 320)")
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up (default 3)")
    parser.add_argument("--json", default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = []
    for name in args.models:
        for size in args.sizes:
            r = train_throughput(name, size, args.batch, args.steps)
            results.append(r)
            print("{model:10s} {size:4d}px batch {batch} threads {threads}: {params:>10,d} params  "
                  "{step_s:7.2f} s/step (median {median_step_s:.2f})  {images_per_s:6.2f} img/s".format(**r),
                  flush=True)
    if args.json:
        from edgematte.edge.io import write_text

        write_text(args.json, json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
