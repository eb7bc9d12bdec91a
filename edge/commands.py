"""The runtime verbs `mask`, `cutout`, `blur`, `replace`: parse arguments, load the model, call edge.apply."""
import argparse
from typing import Any, Callable

from .apply import OPERATIONS, process_inputs
from .compose import DEFAULT_BLUR_STRENGTH
from .errors import ModelFileError
from .io import DEFAULT_MAX_PIXELS, quiet_opencv

# The zoo model each verb uses when -m is not given: `sod` (any salient subject) for masks and cutouts, `portrait`
# (trained on people) for the background effects; on the held-out vikram_* portraits the two are level (IoU 0.690
# vs 0.694, boundary IoU 0.372 vs 0.385, MAE 0.109 vs 0.111: train/recipes/README.md).
DEFAULT_MODEL = {"mask": "sod", "cutout": "sod", "blur": "portrait", "replace": "portrait"}

HELP = {
    "mask": "write the predicted mask of each input as an 8-bit PNG (videos: a gray video)",
    "cutout": "write each input's subject as an RGBA PNG (videos: a folder of RGBA PNG frames)",
    "blur": "blur the background behind the subject (bokeh)",
    "replace": "put the subject on a new background colour or image",
}


def register(subparsers: Any) -> None:
    """Add the runtime verbs to the `edgematte` command."""
    for verb in OPERATIONS:
        parser = subparsers.add_parser(verb, help=HELP[verb], description=HELP[verb] + ".")
        _common(parser, verb)
        if verb == "blur":
            parser.add_argument("--strength", type=float, default=DEFAULT_BLUR_STRENGTH,
                                help="blur sigma as a percentage of the image's longer side (default: %(default)s)")
        if verb == "replace":
            parser.add_argument("--background", default="white", metavar="COLOR|IMAGE",
                                help="new background: #RRGGBB, R,G,B, a colour name, or an image file "
                                     "(resized to cover; default: %(default)s)")
        if verb == "cutout":
            parser.add_argument("--fg-estimate", action="store_true",
                                help="unmix foreground colours from the background at soft edges (needs pymatting)")
        parser.set_defaults(func=_handler(verb))


def _common(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="image files, folders (searched recursively) or videos")
    parser.add_argument("-o", "--outdir", required=True, help="folder for the outputs (created if needed)")
    parser.add_argument("-m", "--model", default=None,
                        help="model: IR .xml, .onnx, a zoo name, or a plugin file such as a checkpoint "
                             "(default: zoo model '{}')".format(DEFAULT_MODEL[verb]))
    parser.add_argument("-d", "--device", default="CPU",
                        help="OpenVINO device: CPU, GPU, NPU, AUTO (OpenVINO picks), AUTO:GPU,CPU (priority list; "
                             "absent candidates are skipped), HETERO:a,b, MULTI:a,b (default: %(default)s)")
    parser.add_argument("--nireq", type=int, default=0,
                        help="parallel inference requests; 0 = the device's optimal number (default: %(default)s)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse images larger than this many pixels (default: %(default)s)")
    parser.add_argument("--downscale-large", action="store_true",
                        help="shrink images above --max-pixels instead of refusing them")
    parser.add_argument("--progress", dest="progress", action="store_true", default=None,
                        help="always show progress (default: only on a terminal)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress")


def _load(model: Any, verb: str, device: str) -> Any:
    """The predictor for -m, or the verb's default zoo model with a one-line hint when it is not installed."""
    from .runtime import load_model
    from .zoo import path_for

    if model:
        return load_model(model, device=device)
    name = DEFAULT_MODEL[verb]
    try:
        default = path_for(name)  # by zoo name, never a same-named file in the working folder
    except ModelFileError:
        raise ModelFileError("the default model '{}' for `{}` is not installed in the zoo; pass a model with "
                             "-m MODEL.xml (or .onnx)".format(name, verb)) from None
    return load_model(default, device=device)


def _handler(verb: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        quiet_opencv()  # decoder warnings would add lines to the one-line-per-bad-input report
        predictor = _load(args.model, verb, args.device)
        options = {}
        if verb == "blur":
            options["strength"] = args.strength
        elif verb == "replace":
            options["background"] = args.background
        elif verb == "cutout":
            options["fg_estimate"] = args.fg_estimate
        summary = process_inputs(predictor, args.inputs, args.outdir, verb, nireq=args.nireq,
                                 max_pixels=args.max_pixels, downscale=args.downscale_large,
                                 progress=args.progress, **options)
        return 0 if summary.ok else 1

    return run
