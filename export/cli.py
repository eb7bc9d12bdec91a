"""The `edgematte export` verb: a thin shell over export.api.export_model()."""
import argparse
from typing import Any, List

from edgematte.edge.verbs import add_verb

# Kept here (and checked equal to the api's in tests/test_export.py): importing .api would pull torch in at startup.
FORMATS = ("onnx", "ir")
PRECISIONS = ("fp32", "fp16")
DEFAULT_OPSET = 18
REPORT_NAME = "export_report.json"

EPILOG = """\
SOURCE is a kit checkpoint (.pt written by `edgematte train`) or, with --untrained, a zoo model name (modnet, u2net,
u2netp, mbv2_unet) initialised at random with a fixed seed (for sizing, latency and pipeline checks).

Writes into DIR (file names start with "model" whatever the checkpoint is called; --name NAME changes that):
  model.onnx                 f32 NCHW RGB normalised input, model card in metadata ("edgematte.card")
  model_fp32.xml/.bin        OpenVINO IR taking u8 BGR NHWC [1,H,W,3] (preprocessing inside), BatchNorm folded
  model_fp16.xml/.bin        the same with FP16 weights
  model_ncs2.xml/.bin        with --target ncs2 only
  export_report.json         params, FLOPs, file sizes, parity numbers, BatchNorm op count, OpenCV DNN result

Checks: onnxruntime vs PyTorch (max |diff| < 1e-4), ONNX vs FP32 IR, FP16 IR vs FP32 IR and PyTorch FP32 vs FP16
activations (max |diff| <= 0.02 and IoU@0.5 >= 0.99 on every image; images from ../shared/data/duts-te-val when
present, else synthetic). Each compares what the runtime returns: the map resized back to the image's size (for
trimap models, the foreground alpha).

An IR that fails its check is kept only as model_<precision>.parity-failed.xml/.bin (never under its normal name);
the command then exits 1 after writing the report, with one line naming the file, by how much it missed and how to
go on (a larger --fp16-max-diff, or --precision fp32). The files under their normal names passed every check.

example:
  edgematte export runs/sod/best.pt -o out/sod                 # out/sod/model.onnx, model_fp32.xml, ...
  edgematte export runs/sod/best.pt -o out --name sod --precision fp32   # out/sod.onnx, out/sod_fp32.xml
  edgematte export modnet --untrained -o out/modnet --size 256 256
"""


def _csv(text: str) -> List[str]:
    return [part for part in (p.strip() for p in text.split(",")) if part]


def _fp16_limit_option(p: argparse.ArgumentParser) -> None:
    """--fp16-max-diff: the FP16 parity checks' max |diff| limit (the IoU@0.5 >= 0.99 limit is fixed)."""
    p.add_argument("--fp16-max-diff", type=float, default=None, metavar="D",
                   help="FP16 vs FP32 parity: largest allowed |diff| of the [0,1] maps per image (default 0.02; the "
                        "map moves most on the subject's edge, where a steep sigmoid turns a 0.1 logit change into "
                        "0.025; IoU@0.5 >= 0.99 is always required)")


def register(subparsers: Any) -> None:
    """Add the `export` verb."""
    p = add_verb(subparsers, "export",
                 description="Export a model to ONNX and OpenVINO IR with its model card, BatchNorm folded and "
                             "preprocessing inside, and check every artifact's parity.", epilog=EPILOG,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE", help="kit checkpoint (.pt), or a zoo model name with --untrained")
    p.add_argument("-o", "--out", metavar="DIR", required=True, help="output folder (created if absent)")
    p.add_argument("--name", metavar="NAME", default=None,
                   help="file stem: NAME.onnx, NAME_fp32.xml, ... (default model; the model card keeps its name)")
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
    p.add_argument("--target", choices=("ncs2",), default=None,
                   help="also write model_ncs2.xml for the NCS2 (MYRIAD, OpenVINO 2022.3): FP16, static, batch 1, "
                        "newer ops rewritten to opset10, checked by the same lint as `edgematte check-ncs2`")
    p.add_argument("--torch-fp16", choices=("emulate", "half"), default="emulate",
                   help="how the PyTorch FP16-activation check runs: emulate (round weights and every op output to "
                        "FP16, FP32 speed; default) or half (model.half(), real FP16 kernels, 15-30x slower on CPU)")
    _fp16_limit_option(p)
    p.set_defaults(func=run)
    register_ship(subparsers)


SHIP_EPILOG = """\
Exports CKPT to FP32 and FP16 IRs, quantizes the FP32 IR to INT8 (NNCF, calibrated on calib_data/ or --calib),
evaluates all three on VALDATA with the edge runtime, and installs INT8 when it keeps quality (mean MAE at most
5 % + 0.002 above FP32, mean IoU at most 0.01 below), else FP16, as ZOO/NAME/model.xml + model.bin, with
ship.json holding the table and the choice. ZOO defaults to the package's own zoo (edge/zoo); put your own models
in a folder listed in $EDGEMATTE_ZOO and run them with `-m NAME`.

example:
  edgematte ship runs/sod/best.pt --name sod --val ../shared/data/duts-te-val
"""


def register_ship(subparsers: Any) -> None:
    """Add the `ship` verb."""
    p = add_verb(subparsers, "ship",
                 description="Export, quantize, evaluate and install a checkpoint as a zoo model.",
                 epilog=SHIP_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="kit checkpoint (.pt)")
    p.add_argument("--name", required=True, help="zoo name to install as (e.g. sod, portrait)")
    p.add_argument("--val", metavar="VALDATA", required=True, help="validation dataset the precisions are compared on")
    p.add_argument("--val-filter", metavar="GLOB", nargs="+", default=[], help="only validation images whose stem "
                                                                               "matches one of these globs")
    p.add_argument("--zoo", metavar="DIR", default=None, help="zoo folder (default: the package's edge/zoo)")
    p.add_argument("--work", metavar="DIR", default=None, help="keep the exported IRs here (default: a temp folder)")
    p.add_argument("--calib", metavar="DIR", default=None, help="INT8 calibration images (default: calib_data/)")
    p.add_argument("--precision", choices=("auto", "int8", "fp16", "fp32"), default="auto",
                   help="force the installed precision (default auto: INT8 if it keeps quality, else FP16)")
    _fp16_limit_option(p)
    p.set_defaults(func=run_ship)


def run_ship(args: argparse.Namespace) -> int:
    from .ship import ship

    ship(args.checkpoint, args.name, args.val, zoo=args.zoo, work=args.work, val_filter=args.val_filter,
         calib=args.calib, precision=args.precision, fp16_max_diff=args.fp16_max_diff)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the export (it prints a summary); a failed parity check raises ParityError (exit 1, one line)."""
    from .api import export_model  # torch, onnx, openvino: only when the verb runs

    report = export_model(args.source, args.out, formats=args.format, precisions=args.precision, size=args.size,
                          dynamic=args.dynamic, untrained=args.untrained, images=args.images,
                          image_count=args.image_count, opset=args.opset,
                          torch_fp16=args.torch_fp16, target=args.target, verbose=True,
                          fp16_max_diff=args.fp16_max_diff, name=args.name)
    print("report: {}/{}".format(args.out.rstrip("/"), REPORT_NAME))
    return 0
