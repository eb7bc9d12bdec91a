"""`edgematte rewrite`: dense convs become grouped or depthwise-separable ones (the engine is compress/_rewrite.py,
imported on use so that the CLI starts without torch). The engine's names are reachable from here too."""
import argparse
from typing import Any

from edgematte.edge.verbs import add_verb

DEFAULT_MIN_CHANNELS = 8  # equal to _rewrite's (tests/test_compress_rewrite.py checks)
DEFAULT_MIN_KERNEL = 2


def __getattr__(name: str) -> Any:
    """The engine's API (rewrite_model, rewrite_checkpoint, ...) on first use."""
    from . import _rewrite

    try:
        return getattr(_rewrite, name)
    except AttributeError:
        raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name)) from None


EPILOG = """\
KIND:
  grouped:G  each dense conv becomes a G-group conv; group weights average each run of G adjacent input channels
             of the dense kernel (W_g[:, j] = mean(W[:, G*j : G*j+G])), bias copied. Parameters / G.
  dwsep      each dense k x k conv becomes depthwise k x k (dense kernel averaged over outputs; stride, padding,
             dilation kept; no bias) + pointwise 1x1 (dense kernel averaged over the window; dense bias).

Eligible: plain Conv2d with groups 1, kernel >= --min-kernel (default 2, i.e. 3x3+; dwsep never takes 1x1),
in and out channels >= --min-channels (default 8: never the 3-channel input conv nor a 1/3-channel output
head), for grouped:G in/out divisible by G; then --include / --exclude (fnmatch globs on module paths, e.g.
'stage1.*', '*.rebnconvin.*'; repeatable). The rewrite is a warm start: the output drifts, so fine-tune
(`edgematte train ARCH DATA --init DIR/rewritten.pt`) before exporting.

Writes into DIR:
  rewritten.pt   kit checkpoint; config.rewrites maps each rewritten path to KIND, so it rebuilds (and can be
                 pruned afterwards); the card's prune.rewrite and notes say it was rewritten
  rewrite.json   the record: layers rewritten, params and FP32 sizes before/after, checkpoint file sizes

example:
  edgematte rewrite runs/u2net/best.pt --conv grouped:2 -o runs/u2net_g2
"""


def register(subparsers: Any) -> None:
    """Add the `rewrite` verb."""
    p = add_verb(subparsers, "rewrite", description="Rewrite the dense convolutions of a kit checkpoint as grouped or "
                                          "depthwise-separable ones, initialised from the dense weights, and report "
                                          "the size before and after.",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="kit checkpoint (.pt) to rewrite")
    p.add_argument("--conv", metavar="KIND", required=True, help="grouped:G (e.g. grouped:2) or dwsep")
    p.add_argument("-o", "--out", metavar="DIR", required=True, help="output folder (created if absent)")
    p.add_argument("--min-channels", type=int, default=DEFAULT_MIN_CHANNELS, metavar="N",
                   help="only convs with at least N input and N output channels (default {})".format(
                       DEFAULT_MIN_CHANNELS))
    p.add_argument("--min-kernel", type=int, default=DEFAULT_MIN_KERNEL, metavar="K",
                   help="only convs whose kernel is at least K wide (default {}: 3x3+; 1 lets grouped take 1x1 "
                        "convs)".format(DEFAULT_MIN_KERNEL))
    p.add_argument("--include", metavar="GLOB", action="append", default=None,
                   help="only module paths matching this glob (repeatable)")
    p.add_argument("--exclude", metavar="GLOB", action="append", default=None,
                   help="skip module paths matching this glob (repeatable)")
    p.set_defaults(func=run)


def _mb(nbytes: int) -> str:
    return "{:.2f} MB".format(nbytes / 1e6)


def run(args: argparse.Namespace) -> int:
    """Handler of `edgematte rewrite`."""
    from ._rewrite import rewrite_checkpoint

    result = rewrite_checkpoint(args.checkpoint, args.out, args.conv, include=args.include, exclude=args.exclude,
                                min_channels=args.min_channels, min_kernel=args.min_kernel)
    record = result.record
    print("rewrote {} conv layer(s) as {}".format(len(record.layers), record.kind))
    print("params      {:,} -> {:,} ({:.1f}%)".format(record.params_before, record.params_after,
                                                       100.0 * record.params_after / max(record.params_before, 1)))
    print("FP32 params {} -> {}".format(_mb(record.fp32_bytes_before), _mb(record.fp32_bytes_after)))
    print("checkpoint  {} -> {}".format(_mb(result.file_bytes_before), _mb(result.file_bytes_after)))
    print("wrote {} and {} (not fine-tuned: fine-tune before use)".format(result.checkpoint, result.report))
    return 0
