"""`edgematte parity`: a model on a reference backend (CUDA through ONNX Runtime or PyTorch, or their CPU twins)
against its deployed OpenVINO IR on real images: per-image and overall max/mean |diff|, IoU@0.5 agreement and, for
trimaps, argmax agreement, with pass/fail against the FP16 parity limits of export/parity.py.

Importing this module stays cheap (the verb is registered at every CLI start): onnxruntime and torch load on use.
"""
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from edgematte.edge.errors import DeviceError, EdgematteError, InputError, ModelFileError
from edgematte.edge.runtime import Predictor
from edgematte.edge.verbs import add_verb

from .parity import FP16_MAX_ABS_DIFF, FP16_MIN_IOU, map_iou, max_abs_diff

MAX_ABS_DIFF = FP16_MAX_ABS_DIFF  # per image, outputs in [0,1]: the FP16 export limits
MIN_IOU = FP16_MIN_IOU  # IoU of the maps binarised at 0.5, per image, worst channel (every pixel counts)
MIN_ARGMAX_AGREEMENT = 0.99  # trimap: share of pixels whose most probable class is the same
CUDA_UNAVAILABLE_EXIT = 3  # exit status of `edgematte parity --ref CUDA` on a machine without a usable CUDA GPU
DEFAULT_LIMIT = 20
DATA_DIR = "calib_data"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
REPO_ROOT = Path(__file__).resolve().parents[1]

Image = Tuple[str, np.ndarray]  # (name, BGR uint8 HxWx3)


class CudaUnavailableError(DeviceError):
    """A CUDA reference was asked for where no usable CUDA GPU (or CUDA build of the runtime) is present."""

    exit_code = CUDA_UNAVAILABLE_EXIT

    def __init__(self, reason: str) -> None:
        super().__init__("CUDA reference unavailable: {}".format(reason))
        self.reason = reason


@dataclass(frozen=True)
class Reference:
    """A reference backend: the device ONNX files run on with ONNX Runtime, and checkpoints with PyTorch."""

    name: str
    onnx_device: Optional[str]  # None: this reference does not take ONNX files
    torch_device: Optional[str]  # None: this reference does not take checkpoints
    cuda: bool = False


REFERENCES = {r.name: r for r in (
    Reference("CUDA", onnx_device="CUDA", torch_device="CUDA", cuda=True),
    Reference("ORT-CPU", onnx_device="CPU", torch_device=None),
    Reference("TORCH-CPU", onnx_device=None, torch_device="CPU"),
)}


@dataclass
class ParityLimits:
    """Pass/fail limits, per image (defaults: the FP16 parity limits of `edgematte export`)."""

    max_abs_diff: float = MAX_ABS_DIFF
    min_iou: float = MIN_IOU
    min_argmax_agreement: float = MIN_ARGMAX_AGREEMENT


def parse_reference(ref: str) -> Tuple[Reference, int]:
    """(Reference, CUDA index) of "CUDA", "CUDA:1", "ORT-CPU", "TORCH-CPU" (any case); InputError otherwise."""
    name, _, index = str(ref).strip().upper().partition(":")
    reference = REFERENCES.get(name)
    if reference is None or (index and not (reference.cuda and index.isdigit())):
        raise InputError("--ref {}: unknown reference (known: CUDA[:N], ORT-CPU, TORCH-CPU)".format(ref))
    return reference, int(index or 0)


# -- is CUDA there? ---------------------------------------------------------------------------------
_CUDA_CACHE = {}  # type: Dict[Tuple[str, str], Tuple[bool, str]]


def cuda_available(backend: str = "onnxruntime", device: str = "CUDA") -> Tuple[bool, str]:
    """(usable, reason) for running on `device` (CUDA or CUDA:N) through `backend` ("onnxruntime": the CUDA execution
    provider is listed AND a session really starts on it and computes a 1x1 convolution; "torch":
    torch.cuda.is_available() and a convolution on the device). Cached per process."""
    key = (backend, str(device).upper())
    if key not in _CUDA_CACHE:
        if backend == "onnxruntime":
            _CUDA_CACHE[key] = _ort_cuda(key[1])
        elif backend == "torch":
            _CUDA_CACHE[key] = _torch_cuda(key[1])
        else:
            raise ValueError("backend must be onnxruntime or torch, got {!r}".format(backend))
    return _CUDA_CACHE[key]


def _probe_onnx() -> bytes:
    """A 1x1 convolution (weight 2) as ONNX bytes, IR version 7 / opset 13 so that any recent onnxruntime reads it."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])], "edgematte_cuda_probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [2.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model.SerializeToString()


def _ort_cuda(device: str) -> Tuple[bool, str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return False, "onnxruntime is not installed (pip install onnxruntime-gpu)"
    from .ort_predictor import create_session

    try:
        session = create_session(_probe_onnx(), device, quiet=True)
        x = np.arange(4, dtype=np.float32).reshape(1, 1, 2, 2)
        y = session.run(None, {"x": x})[0]
    except EdgematteError as exc:
        return False, str(exc)
    except Exception as exc:  # noqa: BLE001 - whatever the provider raises at run time is the reason
        return False, "onnxruntime {} on {}: {}".format(ort.__version__, device, " ".join(str(exc).split())[:300])
    if not np.allclose(y, 2 * x):
        return False, "onnxruntime {} on {} computed a wrong probe result".format(ort.__version__, device)
    return True, "onnxruntime {} CUDAExecutionProvider on {}".format(ort.__version__, device)


def _torch_cuda(device: str) -> Tuple[bool, str]:
    try:
        import torch
    except ImportError:
        return False, "PyTorch is not installed"
    if not torch.cuda.is_available():
        if not torch.version.cuda:
            return False, "PyTorch {} is a CPU-only build (no CUDA)".format(torch.__version__)
        return False, "PyTorch {} (CUDA {}) sees no CUDA device (driver, or CUDA_VISIBLE_DEVICES)".format(
            torch.__version__, torch.version.cuda)
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        return False, "{}: PyTorch sees {} CUDA device(s)".format(device, torch.cuda.device_count())
    try:
        x = torch.arange(4, dtype=torch.float32, device="cuda:{}".format(index)).reshape(1, 1, 2, 2)
        y = torch.nn.functional.conv2d(x, torch.full((1, 1, 1, 1), 2.0, device=x.device)).cpu()
    except Exception as exc:  # noqa: BLE001 - a broken driver/cuDNN shows here
        return False, "PyTorch {} on {}: {}".format(torch.__version__, device, " ".join(str(exc).split())[:300])
    if not torch.allclose(y, 2 * x.cpu()):
        return False, "PyTorch {} on {} computed a wrong probe result".format(torch.__version__, device)
    return True, "PyTorch {} on cuda:{} ({})".format(torch.__version__, index, torch.cuda.get_device_name(index))


def _torch_ieee_fp32() -> None:
    """Full FP32 in CUDA convolutions and matmuls (no TF32), as a reference must be: the torch >= 2.9 settings when
    present, else the older allow_tf32 flags (the two must not be mixed)."""
    import torch

    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


# -- predictors -------------------------------------------------------------------------------------
def backend_of(path: str) -> str:
    """"onnxruntime" for .onnx, "torch" for kit checkpoints; InputError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return "onnxruntime"
    if suffix in CHECKPOINT_SUFFIXES:
        return "torch"
    raise InputError("{}: a reference runs an ONNX file or a kit checkpoint ({}), not '{}'".format(
        path, ", ".join(CHECKPOINT_SUFFIXES), suffix or "no suffix"))


def reference_predictor(model: str, ref: str = "CUDA") -> Predictor:
    """The model on reference `ref`: an OrtPredictor (ONNX) or TorchPredictor (checkpoint) with the edge runtime's
    pre/post-processing. CudaUnavailableError (exit 3) when CUDA is asked for and cannot run."""
    path = Path(model)
    if not path.is_file():
        raise ModelFileError("{}: no such model file".format(model))
    backend = backend_of(str(path))
    reference, index = parse_reference(ref)
    device = reference.onnx_device if backend == "onnxruntime" else reference.torch_device
    if device is None:
        other = [r.name for r in REFERENCES.values() if (r.onnx_device if backend == "onnxruntime" else r.torch_device)]
        raise InputError("--ref {}: does not run {} files like {} (use --ref {})".format(
            reference.name, "ONNX" if backend == "onnxruntime" else "checkpoint", path.name, " or ".join(other)))
    if reference.cuda:
        device = "CUDA:{}".format(index) if index else "CUDA"
        ok, reason = cuda_available(backend, device)
        if not ok:
            raise CudaUnavailableError(reason)
    if backend == "onnxruntime":
        from .ort_predictor import OrtPredictor

        return OrtPredictor(str(path), device)
    from edgematte.train.torch_predictor import TorchPredictor

    if reference.cuda:
        _torch_ieee_fp32()
    return TorchPredictor.from_checkpoint(str(path), device=device)


def runtime_of(predictor: Predictor) -> str:
    """'onnxruntime X (providers)' or 'torch X (device)' for the report."""
    providers = getattr(predictor, "providers", None)
    if providers is not None:
        import onnxruntime

        return "onnxruntime {} ({})".format(onnxruntime.__version__, ", ".join(providers))
    import torch

    return "torch {} ({})".format(torch.__version__, getattr(predictor, "torch_device", predictor.device))


def default_ir(model: str) -> Path:
    """The deployed IR next to MODEL: <stem>_fp32.xml, else <stem>.xml; InputError naming both when neither is there."""
    path = Path(model)
    candidates = [path.with_name(path.stem + "_fp32.xml"), path.with_name(path.stem + ".xml")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError("{}: no IR next to it ({} or {}); pass --ir IR.xml".format(
        model, candidates[0].name, candidates[1].name))


# -- images -----------------------------------------------------------------------------------------
def default_data_dir() -> Path:
    """calib_data/ in the working directory when there, else the repository's."""
    local = Path(DATA_DIR)
    return local if local.is_dir() else REPO_ROOT / DATA_DIR


def image_files(data: Optional[str] = None) -> List[Tuple[str, Path]]:
    """(name, path) of the images of a dataset folder (any layout edgematte eval reads) or an image folder (recursive),
    in a stable order; InputError when there are none."""
    from edgematte.edge.datasets import IMAGE_EXTS, find_pairs, list_images

    root = Path(data) if data else default_data_dir()
    if not root.is_dir():
        raise InputError("{}: no such image folder".format(root))
    try:
        return [(pair.stem, pair.image) for pair in find_pairs(str(root))]
    except InputError:  # not a dataset: every image below the folder
        files = list_images(root)
        if not files:
            raise InputError("{}: no images ({})".format(root, ", ".join(IMAGE_EXTS))) from None
        return [(p.relative_to(root).as_posix(), p) for p in files]


def read_images(files: Sequence[Tuple[str, Path]], limit: int) -> Iterator[Image]:
    """The first `limit` images, read one at a time as BGR uint8 (limit <= 0: all)."""
    from edgematte.edge.io import read_image

    for name, path in (files[:limit] if limit > 0 else files):
        yield name, read_image(str(path))


# -- comparison -------------------------------------------------------------------------------------
def compare_maps(reference: np.ndarray, deployed: np.ndarray, trimap: bool = False) -> Dict[str, float]:
    """max/mean |diff| (inf when either map holds a non-finite value), IoU@0.5 (worst channel) and, for trimaps,
    the share of pixels with the same argmax class."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(deployed, dtype=np.float64)
    if a.shape != b.shape:
        raise ModelFileError("reference and IR outputs differ in shape: {} vs {}".format(a.shape, b.shape))
    worst = max_abs_diff(a, b)  # inf when either map holds a non-finite value, 0.0 when empty
    mean = float(np.abs(a - b).mean()) if a.size and math.isfinite(worst) else worst
    # band 0: every pixel counts here (the export check leaves the undecided band out; this check stays strict)
    row = {"max_abs_diff": worst, "mean_abs_diff": mean, "iou": float(map_iou(a, b, 0.5, band=0.0))}
    if trimap:
        row["argmax_agreement"] = float(np.mean(np.argmax(a, axis=-1) == np.argmax(b, axis=-1)))
    return row


def passes(row: Dict[str, float], limits: ParityLimits) -> bool:
    """Whether one image's numbers are within the limits."""
    ok = row["max_abs_diff"] <= limits.max_abs_diff and row["iou"] >= limits.min_iou
    if "argmax_agreement" in row:
        ok = ok and row["argmax_agreement"] >= limits.min_argmax_agreement
    return bool(ok)


def compare(reference: Predictor, deployed: Predictor, images: Iterable[Image],
            limits: Optional[ParityLimits] = None) -> Dict[str, Any]:
    """Both predictors on every image: per-image rows, the overall worst/mean and pass/fail against `limits`."""
    limits = limits or ParityLimits()
    trimap = reference.card.task == "trimap"
    rows = []
    for name, bgr in images:
        row = {"image": name}  # type: Dict[str, Any]
        row.update(compare_maps(reference.predict(bgr), deployed.predict(bgr), trimap))
        row["ok"] = passes(row, limits)
        rows.append(row)
    summary = {"images": len(rows),
               "max_abs_diff": max((r["max_abs_diff"] for r in rows), default=0.0),
               "mean_abs_diff": float(np.mean([r["mean_abs_diff"] for r in rows])) if rows else 0.0,
               "min_iou": min((r["iou"] for r in rows), default=1.0),
               "mean_iou": float(np.mean([r["iou"] for r in rows])) if rows else 1.0,
               "failed": [r["image"] for r in rows if not r["ok"]]}  # type: Dict[str, Any]
    if trimap:
        summary["min_argmax_agreement"] = min((r["argmax_agreement"] for r in rows), default=1.0)
        summary["mean_argmax_agreement"] = float(np.mean([r["argmax_agreement"] for r in rows])) if rows else 1.0
    return {"limits": asdict(limits), "per_image": rows, "summary": summary, "ok": not summary["failed"]}


def run_parity(model: str, ref: str = "CUDA", vs: str = "CPU", ir: Optional[str] = None, data: Optional[str] = None,
               limit: int = DEFAULT_LIMIT, limits: Optional[ParityLimits] = None) -> Dict[str, Any]:
    """Reference `ref` on MODEL vs the IR (`ir`, default next to MODEL) on OpenVINO device `vs`, on the images of
    `data` (default calib_data/); the JSON-able report (see compare) with what ran where."""
    from edgematte.edge.runtime import load_model

    if not Path(model).is_file():
        raise ModelFileError("{}: no such model file".format(model))
    backend_of(model)
    ir_path = Path(ir) if ir else default_ir(model)
    files = image_files(data)
    reference = reference_predictor(model, ref)
    deployed = load_model(str(ir_path), device=vs)
    if reference.card.task != deployed.card.task:
        raise InputError("{} is a {} model but {} is {}: not the same model".format(
            model, reference.card.task, ir_path, deployed.card.task))
    notes = []
    if list(reference.card.input_size) != list(deployed.card.input_size):
        notes.append("input sizes differ: reference {} vs IR {}".format(reference.card.input_size,
                                                                        deployed.card.input_size))
    report = {"reference": {"model": str(model), "ref": str(ref).upper(), "device": reference.device,
                            "runtime": runtime_of(reference), "precision": reference.card.precision,
                            "input_size": list(reference.card.input_size)},
              "deployed": {"model": str(ir_path), "device": vs, "runtime": "openvino",
                           "precision": deployed.card.precision, "input_size": list(deployed.card.input_size)},
              "task": reference.card.task, "data": str(Path(data) if data else default_data_dir()),
              "notes": notes}  # type: Dict[str, Any]
    report.update(compare(reference, deployed, read_images(files, limit), limits))
    return report


# -- output -----------------------------------------------------------------------------------------
def table(report: Dict[str, Any]) -> str:
    """Per-image rows and the overall verdict as text."""
    trimap = "min_argmax_agreement" in report["summary"]
    header = ["image", "max |diff|", "mean |diff|", "IoU@0.5"] + (["argmax agree"] if trimap else []) + ["ok"]
    lines = [header]
    for r in report["per_image"]:
        lines.append([r["image"], "{:.3g}".format(r["max_abs_diff"]), "{:.3g}".format(r["mean_abs_diff"]),
                      "{:.4f}".format(r["iou"])] + (["{:.4f}".format(r["argmax_agreement"])] if trimap else [])
                     + ["yes" if r["ok"] else "NO"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
            for line in lines]
    text.insert(1, "-" * len(text[0]))
    ref, dep, s, lim = report["reference"], report["deployed"], report["summary"], report["limits"]
    text.append("reference: {} on {} [{}]; deployed: {} on {} ({})".format(
        ref["model"], ref["ref"], ref["runtime"], dep["model"], dep["device"], dep["precision"]))
    verdict = "{} images: max |diff| {:.3g} (limit {:g}), mean |diff| {:.3g}, min IoU@0.5 {:.4f} (limit {:g})".format(
        s["images"], s["max_abs_diff"], lim["max_abs_diff"], s["mean_abs_diff"], s["min_iou"], lim["min_iou"])
    if trimap:
        verdict += ", min argmax agreement {:.4f} (limit {:g})".format(s["min_argmax_agreement"],
                                                                      lim["min_argmax_agreement"])
    text.append(verdict + ": " + ("PASS" if report["ok"] else "FAIL ({} image(s))".format(len(s["failed"]))))
    text += ["note: " + note for note in report["notes"]]
    return "\n".join(text)


EPILOG = """\
MODEL is an ONNX file (run by ONNX Runtime) or a kit checkpoint .pt (run by PyTorch); the IR defaults to
<stem>_fp32.xml (else <stem>.xml) next to it. Images are read, resized and normalised by the edge runtime's own
functions on both sides, so the numbers measure the networks only.

references (--ref):
  CUDA[:N]   ONNX Runtime's CUDAExecutionProvider (onnxruntime-gpu) or PyTorch on cuda:N; TF32 off
  ORT-CPU    ONNX Runtime on the CPU (ONNX files)
  TORCH-CPU  PyTorch on the CPU (checkpoints)

exit status: 0 within the limits, 1 outside them or bad input, {exit} ({name}) when the CUDA reference
cannot run here (no CUDA GPU, CPU-only onnxruntime/torch, CUDA libraries missing).

examples:
  edgematte parity out/sod/model.onnx --ref CUDA --vs CPU --data ../shared/data/duts-te-val --json parity.json
  edgematte parity out/sod/model.onnx --ref CUDA --ir out/sod/model_fp16.xml
  edgematte parity runs/sod/best.pt --ref TORCH-CPU --ir out/sod/model_fp32.xml
""".format(exit=CUDA_UNAVAILABLE_EXIT, name="CUDA_UNAVAILABLE_EXIT")


def register(subparsers: Any) -> None:
    """Add the `parity` verb."""
    import argparse

    p = add_verb(subparsers, "parity", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="ONNX file or kit checkpoint (.pt/.pth/.ckpt)")
    p.add_argument("--ref", default="CUDA", help="reference backend: CUDA[:N], ORT-CPU or TORCH-CPU (default CUDA)")
    p.add_argument("--vs", default="CPU", metavar="DEVICE", help="OpenVINO device running the IR (default CPU)")
    p.add_argument("--ir", metavar="IR.xml", help="the deployed IR (default <stem>_fp32.xml next to MODEL)")
    p.add_argument("--data", metavar="DIR", help="dataset or image folder (default calib_data/)")
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                   help="images to compare, the first N by name (default {}; 0: all)".format(DEFAULT_LIMIT))
    p.add_argument("--json", metavar="FILE", help="write the full report as JSON")
    p.add_argument("--max-diff", type=float, default=MAX_ABS_DIFF, metavar="X",
                   help="per-image max |diff| limit (default {:g})".format(MAX_ABS_DIFF))
    p.add_argument("--min-iou", type=float, default=MIN_IOU, metavar="X",
                   help="per-image IoU@0.5 limit (default {:g})".format(MIN_IOU))
    p.add_argument("--min-agreement", type=float, default=MIN_ARGMAX_AGREEMENT, metavar="X",
                   help="per-image trimap argmax agreement limit (default {:g})".format(MIN_ARGMAX_AGREEMENT))
    p.set_defaults(func=run)


def run(args: Any) -> int:
    """The verb: print the table, write --json, fail (exit 1) with one line when outside the limits."""
    from edgematte.edge.io import write_text

    if args.limit < 0:
        raise InputError("--limit must be 0 (all) or more, got {}".format(args.limit))
    limits = ParityLimits(args.max_diff, args.min_iou, args.min_agreement)
    report = run_parity(args.model, args.ref, args.vs, args.ir, args.data, args.limit, limits)
    print(table(report))
    if args.json:
        write_text(args.json, json.dumps(_json_safe(report), indent=1, allow_nan=False) + "\n")
    if not report["ok"]:
        from .parity import ParityError

        s = report["summary"]
        raise ParityError("{}: parity with {} outside the limits on {} of {} image(s) (worst max |diff| {:.3g}, "
                          "min IoU@0.5 {:.4f})".format(report["deployed"]["model"], report["reference"]["ref"],
                                                       len(s["failed"]), s["images"], s["max_abs_diff"],
                                                       s["min_iou"]))
    return 0


def _json_safe(value: Any) -> Any:
    """The report with non-finite numbers (an overflowing output) as the strings "inf" / "nan": strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


__all__ = ["CUDA_UNAVAILABLE_EXIT", "CudaUnavailableError", "ParityLimits", "REFERENCES", "Reference",
           "cuda_available", "parse_reference", "reference_predictor", "default_ir", "image_files", "read_images",
           "compare_maps", "compare", "run_parity", "table", "register"]
