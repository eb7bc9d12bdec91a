"""The `edgematte quantize` verb: a thin shell over compress.quantize.quantize_ir()."""
import argparse
import json
import os
from typing import Any, Dict, List, Optional

from edgematte.edge.verbs import add_verb

EPILOG = """\
MODEL is an IR written by `edgematte export` (FP32 or FP16 weights; its model card is read from rt_info).
Calibration images are read, resized and laid out exactly as the edge runtime feeds the IR; the default set is
calib_data/ (40 real images shipped in the source tree; its README says how to build one for your domain).

Writes into DIR:
  NAME_int8.xml/.bin       the INT8 IR (FakeQuantize ops; the card says INT8 and records the lineage); NAME is
                           MODEL's stem without _fp32/_fp16: model_fp32.xml -> model_int8.xml
  quantize_report.json     calibration count, file sizes, agreement with the source IR on calibration images

With --max-drop D --val DIR, nncf.quantize_with_accuracy_control keeps the score 1 - MAE (foreground map vs
ground truth at the network's size) within D of the source IR's on DIR, reverting quantizers to floating point
where needed; the report gives both scores.

Without --max-drop, when the INT8 outputs move from the source's beyond the FP16 export limits (max |diff| 0.02,
IoU@0.5 0.99 on any calibration image), one warning line on stderr says so and points at --max-drop; the report
records it under "warning".

examples:
  edgematte quantize out/sod/model_fp32.xml -o out/sod --limit 300
  edgematte quantize out/sod/model.onnx -o out/sod          # from the ONNX file: out/sod/model_int8.xml
  edgematte quantize out/sod/model_fp32.xml -o out/sod --max-drop 0.005 --val data/duts-te-val --val-limit 100
"""

REPORT_NAME = "quantize_report.json"
AGREEMENT_IMAGES = 16
# The FP16 export limits (export/parity.py; compress may not import export, a test checks they are equal): an INT8
# IR moving further than FP16 may from its source gets a warning.
FP16_MAX_ABS_DIFF = 0.03
FP16_MIN_IOU = 0.99


def register(subparsers: Any) -> None:
    """Add the `quantize` verb."""
    p = add_verb(subparsers, "quantize",
                 description="Quantize an OpenVINO IR or a kit ONNX file to INT8 with NNCF post-training quantization, "
                             "calibrated on real images, and report how far it moved from the source.", epilog=EPILOG,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="IR .xml or .onnx with an edgematte model card (as `edgematte "
                   "export` writes them)")
    p.add_argument("-o", "--out", metavar="DIR", required=True, help="output folder (created if absent)")
    p.add_argument("--calib", metavar="DIR", default=None, help="calibration images (default: calib_data/)")
    p.add_argument("--limit", "--subset", dest="subset", type=int, default=300, metavar="N",
                   help="calibration images to use, the first N by name (default 300; the spelling every "
                   "data-taking verb shares)")
    p.add_argument("--preset", choices=("performance", "mixed"), default="performance",
                   help="performance: symmetric activations (fastest); mixed: asymmetric activations, for "
                        "non-ReLU activations (default performance)")
    p.add_argument("--ignored-scope", metavar="NAME", nargs="+", default=[],
                   help="op names kept in floating point; prefix a regular expression with re:")
    p.add_argument("--no-fast-bias-correction", dest="fast_bias_correction", action="store_false",
                   help="use NNCF's slower, more exact bias correction")
    p.add_argument("--max-drop", type=float, default=None, metavar="D", help="guard quality: NNCF quantization "
                   "with accuracy control, reverting the most harmful quantizers until the validation score "
                   "(1 - MAE on --val) drops by at most D (absolute, e.g. 0.005)")
    p.add_argument("--val", metavar="DIR", default=None, help="labelled dataset folder for --max-drop "
                   "(any layout edgematte eval reads)")
    p.add_argument("--val-limit", type=int, default=200, metavar="N", help="validation pairs used by "
                   "--max-drop (default 200)")
    p.set_defaults(func=run)


def output_path(model: str, out_dir: str) -> str:
    """DIR/<stem>_int8.xml, where stem is the model's file stem without a _fp32/_fp16 suffix."""
    stem = os.path.splitext(os.path.basename(model))[0]
    for suffix in ("_fp32", "_fp16"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return os.path.join(out_dir, stem + "_int8.xml")


def agreement(source: str, int8: str, calib: Any, count: int = AGREEMENT_IMAGES) -> Dict[str, Any]:
    """Max/mean |alpha difference| and min IoU@0.5 of the INT8 IR against its source on calibration images."""
    import numpy as np

    from edgematte.edge.io import read_image
    from edgematte.edge.runtime import load_model

    from .quantize import calibration_files

    reference, quantized = load_model(source), load_model(int8)
    diffs, ious = [], []  # type: List[float], List[float]
    for path in calibration_files(calib)[:count]:
        image = read_image(str(path), downscale=True)
        a, b = reference.predict(image), quantized.predict(image)
        if a.ndim == 3:  # trimap: compare the foreground channel
            a, b = a[..., -1], b[..., -1]
        diffs.append(float(np.abs(a - b).max()))
        fa, fb = a >= 0.5, b >= 0.5
        union = np.logical_or(fa, fb).sum()
        ious.append(float(np.logical_and(fa, fb).sum() / union) if union else 1.0)
    return {"images": len(diffs), "max_abs_diff": max(diffs), "mean_max_abs_diff": float(np.mean(diffs)),
            "min_iou": min(ious), "mean_iou": float(np.mean(ious))}


def departure_warning(agree: Dict[str, Any], guarded: bool = False) -> Optional[str]:
    """One line when INT8 moved from its source beyond the FP16 limits and no --max-drop guarded it; else None."""
    beyond = []
    if agree["max_abs_diff"] > FP16_MAX_ABS_DIFF:
        beyond.append("max |diff| {:.3f} > {:g}".format(agree["max_abs_diff"], FP16_MAX_ABS_DIFF))
    if agree["min_iou"] < FP16_MIN_IOU:
        beyond.append("min IoU@0.5 {:.3f} < {:g}".format(agree["min_iou"], FP16_MIN_IOU))
    if guarded or not beyond:
        return None
    return ("INT8 departs from its source beyond the FP16 parity limits ({} on {} calibration images): measure it "
            "with `edgematte eval`, or guard it with --max-drop D --val DIR").format(" and ".join(beyond),
                                                                                   agree["images"])


def run(args: argparse.Namespace) -> int:
    """Handler of `edgematte quantize`: INT8 IR, agreement with the source, report."""
    import sys

    from edgematte.edge.io import write_text

    from .quantize import quantize_ir

    out_xml = output_path(args.model, args.out)
    result = quantize_ir(args.model, out_xml, calib=args.calib, subset=args.subset, preset=args.preset,
                         ignored_scope=args.ignored_scope, fast_bias_correction=args.fast_bias_correction,
                         max_drop=args.max_drop, val=args.val, val_limit=args.val_limit)
    result["agreement_with_source"] = agreement(args.model, out_xml, args.calib)
    result["warning"] = departure_warning(result["agreement_with_source"], guarded=args.max_drop is not None)
    card = result.pop("card")
    report = dict(result, card=card.to_dict())
    write_text(os.path.join(args.out, REPORT_NAME), json.dumps(report, indent=2, sort_keys=True) + "\n")
    agree = result["agreement_with_source"]
    print("int8  {} ({} FakeQuantize ops, {:.2f} MB vs {:.2f} MB source weights, {} calibration images, {:.0f} s)".format(
        out_xml, result["fake_quantize_ops"], result["bin_bytes"] / 1e6, result["source_bin_bytes"] / 1e6,
        result["calibration_images"], result["seconds"]))
    print("vs source on {} calibration images: max |diff| {:.4f} (mean {:.4f}), IoU@0.5 min {:.4f} (mean {:.4f})".format(
        agree["images"], agree["max_abs_diff"], agree["mean_max_abs_diff"], agree["min_iou"], agree["mean_iou"]))
    control = result.get("accuracy_control")
    if control:
        print("accuracy control on {} images: {} {:.4f} -> {:.4f} (drop {:.4f}, budget {})".format(
            control["validation_images"], control["metric"], control["score_source"], control["score_int8"],
            control["drop"], control["max_drop"]))
    if result["warning"]:
        print("warning: " + result["warning"], file=sys.stderr, flush=True)
    print("report: {}".format(os.path.join(args.out, REPORT_NAME)))
    return 0
