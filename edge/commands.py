"""The runtime verbs `mask`, `cutout`, `blur`, `replace`: parse arguments, load the model, call edge.apply."""
import argparse
from typing import Any, Callable, Dict

from . import options
from .apply import OPERATIONS, process_inputs
from .compose import DEFAULT_BLUR_STRENGTH
from .errors import InputError, ModelFileError
from .live_run import add_live_args, live_inputs, load_any, run_live
from .io import DEFAULT_MAX_PIXELS, quiet_opencv
from .compose import pymatting_installed
from .postprocess import HELP as POST_PROCESS_HELP
from .refine import HELP as REFINE_HELP, METHODS as REFINE_METHODS
from .progress import add_progress_args
from .verbs import add_verb

# One rule picks the zoo model a verb uses when -m is not given: a verb that makes a picture of the subject
# (cutout, blur, replace) is mostly run on photos of people and takes the model that leads on people; `mask`
# answers "what stands out" for any subject and takes `sod`, the general model. `portrait` (the EfficientNet-Lite0
# UNet fine-tuned on people from sod) leads on the held-out vikram_* people: IoU 0.866 / boundary IoU 0.609 vs
# sod's 0.855 / 0.582 (train/recipes/README.md).
SUBJECT_MODEL = {  # kind of subject -> (zoo model, how --help states the rule)
    "people": ("portrait", "the model that leads on people, as cutouts, blur and replace are mostly of people; "
                           "-m sod for other subjects"),
    "any": ("sod", "the general model for any salient subject"),
}
VERB_SUBJECT = {"mask": "any", "cutout": "people", "blur": "people", "replace": "people"}
DEFAULT_MODEL = {verb: SUBJECT_MODEL[subject][0] for verb, subject in VERB_SUBJECT.items()}


def register(subparsers: Any) -> None:
    """Add the runtime verbs to the `edgematte` command."""
    for verb in OPERATIONS:
        parser = add_verb(subparsers, verb)
        _common(parser, verb)
        add_live_args(parser)
        if verb == "blur":
            parser.add_argument("--strength", type=options.strength, default=DEFAULT_BLUR_STRENGTH,
                                help="blur sigma as a percentage of the image's longer side, {:g} to {:g} "
                                     "(default: %(default)s)".format(*options.STRENGTH_RANGE))
        if verb == "replace":
            parser.add_argument("--background", default="white", metavar="COLOR|IMAGE",
                                help="new background: #RRGGBB, R,G,B, a colour name, or an image file "
                                     "(resized to cover; default: %(default)s)")
        if verb == "cutout":
            fg = parser.add_mutually_exclusive_group()
            fg.add_argument("--fg-estimate", dest="fg_estimate", action="store_const", const=True, default=None,
                            help="unmix foreground colours from the background at soft edges (pymatting's "
                                 "estimate_foreground_ml); the default for files when pymatting is installed")
            fg.add_argument("--no-fg-estimate", dest="fg_estimate", action="store_const", const=False,
                            help="keep the photo's colours at the edges as they are (faster)")
        parser.set_defaults(func=_handler(verb))


def _common(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="image files, folders (searched recursively) or videos; or one live input: a camera "
                             "(N or /dev/videoN), a stream URL (rtsp://, http(s)://, ...), or - for stdin")
    parser.add_argument("-o", "--outdir", required=True, help="folder for the outputs (created if needed)")
    parser.add_argument("-m", "--model", default=None,
                        help="model: IR .xml, .onnx, a zoo name, or a plugin file such as a checkpoint "
                             "(default: {})".format(default_model_help(verb)))
    parser.add_argument("-d", "--device", default="CPU",
                        help="OpenVINO device: CPU, GPU, NPU, AUTO (OpenVINO picks), AUTO:GPU,CPU (priority list; "
                             "absent candidates are skipped), HETERO:a,b, MULTI:a,b (default: %(default)s)")
    parser.add_argument("--nireq", type=options.nireq, default=0,
                        help="parallel inference requests, {} to {}; 0 = the device's optimal number (default: "
                             "%(default)s)".format(*options.NIREQ_RANGE))
    parser.add_argument("--max-pixels", type=options.max_pixels, default=DEFAULT_MAX_PIXELS,
                        help="refuse images and video frames larger than this many pixels, {} to {} (default: "
                             "%(default)s)".format(*options.MAX_PIXELS_RANGE))
    parser.add_argument("--downscale-large", action="store_true",
                        help="shrink images above --max-pixels instead of refusing them")
    parser.add_argument("-ppm", "--post-process", action="store_true", help=POST_PROCESS_HELP)
    parser.add_argument("--refine", choices=REFINE_METHODS, default=None, help=REFINE_HELP)
    add_progress_args(parser)


def default_model_help(verb: str) -> str:
    """How --help states the default model of `verb` and the rule behind it."""
    model, why = SUBJECT_MODEL[VERB_SUBJECT[verb]]
    return "zoo model '{}', {}".format(model, why)


def _load(model: Any, verb: str, device: str) -> Any:
    """The predictor for -m, or the verb's default zoo model with a one-line hint when it is not installed."""
    from .runtime import load_model
    from .zoo import path_for

    if model is not None:  # an explicit -m '' is an error (load_model says so), not the default model
        return load_any(model, device)
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
        live = live_inputs(args.inputs, args.camera, args.raw)
        if not live and not args.inputs:
            raise InputError("give at least one INPUT (files, folders, videos, a camera, a stream URL or -)")
        predictor = _load(args.model, verb, args.device)
        options = {"post_process": args.post_process, "refine": args.refine}  # type: Dict[str, Any]
        if verb == "blur":
            options["strength"] = args.strength
        elif verb == "replace":
            options["background"] = args.background
        elif verb == "cutout":
            # on by default for files where pymatting is installed; live video keeps its frame rate
            options["fg_estimate"] = args.fg_estimate if args.fg_estimate is not None else (
                not live and pymatting_installed())
        if live:
            return run_live(predictor, live[0], verb, args.outdir, options, nireq=args.nireq,
                            smooth=not args.no_smooth, show=args.show, reconnect=args.reconnect,
                            max_pixels=args.max_pixels, progress=args.progress)
        summary = process_inputs(predictor, args.inputs, args.outdir, verb, nireq=args.nireq,
                                 max_pixels=args.max_pixels, downscale=args.downscale_large,
                                 progress=args.progress, smooth=not args.no_smooth, **options)
        return 0 if summary.ok else 1

    return run
