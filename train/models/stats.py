"""Model size and cost: parameter count and FLOPs of deploy_forward at one input size (batch 1)."""
from typing import Dict, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """Number of parameters (shared ones counted once)."""
    return sum(p.numel() for p in model.parameters())


def model_stats(model: nn.Module, input_size: Sequence[int]) -> Dict[str, int]:
    """{"params", "flops"}: FLOPs (2 per multiply-add) counted by torch.utils.flop_counter on deploy_forward."""
    height, width = (int(v) for v in input_size)
    reference = next(model.parameters(), None)
    x = torch.zeros(1, 3, height, width, dtype=reference.dtype if reference is not None else torch.float32,
                    device=reference.device if reference is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            forward = getattr(model, "deploy_forward", model)
            forward(x)
    finally:
        model.train(was_training)
    return {"params": count_params(model), "flops": int(counter.get_total_flops())}
