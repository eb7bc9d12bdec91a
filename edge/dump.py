"""Bin-level validation: dump a model's exact network inputs and raw outputs, and check outputs made elsewhere.

`edgematte dump MODEL IMAGE... -o DIR` writes DIR/inputs/<stem>.bin (the tensor the network takes, after the
runtime's resize and layout), DIR/outputs/<stem>.bin (its raw output) and DIR/index.json (shape, dtype, layout of
every file, the model's card). Feed the inputs to another device, runtime or board toolchain, save its raw outputs
as <stem>.bin (same dtype and shape, little-endian, C order), and `edgematte verify-dump DIR --outputs OTHER`
compares them with the task metrics (max/mean |diff|, IoU@0.5 of the foreground channel).
"""
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set

import numpy as np

from .errors import InputError
from .io import read_image, write_text
from .outputs import owned_folder, refuse_inputs
from .verbs import add_verb

INDEX = "index.json"
MAX_ABS_DIFF = 0.03  # the FP16 limits of export parity
MIN_IOU = 0.99


def dump(model: str, images: Sequence[str], out: str, device: str = "CPU") -> Dict[str, Any]:
    """Run `model` on each image and write inputs/, outputs/ and index.json into `out` (all or nothing)."""
    from .runtime import load_model

    if not images:
        raise InputError("dump: no images given")
    refuse_inputs([(out, True)], images, named=True)  # the dump replaces its folder whole: never one holding an input
    items = []  # type: List[Dict[str, Any]]
    stems = set()  # type: set
    with owned_folder(out, "dump", legacy=_dump_listing) as tmp:
        predictor = load_model(model, device=device)
        for folder in ("inputs", "outputs"):
            os.makedirs(os.path.join(tmp, folder))
        for path in images:
            stem = Path(path).stem
            if stem in stems:
                raise InputError("{}: two images share the name {!r}; dump names files by stem".format(path, stem))
            stems.add(stem)
            image = read_image(path)
            x = np.ascontiguousarray(predictor.prepare(image))
            y = np.ascontiguousarray(np.asarray(predictor.infer(x)))
            x.tofile(os.path.join(tmp, "inputs", stem + ".bin"))
            y.astype(y.dtype.newbyteorder("<")).tofile(os.path.join(tmp, "outputs", stem + ".bin"))
            card = predictor.card
            items.append({"image": str(path), "stem": stem, "image_size": list(image.shape[:2]),
                          "input": {"file": "inputs/{}.bin".format(stem), "shape": list(x.shape),
                                    "dtype": str(x.dtype), "layout": card.input.get("layout", "NHWC"),
                                    "color": card.input.get("color", "BGR")},
                          "output": {"file": "outputs/{}.bin".format(stem), "shape": list(y.shape),
                                     "dtype": str(y.dtype), "layout": "NCHW"}})
        index = {"model": str(model), "device": device, "card": predictor.card.to_dict(), "items": items,
                 "byte_order": "little", "order": "C"}
        write_text(os.path.join(tmp, INDEX), json.dumps(index, indent=1) + "\n")
    return index


def _dump_listing(folder: Path) -> Optional[Set[str]]:
    """The files a dump written before manifests lists in its index.json (inputs, outputs, the index)."""
    try:
        items = json.loads((folder / INDEX).read_text())["items"]
        files = {INDEX} | {os.path.normpath(item[k]["file"]) for item in items for k in ("input", "output")}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {f for f in files if not f.startswith("..") and not os.path.isabs(f)}


def _load(path: Path, shape: Sequence[int], dtype: str) -> np.ndarray:
    if not path.is_file():
        raise InputError("{}: missing".format(path))
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if path.stat().st_size != expected:
        raise InputError("{}: {} bytes, expected {} ({} {})".format(path, path.stat().st_size, expected, dtype,
                                                                   list(shape)))
    return np.fromfile(str(path), dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def verify_dump(folder: str, outputs: str, max_abs_diff: float = MAX_ABS_DIFF,
                min_iou: float = MIN_IOU) -> Dict[str, Any]:
    """Compare OTHER/<stem>.bin with the dumped outputs; per item and overall max/mean |diff| and IoU@0.5."""
    index_path = Path(folder) / INDEX
    if not index_path.is_file():
        raise InputError("{}: no {} (not a folder written by `edgematte dump`)".format(folder, INDEX))
    try:
        index = json.loads(index_path.read_text())
        items = list(index["items"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError("{}: malformed ({})".format(index_path, exc)) from None
    rows = []
    for item in items:
        spec = item["output"]
        reference = _load(Path(folder) / spec["file"], spec["shape"], spec["dtype"]).astype(np.float32)
        other = _load(Path(outputs) / (item["stem"] + ".bin"), spec["shape"], spec["dtype"]).astype(np.float32)
        diff = np.abs(reference - other)
        a, b = reference[:, -1] >= 0.5, other[:, -1] >= 0.5  # the foreground channel (NCHW)
        union = np.logical_or(a, b).sum()
        iou = float(np.logical_and(a, b).sum() / union) if union else 1.0
        rows.append({"stem": item["stem"], "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
                     "iou": iou, "ok": bool(diff.max() <= max_abs_diff and iou >= min_iou)})
    return {"items": rows, "ok": all(r["ok"] for r in rows), "max_abs_diff": max(r["max_abs_diff"] for r in rows),
            "min_iou": min(r["iou"] for r in rows), "limits": {"max_abs_diff": max_abs_diff, "min_iou": min_iou}}


def register(subparsers: Any) -> None:
    """Add the `dump` and `verify-dump` verbs."""
    import argparse

    p = add_verb(subparsers, "dump", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="IR .xml, .onnx or zoo name")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="images whose network inputs and outputs to dump")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="folder to write (the kit's own set, swapped in whole)")
    p.add_argument("-d", "--device", default="CPU", help="OpenVINO device (default: %(default)s)")
    p.set_defaults(func=_run_dump)
    v = add_verb(subparsers, "verify-dump", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("dump", metavar="DIR", help="folder written by `edgematte dump`")
    v.add_argument("--outputs", required=True, metavar="OTHER", help="folder of <stem>.bin outputs to check")
    v.add_argument("--max-abs-diff", type=float, default=MAX_ABS_DIFF,
                   help="largest per-pixel output difference allowed (default: %(default)s, the FP16 export limit)")
    v.add_argument("--min-iou", type=float, default=MIN_IOU,
                   help="smallest IoU of the thresholded outputs allowed (default: %(default)s)")
    v.set_defaults(func=_run_verify)


def _run_dump(args: Any) -> int:
    index = dump(args.model, args.images, args.out, args.device)
    print("wrote {}: {} inputs and outputs, index {}".format(args.out, len(index["items"]), INDEX))
    return 0


def _run_verify(args: Any) -> int:
    result = verify_dump(args.dump, args.outputs, args.max_abs_diff, args.min_iou)
    for row in result["items"]:
        print("{:<32} max |diff| {:.5f}  mean {:.5f}  IoU@0.5 {:.4f}  {}".format(
            row["stem"], row["max_abs_diff"], row["mean_abs_diff"], row["iou"], "ok" if row["ok"] else "FAIL"))
    if not result["ok"]:
        print("{}: outputs differ beyond max |diff| {} or IoU {} (worst {:.5f}, {:.4f})".format(
            args.outputs, args.max_abs_diff, args.min_iou, result["max_abs_diff"], result["min_iou"]),
            file=sys.stderr)
        return 1
    print("all {} outputs within max |diff| {} and IoU@0.5 >= {}".format(len(result["items"]), args.max_abs_diff,
                                                                        args.min_iou))
    return 0


__all__ = ["dump", "verify_dump", "register"]
