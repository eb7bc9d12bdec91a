"""Parity checks between artifacts on images: FP16 vs FP32 IR, ONNX (onnxruntime) vs IR, PyTorch FP32 vs FP16 activations.

Every comparison judges what a user of the model gets: the runtime's output resized back to the image's size and
clipped to [0,1] (the network-size map is never compared), and for trimap models the foreground alpha the verbs
compose with (P(fg) + P(unknown)/2), not the three probabilities.

OpenVINO's CPU plugin runs an FP16 IR in FP32 on AVX2 machines (only the weights are rounded), so the PyTorch
FP16-activation check is the one that catches overflow (e.g. in normalisation layers) before a GPU/NCS2 does.
"""
import copy
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgematte.edge.errors import EdgematteError

# per image, outputs in [0,1]: 8 of 255 grey levels. The IoU limit below is the guard a user sees; 0.02 (5 levels)
# failed the shipped portrait (0.0216 at IoU 0.9997) and pretrained EfficientNet-Lite UNets (0.0203 at IoU 0.9996).
FP16_MAX_ABS_DIFF = 0.03
FP16_MIN_IOU = 0.99  # IoU of the maps binarised at 0.5, per image and per output channel
ONNX_IR_MAX_ABS_DIFF = 1e-3  # onnxruntime vs OpenVINO FP32 (preprocessing inside the IR vs numpy)
ONNX_IR_MIN_IOU = 0.999
SYNTHETIC = "synthetic"  # `folder` value asking for synthetic images even when real ones are there
REPO_ROOT = Path(__file__).resolve().parents[1]

Image = Tuple[str, np.ndarray]  # (name, BGR uint8 HxWx3)


class ParityError(EdgematteError):
    """Two artifacts of one model disagree by more than the tolerance."""


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| as a float; inf when either holds a non-finite value (overflow is a failure, never a pass)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("cannot compare shapes {} and {}".format(a.shape, b.shape))
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


# Pixels of the reference map this close to the threshold are left out of the IoU: rounding may flip them either
# way (an untrained or unsure model sits at 0.5 everywhere, where a 1e-4 difference would read as disagreement).
UNDECIDED_BAND = 0.01


def map_iou(a: np.ndarray, b: np.ndarray, thr: float = 0.5, band: float = UNDECIDED_BAND) -> float:
    """IoU@thr of two maps, HxW or HxWxC (the worst channel), over the pixels where the reference `a` is decided
    (|a - thr| > band; band <= 0: every pixel); 1.0 when both are empty there."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    worst = 1.0
    for c in range(a.shape[-1]):
        decided = np.abs(a[..., c] - thr) > band if band > 0 else np.ones(a.shape[:-1], bool)
        fa, fb = (a[..., c] >= thr) & decided, (b[..., c] >= thr) & decided
        union = np.count_nonzero(fa | fb)
        worst = min(worst, np.count_nonzero(fa & fb) / union if union else 1.0)
    return worst


# -- images -----------------------------------------------------------------------------------------
def default_image_dir() -> Path:
    """../shared/data/duts-te-val/images next to the repository ($EDGEMATTE_SHARED overrides ../shared)."""
    shared = Path(os.environ.get("EDGEMATTE_SHARED", str(REPO_ROOT.parent / "shared")))
    return shared / "data" / "duts-te-val" / "images"


def synthetic_images(count: int, size: Sequence[int] = (240, 320), seed: int = 0) -> List[Image]:
    """Textured BGR scenes with a soft-edged ellipse in front, made with numpy (when no real images are there)."""
    h, w = int(size[0]), int(size[1])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    images = []
    for index in range(count):
        rng = np.random.default_rng(seed + index)
        background = rng.random((h, w, 3), dtype=np.float32) * 80 + 40
        cy, cx = h * rng.uniform(0.35, 0.65), w * rng.uniform(0.35, 0.65)
        ry, rx = h * rng.uniform(0.15, 0.35), w * rng.uniform(0.15, 0.35)
        alpha = np.clip((1.15 - np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)) / 0.3, 0, 1)[..., None]
        colour = rng.uniform(120, 255, size=3).astype(np.float32)
        image = background * (1 - alpha) + colour * alpha
        images.append(("synthetic_{}".format(index), image.clip(0, 255).astype(np.uint8)))
    return images


def parity_images(count: int = 8, folder: Optional[str] = None) -> Tuple[List[Image], str]:
    """`count` images (the first ones, by name) from `folder` or duts-te-val when present, else synthetic ones;
    returns (images, where they came from)."""
    from edgematte.edge.datasets import list_images
    from edgematte.edge.io import read_image

    if folder == SYNTHETIC:
        return synthetic_images(count), SYNTHETIC
    root = Path(folder) if folder else default_image_dir()
    files = list_images(root, recursive=False)
    if not files:
        return synthetic_images(count), "synthetic"
    return [(p.stem, read_image(str(p))) for p in files[:count]], str(root)


# -- comparisons ------------------------------------------------------------------------------------
Run = Callable[[np.ndarray], np.ndarray]  # BGR image -> map at the image's size (HxW or HxWxC)


def output_view(prediction: np.ndarray, task: Optional[str] = None) -> np.ndarray:
    """What the verbs use of a runtime output: the map itself, or the foreground alpha of a trimap."""
    if task == "trimap":
        from edgematte.edge.evaluate import alpha_of

        return alpha_of(prediction)
    return prediction


def compare(first: Run, second: Run, images: Sequence[Image], max_diff: float, min_iou: float,
            task: Optional[str] = None) -> Dict[str, Any]:
    """Run both on every image; per-image max |diff| and IoU@0.5 of their outputs at the image's size (the alpha for
    a trimap `task`), the worst of each, and whether all passed."""
    rows = []
    for name, bgr in images:
        a, b = output_view(first(bgr), task), output_view(second(bgr), task)
        rows.append({"image": name, "max_abs_diff": max_abs_diff(a, b), "iou": map_iou(a, b)})
    worst_diff = max((r["max_abs_diff"] for r in rows), default=0.0)
    worst_iou = min((r["iou"] for r in rows), default=1.0)
    return {"images": len(rows), "max_abs_diff": worst_diff, "min_iou": worst_iou,
            "tolerance": {"max_abs_diff": max_diff, "min_iou": min_iou},
            "compared": "alpha at image size" if task == "trimap" else "output at image size",
            "ok": bool(worst_diff <= max_diff and worst_iou >= min_iou), "per_image": rows}


def ir_runner(xml_path: str) -> Run:
    """predict() of the IR loaded through the edge runtime (u8 BGR in, map at the image's size out)."""
    from edgematte.edge.runtime import load_model

    return load_model(str(xml_path)).predict


def onnxruntime_runner(onnx_path: str) -> Run:
    """predict() of the ONNX file under ONNX Runtime on the CPU, fed and read back as the edge runtime feeds an IR."""
    from .ort_predictor import OrtPredictor

    return OrtPredictor(str(onnx_path)).predict


def _fp16_storage() -> Any:
    """A TorchFunctionMode rounding every float32 tensor an op returns to FP16 and back: FP16 activations (overflow
    to inf included) computed at FP32 speed, as FP16 hardware does with FP32 accumulation. Built on use, so that
    importing this module (limits and map comparisons, used by the torch-free `parity` verb) needs no torch."""
    from torch.overrides import TorchFunctionMode

    class FP16Storage(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            return _round_fp16(func(*args, **(kwargs or {})))

    return FP16Storage()


def _round_fp16(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor) and value.dtype == torch.float32:
        return value.to(torch.float16).to(torch.float32)
    if isinstance(value, (tuple, list)):
        return type(value)(_round_fp16(v) for v in value)
    return value


TORCH_FP16_MODES = ("emulate", "half")


def torch_runner(model: Any, card: Any, fp16: Optional[str] = None) -> Run:
    """model.deploy_forward in FP32, or with FP16 weights and activations: fp16="half" runs model.half() (real FP16
    kernels; 15-30x slower than FP32 on this CPU), fp16="emulate" rounds weights and every op's output to FP16."""
    import torch

    from edgematte.edge.runtime import from_network_output, to_network_input

    if fp16 not in (None,) + TORCH_FP16_MODES:
        raise ValueError("fp16 must be None or one of {}, got {!r}".format(TORCH_FP16_MODES, fp16))
    net = copy.deepcopy(model).eval()
    dtype = torch.float16 if fp16 == "half" else torch.float32
    net = net.to(dtype)
    if fp16 == "emulate":
        with torch.no_grad():
            for tensor in list(net.parameters()) + list(net.buffers()):
                if tensor.dtype == torch.float32:
                    tensor.copy_(tensor.to(torch.float16).to(torch.float32))
    spec = {"dtype": "f32", "layout": "NCHW", "color": "RGB", "normalised": True}

    def run(bgr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(to_network_input(bgr, card, spec)).to(dtype)
        with torch.no_grad():
            if fp16 == "emulate":
                with _fp16_storage():
                    out = net.deploy_forward(_round_fp16(x))
            else:
                out = net.deploy_forward(x)
        out = out.float().numpy()
        if not np.isfinite(out).all():  # overflow: keep it visible instead of letting the resize smear it
            return np.full(bgr.shape[:2] + ((3,) if card.task == "trimap" else ()), np.nan, np.float32)
        return from_network_output(out, card, bgr.shape[:2])

    return run


def fp16_ir_parity(fp32_xml: str, fp16_xml: str, images: Sequence[Image], max_diff: float = FP16_MAX_ABS_DIFF,
                   min_iou: float = FP16_MIN_IOU, task: Optional[str] = None) -> Dict[str, Any]:
    """FP16 IR vs FP32 IR on the images."""
    return compare(ir_runner(fp32_xml), ir_runner(fp16_xml), images, max_diff, min_iou, task)


def torch_fp16_parity(model: Any, card: Any, images: Sequence[Image], max_diff: float = FP16_MAX_ABS_DIFF,
                      min_iou: float = FP16_MIN_IOU, mode: str = "emulate") -> Dict[str, Any]:
    """PyTorch FP32 vs PyTorch with FP16 weights and activations on the images (catches FP16 overflow)."""
    result = compare(torch_runner(model, card), torch_runner(model, card, fp16=mode), images, max_diff, min_iou,
                     getattr(card, "task", None))
    result["mode"] = mode
    return result


def onnx_ir_parity(onnx_path: str, fp32_xml: str, images: Sequence[Image], max_diff: float = ONNX_IR_MAX_ABS_DIFF,
                   min_iou: float = ONNX_IR_MIN_IOU, task: Optional[str] = None) -> Dict[str, Any]:
    """onnxruntime on the ONNX file vs the FP32 IR (whose preprocessing is inside) on the images."""
    return compare(onnxruntime_runner(onnx_path), ir_runner(fp32_xml), images, max_diff, min_iou, task)


def check(result: Dict[str, Any], what: str) -> None:
    """Raise ParityError naming `what` when a comparison did not pass."""
    if not result["ok"]:
        tol = result["tolerance"]
        raise ParityError("{}: max |diff| {:.4g} (limit {:g}), min IoU@0.5 {:.4f} (limit {:g}) over {} image(s)".format(
            what, result["max_abs_diff"], tol["max_abs_diff"], result["min_iou"], tol["min_iou"], result["images"]))
