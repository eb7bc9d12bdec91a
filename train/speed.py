"""How a training step runs fast on this machine: autocast precision (bf16 where the CPU computes it natively, fp16
AMP on CUDA), channels_last memory format and torch.compile; one policy object the trainer and the benchmark share.

Numerics stay honest: weights, optimizer state, BatchNorm statistics and the loss stay FP32 (autocast only lowers
the convolutions' and matmuls' compute), and what is exported is the FP32 model.
"""
import contextlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ContextManager, Dict, Optional

import torch
from torch import nn

from edgematte.edge.errors import InputError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LAYOUTS = ("auto", "channels_last", "contiguous")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX), as oneDNN reports it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_flags() -> str:
    """The CPU's SIMD features that matter for training speed, e.g. 'avx2' or 'avx512 avx512_bf16 amx'."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
                    return " ".join(f for f in wanted if f in flags) or "none"
    except OSError:
        pass
    return "unknown"


@dataclass(frozen=True)
class StepPolicy:
    """How one training step runs: device type, autocast dtype (None: FP32), memory format, compiled or not."""

    device_type: str = "cpu"
    autocast: Optional[str] = None  # "bf16" | "fp16" | None
    channels_last: bool = False
    compile: bool = False

    @property
    def dtype(self) -> Optional[torch.dtype]:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.autocast or "")

    def describe(self) -> str:
        """One line such as 'cpu, bf16 autocast, channels_last, compiled'."""
        parts = [self.device_type, "{} autocast".format(self.autocast) if self.autocast else "fp32",
                 "channels_last" if self.channels_last else "contiguous"]
        if self.compile:
            parts.append("compiled")
        return ", ".join(parts)


def resolve_policy(device_type: str, precision: str = "auto", layout: str = "auto", compile: bool = False,
                   amp: bool = True) -> StepPolicy:
    """The step policy for `device_type` ("cpu"/"cuda"): `auto` picks bf16 on CPUs with native BF16, fp16 AMP on
    CUDA (unless amp is off), FP32 elsewhere; channels_last wherever convolutions run through oneDNN or cuDNN."""
    if precision not in PRECISIONS:
        raise InputError("--precision must be one of {}, got {!r}".format(", ".join(PRECISIONS), precision))
    if layout not in LAYOUTS:
        raise InputError("--memory-format must be one of {}, got {!r}".format(", ".join(LAYOUTS), layout))
    if precision == "auto":
        if device_type == "cuda":
            autocast = "fp16" if amp else None
        else:
            autocast = "bf16" if cpu_has_native_bf16() else None
    elif precision == "fp32":
        autocast = None
    elif precision == "fp16" and device_type != "cuda":
        raise InputError("--precision fp16 needs CUDA (on CPU use bf16 or fp32)")
    else:
        autocast = precision
    channels_last = layout == "channels_last" or (layout == "auto" and (device_type == "cuda" or
                                                                         torch.backends.mkldnn.is_available()))
    return StepPolicy(device_type, autocast, channels_last, bool(compile))


def prepare_model(model: nn.Module, policy: StepPolicy) -> nn.Module:
    """The module the step calls: `model` in the policy's memory format, compiled when asked (weights shared)."""
    if policy.channels_last:
        model.to(memory_format=torch.channels_last)
    if policy.compile:
        return torch.compile(model)
    return model


def prepare_batch(batch: Dict[str, torch.Tensor], policy: StepPolicy, device: torch.device) -> Dict[str, Any]:
    """The batch on `device`, 4-D float tensors in the policy's memory format."""
    out = {}
    for key, value in batch.items():
        value = value.to(device, non_blocking=True)
        if policy.channels_last and value.dim() == 4 and value.is_floating_point():
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


def autocast(policy: StepPolicy) -> ContextManager:
    """The autocast context of the policy (a no-op for FP32)."""
    if policy.dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(policy.device_type, dtype=policy.dtype)


def fp32_outputs(outputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The model's outputs in FP32, so losses are computed in full precision."""
    return {k: (v.float() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in outputs.items()}
