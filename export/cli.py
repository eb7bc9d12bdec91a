"""The `edgematte export` verb: a thin shell over export.api.export_model()."""
import argparse
from typing import Any, List

# Kept here (and checked equal to the api's in tests/test_export.py): importing .api would pull torch in at startup.
FORMATS = ("onnx", "ir")
PRECISIONS = ("fp32", "fp16")
DEFAULT_OPSET = 18
REPORT_NAME = "export_report.json"

EPILOG = """\
SOURCE is a kit checkpoint (.pt written by `edgematte train`) or, with --untrained, a zoo model name (modnet, u2net,
u2netp, mbv2_unet) initialised at random with a fixed seed (for sizing, latency and pipeline checks).

Writes into DIR:
  NAME.onnx                  f32 NCHW RGB normalised input, model card in metadata ("edgematte.card")
  NAME_fp32.xml/.bin         OpenVINO IR taking u8 BGR NHWC [1,H,W,3] (preprocessing inside), BatchNorm folded
  NAME_fp16.xml/.bin         the same with FP16 weights
  export_report.json         params, FLOPs, file sizes, parity numbers, BatchNorm op count, OpenCV DNN result

Checks: onnxruntime vs PyTorch (max |diff| < 1e-4), ONNX vs FP32 IR, FP16 IR vs FP32 IR and PyTorch FP32 vs FP16
activations (max |diff| <= 0.02 and IoU@0.5 >= 0.99 on every image; images from ../shared/data/duts-te-val when
present, else synthetic). A failed check exits 1 after writing the report.

example:
  edgematte export runs/sod/best.pt -o out/u2netp --precision fp32,fp16
  edgematte export modnet --untrained -o out/modnet --size 256 256
"""


def _csv(text: str) -> List[str]:
    return [part for part in (p.strip() for p in text.split(",")) if part]


def register(subparsers: Any) -> None:
    """Add the `export` verb."""
    p = subparsers.add_parser("export", help="export a checkpoint to ONNX and OpenVINO IR (FP32/FP16) with checks",
                              description="Export a model to ONNX and OpenVINO IR with its model card, BatchNorm "
                                          "folded and preprocessing inside, and check every artifact's parity.",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE", help="kit checkpoint (.pt), or a zoo model name with --untrained")
    p.add_argument("-o", "--out", metavar="DIR", required=True, help="output folder (created if absent)")
    p.add_argument("--format", type=_csv, default=list(FORMATS), metavar="LIST",
                   help="comma-separated artifacts to keep: onnx, ir (default onnx,ir; the IR is always made "
                        "from an ONNX file, which is deleted when only ir is asked for)")
    p.add_argument("--precision", type=_csv, default=list(PRECISIONS), metavar="LIST",
                   help="comma-separated IR precisions: fp32, fp16 (default fp32,fp16)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="input size the artifacts take (default: the model config's input_size)")
    p.add_argument("--dynamic", action="store_true",
                   help="dynamic batch/height/width in ONNX and IR (the card's input_size stays the preferred size)")
    p.add_argument("--untrained", action="store_true",
                   help="SOURCE is a zoo model name: export it with random weights (torch seed 0)")
    p.add_argument("--images", metavar="FOLDER", default=None,
                   help="folder of parity images, or 'synthetic' (default ../shared/data/duts-te-val/images "
                        "when present, else synthetic scenes)")
    p.add_argument("--image-count", type=int, default=8, metavar="N", help="parity images to use (default 8)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help="ONNX opset (default {}; lower ones are down-converted, which can fail)".format(DEFAULT_OPSET))
    p.add_argument("--torch-fp16", choices=("emulate", "half"), default="emulate",
                   help="how the PyTorch FP16-activation check runs: emulate (round weights and every op output to "
                        "FP16, FP32 speed; default) or half (model.half(), real FP16 kernels, 15-30x slower on CPU)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the export (it prints a summary); a failed parity check raises ParityError (exit 1)."""
    from .api import export_model  # torch, onnx, openvino: only when the verb runs

    report = export_model(args.source, args.out, formats=args.format, precisions=args.precision, size=args.size,
                          dynamic=args.dynamic, untrained=args.untrained, images=args.images,
                          image_count=args.image_count, opset=args.opset,
                          torch_fp16=args.torch_fp16, verbose=True)
    print("report: {}/{}".format(args.out.rstrip("/"), REPORT_NAME))
    return 0
