"""Every verb of the `edgematte` command by name: which module registers it, which extra it needs, its one-line
help. The command imports a verb's module only when that verb runs, so `--help` is instant and a base install
names the extra a verb needs instead of failing inside it."""
import argparse
import importlib.util
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional


@dataclass(frozen=True)
class Verb:
    """One verb: `module:register` adds its parser; `extra` is the pip extra it needs (None: the base install)."""

    name: str
    module: str
    help: str
    extra: Optional[str] = None
    register: str = "register"


_EDGE, _TRAIN = "edgematte.edge.", "edgematte.train."
VERBS = {verb.name: verb for verb in (
    Verb("mask", _EDGE + "commands", "write the predicted mask of each input as an 8-bit PNG (videos: a gray video)"),
    Verb("cutout", _EDGE + "commands", "write each input's subject as an RGBA PNG (videos: a folder of RGBA PNG "
                                       "frames)"),
    Verb("blur", _EDGE + "commands", "blur the background behind the subject (bokeh)"),
    Verb("replace", _EDGE + "commands", "put the subject on a new background colour or image"),
    Verb("clip", _EDGE + "clip", "make a synthetic video (slow pan + zoom) from a still and its mask"),
    Verb("bench", _EDGE + "bench", "measure models side by side (latency, throughput, quality)"),
    Verb("eval", _EDGE + "evaluate", "score a model on a dataset folder (IoU, boundary IoU, MAE, SOD and matting "
                                     "metrics)"),
    Verb("bundle", _EDGE + "bundle", "pack IRs, cards, a sha256 manifest and a self-test into a .tar.gz"),
    Verb("verify", _EDGE + "bundle", "check a bundle's members, hashes and signature, then run its self-test"),
    Verb("keygen", _EDGE + "bundle", "make an Ed25519 key pair for signing bundles"),
    Verb("check-ncs2", _EDGE + "ncs2", "lint an IR against what the NCS2 (MYRIAD) can run"),
    Verb("dump", _EDGE + "dump", "write a model's network inputs and raw outputs as .bin with an index"),
    Verb("verify-dump", _EDGE + "dump", "compare raw outputs made elsewhere with a dump"),
    Verb("export", "edgematte.export.cli", "export a checkpoint to ONNX and OpenVINO IR (FP32/FP16) with checks",
         "train"),
    Verb("ship", "edgematte.export.cli", "install a checkpoint into the model zoo as INT8 or FP16 IR, by measured "
                                         "quality", "train"),
    Verb("parity", "edgematte.export.reference", "compare a model on a reference backend (CUDA) with its deployed "
                                                 "IR", "train"),
    Verb("pipeline", "edgematte.export.pipeline", "prune, fine-tune, export, FP16 and INT8 a checkpoint, with a "
                                                  "report", "train"),
    Verb("prune", "edgematte.compress.prune", "L1 filter pruning of a checkpoint (Torch-Pruning), with a record",
         "train"),
    Verb("quantize", "edgematte.compress.cli", "INT8 post-training quantization of an IR or ONNX model (NNCF) on "
                                               "real images", "train"),
    Verb("rewrite", "edgematte.compress.rewrite", "replace dense convs by grouped or depthwise-separable ones",
         "train"),
    Verb("models", _TRAIN + "models_cli", "list the zoo's architectures (size, GFLOPs, ImageNet weights)", "train"),
    Verb("train", _TRAIN + "cli", "train a zoo model on a dataset folder (resumable, DDP-ready)", "train"),
)}
EXTRA_PROBE = {"train": "torch"}  # a package each extra installs: whether the extra is there, without importing it


def extra_missing(verb: Verb) -> bool:
    """Whether the verb's extra is not installed (found without importing anything)."""
    probe = EXTRA_PROBE.get(verb.extra or "")
    if not probe:
        return False
    try:
        return importlib.util.find_spec(probe) is None
    except (ImportError, ValueError):  # a broken install counts as missing
        return True


def add_verb(subparsers: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """The parser of verb `name` with the help and description this table gives it."""
    verb = VERBS[name]
    kwargs.setdefault("description", verb.help[:1].upper() + verb.help[1:] + ".")
    return subparsers.add_parser(name, help=verb.help, **kwargs)


def register_function(verb: Verb) -> Callable[[Any], None]:
    """Import the verb's module; MissingExtraError (one line, the pip command) when its extra is not installed."""
    from .errors import MissingExtraError

    if extra_missing(verb):  # its module may import the extra only when the verb runs: say so before parsing
        raise MissingExtraError("`edgematte {}`".format(verb.name), EXTRA_PROBE[verb.extra or ""], verb.extra or "")
    try:
        module = importlib.import_module(verb.module)
    except ModuleNotFoundError as exc:
        if verb.extra is None or (exc.name or "").startswith("edgematte"):
            raise
        raise MissingExtraError("`edgematte {}`".format(verb.name), (exc.name or "?").split(".")[0],
                                verb.extra) from None
    return getattr(module, verb.register)


def stub_parsers(subparsers: Any, names: Dict[str, str]) -> None:
    """Help-only entries for `--help` and for a mistyped verb: no module is imported."""
    for name, text in names.items():
        subparsers.add_parser(name, help=text, add_help=False)


__all__ = ["Verb", "VERBS", "add_verb", "register_function", "extra_missing", "stub_parsers"]
