"""Ship a trained checkpoint as a zoo model: export, INT8, evaluate every precision, install the one that holds quality.

The zoo folder `<zoo>/<name>/` gets `model.xml` + `model.bin` (the chosen IR, card inside), `model.pt` (the kit
checkpoint in its compact form, int8 weights per output channel: the start for fine-tuning, pruning or re-export at
another size) and `ship.json` (the measured table, the rule, the choice, and the compact checkpoint's own scores).
The kit's own defaults are shipped with it into edge/zoo/; a user's models go to any folder listed in
$EDGEMATTE_ZOO.
"""
import fnmatch
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from edgematte.edge.datasets import find_pairs
from edgematte.edge.evaluate import evaluate, summary_table
from edgematte.edge.io import write_text
from edgematte.edge.names import check_model_name
from edgematte.edge.runtime import load_model
from edgematte.edge.zoo import CHECKPOINT_FILE, MODEL_FILE, PACKAGE_DIR

from .api import export_model, ir_name

SHIP_FILE = "ship.json"
# INT8 ships when, on the validation set, its mean MAE is at most 5 % (relative) + 0.002 above FP32's and its mean
# IoU at most 0.01 below; otherwise FP16 ships (it matches FP32 by the export parity check).
MAX_MAE_RISE = 0.05
MAE_SLACK = 0.002
MAX_IOU_DROP = 0.01


def holds_quality(int8: Dict[str, Any], fp32: Dict[str, Any]) -> bool:
    """Whether the INT8 summary keeps the FP32 summary's quality by the rule above."""
    a, b = int8["mean"], fp32["mean"]
    return a["mae"] <= b["mae"] * (1 + MAX_MAE_RISE) + MAE_SLACK and a["iou"] >= b["iou"] - MAX_IOU_DROP


def ship(checkpoint: str, name: str, val: str, zoo: Optional[str] = None, work: Optional[str] = None,
         val_filter: Sequence[str] = (), calib: Optional[str] = None, precision: str = "auto",
         verbose: bool = True, fp16_max_diff: Optional[float] = None) -> Dict[str, Any]:
    """Export `checkpoint`, quantize it, evaluate FP32/FP16/INT8 IRs on `val`, install the choice as zoo `name`."""
    from edgematte.compress.quantize import quantize_ir

    check_model_name(name, "--name")  # the zoo folder is <zoo>/<name>: a plain name, never a path
    work_dir = Path(work or tempfile.mkdtemp(prefix="edgematte-ship-"))
    report = export_model(checkpoint, str(work_dir), formats=("ir",), precisions=("fp32", "fp16"), verbose=verbose,
                          fp16_max_diff=fp16_max_diff)
    irs = {p: str(work_dir / report.ir_file(p)) for p in ("fp32", "fp16")}
    irs["int8"] = str(work_dir / ir_name(report.stem, "int8"))
    quantize_ir(irs["fp32"], irs["int8"], calib=calib)

    pairs = find_pairs(val)
    if val_filter:
        pairs = [p for p in pairs if any(fnmatch.fnmatchcase(p.stem, g) for g in val_filter)]
    evaluations = {}
    for precision_name, xml in irs.items():
        result = evaluate(load_model(xml), pairs, progress=verbose and sys.stderr.isatty(), data=val)
        result.model = "{} {}".format(name, precision_name.upper())
        evaluations[precision_name] = result
    if verbose:
        print(summary_table(list(evaluations.values())))
    keeps = holds_quality(evaluations["int8"].summary, evaluations["fp32"].summary)
    chosen = precision if precision != "auto" else ("int8" if keeps else "fp16")
    folder = Path(zoo) if zoo else PACKAGE_DIR
    record = {
        "name": name, "checkpoint": os.path.basename(checkpoint), "source_sha256": report.source_sha256,
        "validation": {"data": val, "filter": list(val_filter), "images": len(pairs)},
        "rule": "int8 if mean MAE <= fp32 * {} + {} and mean IoU >= fp32 - {}, else fp16".format(
            1 + MAX_MAE_RISE, MAE_SLACK, MAX_IOU_DROP),
        "int8_holds_quality": keeps, "chosen": chosen,
        "summary": {p: e.summary for p, e in evaluations.items()},
        "bin_bytes": {p: Path(x).with_suffix(".bin").stat().st_size for p, x in irs.items()},
        "params": report.params, "flops": report.flops, "input_size": report.input_size,
        "export_parity": {k: {"max_abs_diff": v["max_abs_diff"], "min_iou": v["min_iou"], "limits": v["tolerance"]}
                          for k, v in report.parity.items()},
    }
    compact = work_dir / CHECKPOINT_FILE
    write_compact_checkpoint(checkpoint, str(compact))
    result = evaluate(load_model(str(compact)), pairs, progress=verbose and sys.stderr.isatty(), data=val)
    result.model = "{} checkpoint (int8 weights, PyTorch)".format(name)
    if verbose:
        print(summary_table([evaluations["fp32"], result]))
    record["checkpoint_summary"] = result.summary
    record["checkpoint_bytes"] = compact.stat().st_size
    install(irs[chosen], folder / name, record, checkpoint=str(compact))
    if verbose:
        print("installed {} ({}) as zoo model '{}' in {}".format(os.path.basename(irs[chosen]), chosen.upper(), name,
                                                                 folder / name))
    if work is None:
        shutil.rmtree(str(work_dir), ignore_errors=True)
    return record


def write_compact_checkpoint(checkpoint: str, out: str) -> None:
    """`checkpoint` rewritten with int8 weights per output channel (train.checkpoint.WEIGHT_CODEC), card kept."""
    from edgematte.edge.card import ModelCard
    from edgematte.train.checkpoint import RESERVED, load_checkpoint, save_checkpoint

    model, ckpt = load_checkpoint(checkpoint)
    card = ModelCard.from_dict(ckpt["card"], source=checkpoint) if ckpt.get("card") else None
    extra = {k: v for k, v in ckpt.items() if k not in RESERVED and k != "train"}
    save_checkpoint(out, model, card, extra=extra, compact=True)


def install(xml: str, folder: Path, record: Dict[str, Any], checkpoint: Optional[str] = None) -> None:
    """Copy the IR pair (and the compact checkpoint) into `folder`, then write ship.json; .bin before .xml, each
    atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(xml)
    copies = [(source.with_suffix(".bin"), folder / "model.bin"), (source, folder / MODEL_FILE)]
    if checkpoint is not None:
        copies.insert(0, (Path(checkpoint), folder / CHECKPOINT_FILE))
    for src, dst in copies:
        tmp = folder / (".{}.tmp".format(dst.name))
        shutil.copyfile(str(src), str(tmp))
        os.replace(str(tmp), str(dst))
    write_text(str(folder / SHIP_FILE), json.dumps(record, indent=1, sort_keys=True) + "\n")


__all__ = ["ship", "install", "holds_quality", "write_compact_checkpoint", "SHIP_FILE"]
