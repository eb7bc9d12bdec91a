"""export_model: a kit checkpoint or a zoo name -> ONNX + FP32/FP16 IR with parity checks and export_report.json."""
import json
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import torch
from torch import nn

from edgematte.edge.card import ModelCard, sha256_file
from edgematte.edge.errors import EdgematteError, InputError
from edgematte.edge.io import write_text
from edgematte.edge.outputs import check_replaceable, owned_folder
from edgematte.edge.save_errors import saving, staged_in

from . import parity
from .cards import PRECISIONS, tool_versions
from .to_ir import export_ir
from .to_onnx import DEFAULT_OPSET, export_onnx

FORMATS = ("onnx", "ir")
REPORT_NAME = "export_report.json"
UNTRAINED_SEED = 0
DEFAULT_STEM = "model"  # files are model.onnx, model_fp32.xml, ... unless a name is given
FAILED_TAG = "parity-failed"  # an IR that missed its parity check is kept as <stem>_<precision>.parity-failed.xml
# parity check -> the IRs it vouches for (ONNX vs PyTorch is checked while exporting the ONNX file, and fatal)
JUDGES = {"onnx_vs_ir_fp32": ("fp32",), "ir_fp16_vs_fp32": ("fp16",), "ir_ncs2_vs_fp32": ("ncs2",),
          "torch_fp16_activations": ("fp16", "ncs2")}
FP16_CHECKS = ("ir_fp16_vs_fp32", "ir_ncs2_vs_fp32", "torch_fp16_activations")
_STEM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def onnx_name(stem: str = DEFAULT_STEM) -> str:
    """File name of the exported ONNX file."""
    return stem + ".onnx"


def ir_name(stem: str = DEFAULT_STEM, precision: str = "fp32") -> str:
    """File name of an exported IR: <stem>_<precision>.xml (precision fp32, fp16, ncs2)."""
    return "{}_{}.xml".format(stem, precision)


def failed_name(xml_name: str) -> str:
    """Where an IR that missed parity is kept: model_fp16.xml -> model_fp16.parity-failed.xml."""
    return "{}.{}.xml".format(xml_name[: -len(".xml")], FAILED_TAG)


def pending_name(xml_name: str) -> str:
    """Where an IR waits for its parity verdict (hidden, like every temporary name of the kit)."""
    return ".{}.pending.xml".format(xml_name[: -len(".xml")])


@dataclass
class ExportReport:
    """What one export wrote and measured; JSON round-trip via to_dict()/from_dict()."""

    name: str
    source: str
    arch: str
    task: str
    input_size: List[int]
    dynamic: bool
    untrained: bool
    params: int
    flops: int
    source_sha256: Optional[str] = None
    stem: str = DEFAULT_STEM  # file names: <stem>.onnx, <stem>_fp32.xml, ...
    exporter: str = "dynamo"
    opset: int = DEFAULT_OPSET
    files: Dict[str, int] = field(default_factory=dict)  # file name -> bytes
    onnx: Dict[str, Any] = field(default_factory=dict)  # ort_max_abs_diff, opencv_dnn, batchnorm_ops, ...
    ir: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # precision -> batchnorm_ops, weights_sha256, ...
    parity: Dict[str, Any] = field(default_factory=dict)  # check name -> compare() result
    parity_images: str = ""
    tools: Dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    ok: bool = True
    failed: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # IR precision -> file, checks, reason

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "ExportReport":
        """Inverse of to_dict()."""
        return cls(**data)

    def ir_file(self, precision: str) -> str:
        """File name of the IR of `precision` as written (the parity-failed name when it missed its check)."""
        if precision in self.failed:
            return self.failed[precision]["file"]
        return ir_name(self.stem, precision)

    def summary(self) -> str:
        """A few human lines: sizes, cost, parity."""
        lines = ["{} ({}, {}) at {}x{}{}: {:.2f} M params, {:.2f} GFLOPs{}".format(
            self.name, self.arch, self.task, self.input_size[0], self.input_size[1],
            " (dynamic)" if self.dynamic else "", self.params / 1e6, self.flops / 1e9,
            ", untrained" if self.untrained else "")]
        for fname, size in sorted(self.files.items()):
            lines.append("  {:<28} {:>10.2f} MB".format(fname, size / 1e6))
        if self.onnx:
            cv = self.onnx.get("opencv_dnn", {})
            lines.append("  onnxruntime vs PyTorch: max |diff| {:.2e}; OpenCV DNN: {}".format(
                self.onnx["ort_max_abs_diff"],
                "max |diff| {:.2e}".format(cv["max_abs_diff"]) if cv.get("runs") else "cannot run it"))
        for precision, info in sorted(self.ir.items()):
            lines.append("  IR {}: {} BatchNorm op(s)".format(precision.upper(), info["batchnorm_ops"]))
        for check, result in self.parity.items():
            lines.append("  {:<22} max |diff| {:.2e}, min IoU@0.5 {:.4f} over {} image(s): {}".format(
                check, result["max_abs_diff"], result["min_iou"], result["images"],
                "ok" if result["ok"] else "FAILED"))
        for precision, info in sorted(self.failed.items()):
            lines.append("  {} kept as {}: {}".format(ir_name(self.stem, precision), info["file"], info["reason"]))
        return "\n".join(lines)


def _parse_list(values: Sequence[str], known: Sequence[str], what: str) -> Tuple[str, ...]:
    """Lower-cased, de-duplicated values, all in `known` (InputError otherwise)."""
    out: List[str] = []
    for value in values:
        value = str(value).strip().lower()
        if value not in known:
            raise InputError("unknown {} {!r} (expected {})".format(what, value, ", ".join(known)))
        if value not in out:
            out.append(value)
    if not out:
        raise InputError("no {} given (expected some of {})".format(what, ", ".join(known)))
    return tuple(out)


def load_source(source: str, untrained: bool = False, seed: int = UNTRAINED_SEED
                ) -> Tuple[nn.Module, Optional[ModelCard], Optional[str], str]:
    """(model, card or None, source sha256 or None, name) from a kit checkpoint, or a zoo name when `untrained`."""
    from edgematte.train.models import create_model, list_models

    if source is None or not str(source).strip():
        raise InputError("the checkpoint path is empty: pass a kit checkpoint (.pt), or a zoo name with --untrained")
    path = Path(str(source))
    if path.is_dir():
        raise InputError("{}: is a folder, not a checkpoint file".format(source))
    if untrained:
        torch.manual_seed(seed)
        model = create_model(str(source))  # unknown names raise ModelConfigError (an EdgematteError)
        return model.eval(), None, None, str(source)
    if not path.is_file():
        if str(source) in list_models():
            raise InputError("{}: a zoo name has no trained weights here; pass a checkpoint, or --untrained for a "
                             "randomly initialised {}".format(source, source))
        raise InputError("{}: no such checkpoint".format(source))
    from edgematte.train.checkpoint import load_checkpoint

    model, ckpt = load_checkpoint(str(path))
    card = ModelCard.from_dict(ckpt["card"], str(path)) if ckpt.get("card") else None
    name = card.name if card is not None else str(getattr(model, "arch", path.stem))
    return model.eval(), card, sha256_file(str(path)), name


def export_model(source: str, out_dir: str, formats: Sequence[str] = FORMATS, precisions: Sequence[str] = PRECISIONS,
                 size: Optional[Sequence[int]] = None, dynamic: bool = False, untrained: bool = False,
                 images: Optional[str] = None, image_count: int = 8, opset: int = DEFAULT_OPSET,
                 torch_fp16: str = "emulate", target: Optional[str] = None, verbose: bool = False,
                 fp16_max_diff: Optional[float] = None, name: Optional[str] = None,
                 strict: bool = True) -> ExportReport:
    """Export `source` to out_dir/model.onnx and model_fp32/_fp16.xml/.bin, check parity, write export_report.json.

    `images`: folder of parity images, or "synthetic" (default ../shared/data/duts-te-val/images when present,
    else synthetic ones). `torch_fp16`: "emulate" (FP16 rounding of weights and every op output, FP32 speed) or
    "half" (model.half(), real FP16 CPU kernels, 15-30x slower). `fp16_max_diff`: the FP16 checks' max |diff|
    limit (default 0.02; a model whose sigmoid edges are steep may need a little more, the IoU limit still holds).
    `target` "ncs2" also writes model_ncs2.xml: FP16, static, opset10 ops, checked by the NCS2 lint.
    `name`: the file stem instead of "model" (the model card keeps its own name).
    An IR that misses a parity check is renamed to <stem>_<precision>.parity-failed.xml/.bin and listed in
    report.failed; then, after writing the report, ParityError names it, by how much it missed and how to proceed
    (`strict`), or the report is returned with ok False (not `strict`).
    """
    fp16_max_diff = parity.FP16_MAX_ABS_DIFF if fp16_max_diff is None else float(fp16_max_diff)
    if not fp16_max_diff > 0:
        raise InputError("--fp16-max-diff must be positive, got {}".format(fp16_max_diff))
    if target is not None and target != "ncs2":
        raise InputError("unknown --target {!r} (known: ncs2)".format(target))
    if target == "ncs2" and dynamic:
        raise InputError("--target ncs2 needs static shapes: drop --dynamic")
    stem = check_stem(DEFAULT_STEM if name is None else name)
    from edgematte.train.models.stats import model_stats

    started = time.time()
    formats = _parse_list(formats, FORMATS, "format")
    precisions = _parse_list(precisions, PRECISIONS, "precision")
    out = Path(out_dir)
    claimed = claimed_names(stem, precisions if "ir" in formats else (), target)
    check_replaceable(out, "-o", keep_foreign=True, claimed=claimed, legacy=report_listing)  # before any work
    model, base_card, source_sha, model_name = load_source(source, untrained)
    input_size = [int(v) for v in (size if size else model.config.input_size)]
    if len(input_size) != 2 or min(input_size) < 8:
        raise InputError("--size needs two sides of at least 8 pixels, got {}".format(input_size))
    if base_card is not None:
        base_card.source_sha256 = source_sha
    stats = model_stats(model, input_size)
    report = ExportReport(name=model_name, source=str(source), arch=str(model.arch), task=str(model.task),
                          input_size=input_size, dynamic=bool(dynamic), untrained=bool(untrained),
                          params=int(stats["params"]), flops=int(stats["flops"]), source_sha256=source_sha,
                          stem=stem, tools=tool_versions())

    # the whole set (ONNX, IRs, report) is built in a hidden folder beside `out` and swapped in at once
    with owned_folder(out, "export", "-o", keep_foreign=True, claimed=claimed, legacy=report_listing) as stage:
        scratch = None if "onnx" in formats else tempfile.mkdtemp(prefix="edgematte-export-")
        try:
            with staged_in(stage, out):  # a full disk names the file under -o, not the hidden stage
                _export_files(report, model, base_card, stage, Path(scratch) if scratch else stage, formats,
                              precisions, input_size, dynamic, untrained, source_sha, images, image_count, opset,
                              torch_fp16, target, verbose, fp16_max_diff)
        finally:
            if scratch:  # the ONNX file was only the way to the IR
                shutil.rmtree(scratch, ignore_errors=True)
        report.seconds = round(time.time() - started, 2)
        report.ok = all(result["ok"] for result in report.parity.values())
        write_text(str(stage / REPORT_NAME), json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
    _say(verbose, report.summary())
    if strict and not report.ok:
        raise parity.ParityError(failure_message(report, str(out / REPORT_NAME)))
    return report


def claimed_names(stem: str, precisions: Sequence[str], target: Optional[str] = None) -> List[str]:
    """Every file name an export of `stem` may write (a file of someone else's at one of them stops it)."""
    names = [onnx_name(stem), REPORT_NAME]
    for precision in list(precisions) + (["ncs2"] if target == "ncs2" else []):
        for xml in (ir_name(stem, precision), failed_name(ir_name(stem, precision))):
            names += [xml, xml[: -len(".xml")] + ".bin"]
    return names


def report_listing(folder: Path) -> Optional[Set[str]]:
    """The files an export made before manifests lists in its export_report.json (same sizes), and the report."""
    try:
        files = json.loads((folder / REPORT_NAME).read_text())["files"]
        listed = {REPORT_NAME} | {str(name) for name, size in files.items()
                                  if os.path.basename(str(name)) == str(name) and (folder / str(name)).is_file()
                                  and (folder / str(name)).stat().st_size == int(size)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return listed


def check_stem(stem: str) -> str:
    """A file stem for the exported files (letters, digits, . _ -; no folder); InputError otherwise."""
    stem = str(stem)
    if not _STEM_RE.match(stem) or stem.endswith("." + FAILED_TAG):
        raise InputError("--name {!r}: a file stem of letters, digits, '.', '_' or '-' (no folders), "
                         "e.g. sod".format(stem))
    return stem


def describe(result: Dict[str, Any]) -> str:
    """How a comparison stands against its limits, e.g. "max |diff| 0.0231, 0.0031 over the limit 0.02; ..."."""
    tol = result["tolerance"]
    diff, iou = result["max_abs_diff"], result["min_iou"]
    if not math.isfinite(diff):
        first = "non-finite outputs (FP16 overflow)"
    elif diff > tol["max_abs_diff"]:
        first = "max |diff| {:.4g}, {:.2g} over the limit {:g}".format(diff, diff - tol["max_abs_diff"],
                                                                      tol["max_abs_diff"])
    else:
        first = "max |diff| {:.4g} (limit {:g})".format(diff, tol["max_abs_diff"])
    if iou < tol["min_iou"]:
        second = "min IoU@0.5 {:.4f}, {:.2g} under the limit {:g}".format(iou, tol["min_iou"] - iou, tol["min_iou"])
    else:
        second = "min IoU@0.5 {:.4f} (limit {:g})".format(iou, tol["min_iou"])
    return "{}; {} over {} image(s)".format(first, second, result["images"])


def suggested_fp16_limit(report: ExportReport) -> Optional[float]:
    """The next 0.01 above the failed FP16 checks' max |diff|, or None when a larger limit would not help (IoU or
    overflow)."""
    failed = [report.parity[k] for k in FP16_CHECKS if k in report.parity and not report.parity[k]["ok"]]
    if not failed or any(not math.isfinite(r["max_abs_diff"]) or r["min_iou"] < r["tolerance"]["min_iou"]
                         for r in failed):
        return None
    return math.ceil(max(r["max_abs_diff"] for r in failed) * 100 + 1e-9) / 100


def failure_message(report: ExportReport, report_path: str) -> str:
    """One line: which file missed which check by how much, where it was kept, what passed, how to go on."""
    missed = ["{} failed {} parity, kept as {} ({})".format(
        ir_name(report.stem, precision), "FP16" if precision in ("fp16", "ncs2") else "ONNX-vs-IR", info["file"],
        info["reason"]) for precision, info in sorted(report.failed.items())]
    passed = sorted(f for f in report.files if FAILED_TAG not in f and not f.endswith(".bin"))
    hints = []
    limit = suggested_fp16_limit(report)
    if limit is not None:
        hints.append("accept it with --fp16-max-diff {:g}".format(limit))
    if "fp16" in report.failed:
        hints.append("leave FP16 out with --precision fp32")
    if "ncs2" in report.failed:
        hints.append("drop --target ncs2")
    if "fp32" in report.failed:
        hints.append("keep the ONNX file only with --format onnx")
    return "{}; {}; {} (report: {})".format(
        "; ".join(missed) or "parity failed", "passed: " + ", ".join(passed) if passed else "no file passed",
        ", or ".join(hints) or "see the report", report_path)


def _export_files(report: ExportReport, model: nn.Module, base_card: Optional[ModelCard], out: Path, onnx_dir: Path,
                  formats: Sequence[str], precisions: Sequence[str], input_size: List[int], dynamic: bool,
                  untrained: bool, source_sha: Optional[str], images: Optional[str], image_count: int, opset: int,
                  torch_fp16: str, target: Optional[str], verbose: bool,
                  fp16_max_diff: float = parity.FP16_MAX_ABS_DIFF) -> None:
    """Write the ONNX file into onnx_dir and the IRs into out; fill report.onnx/.ir/.parity/.files/.failed."""
    stem = report.stem
    onnx_path = onnx_dir / onnx_name(stem)
    info = export_onnx(model, str(onnx_path), input_size, dynamic=dynamic, card=base_card, opset=opset)
    card: ModelCard = info.pop("card")
    if source_sha is None and untrained:
        card.notes = (card.notes + " " if card.notes else "") + "untrained: random init (torch seed {})".format(
            UNTRAINED_SEED)
    report.exporter, report.opset = info["exporter"], info["opset"]
    report.onnx = {k: v for k, v in info.items() if k not in ("path",)}
    _say(verbose, "onnx  {} (onnxruntime max |diff| {:.2e})".format(onnx_path.name, info["ort_max_abs_diff"]))

    xml_paths: Dict[str, Path] = {}
    if "ir" in formats:
        for precision in precisions:  # each IR waits under a hidden name until its parity checks are done
            xml = out / pending_name(ir_name(stem, precision))
            with saving(out / ir_name(stem, precision), "the IR"):  # a full disk names the file asked for
                ir = export_ir(str(onnx_path), str(xml), card, precision)
            ir.pop("card")
            report.ir[precision] = {k: v for k, v in ir.items() if k != "path"}
            xml_paths[precision] = xml
            _say(verbose, "ir    {} ({} BatchNorm ops)".format(ir_name(stem, precision), ir["batchnorm_ops"]))
        if target == "ncs2":
            xml = out / pending_name(ir_name(stem, "ncs2"))
            with saving(out / ir_name(stem, "ncs2"), "the IR"):
                ir = export_ir(str(onnx_path), str(xml), card, "fp16", target="ncs2")
            ir.pop("card")
            report.ir["ncs2"] = {k: v for k, v in ir.items() if k != "path"}
            xml_paths["ncs2"] = xml
            _say(verbose, "ir    {} (NCS2: opset10 rewrites {}, lint passed)".format(ir_name(stem, "ncs2"),
                                                                                      ir["rewrites"]))
        _check_parity(report, model, card, onnx_path, xml_paths, images, image_count, precisions, torch_fp16,
                      fp16_max_diff)
        _settle(report, out, xml_paths)

    written = ([onnx_path] if "onnx" in formats else []) + [
        p for xml in xml_paths.values() for p in (xml, xml.with_suffix(".bin"))]
    report.files = {p.name: p.stat().st_size for p in written}


def _remove_pair(xml: Path) -> None:
    """Delete an IR pair if present (.xml first: a lone .bin is no IR)."""
    for path in (xml, xml.with_suffix(".bin")):
        if path.exists():
            path.unlink()


def _move_pair(xml: Path, target: Path) -> None:
    """Rename an IR pair onto target (.bin first, .xml last: the .xml landing is the commit)."""
    os.replace(str(xml.with_suffix(".bin")), str(target.with_suffix(".bin")))
    os.replace(str(xml), str(target))


def _failed_checks(report: ExportReport, xml_paths: Dict[str, Path]) -> None:
    """Fill report.failed: every IR a failed check vouches for, with the checks and by how much they missed."""
    for check, result in report.parity.items():
        for precision in JUDGES.get(check, ()):
            if result["ok"] or precision not in xml_paths:
                continue
            entry = report.failed.setdefault(precision, {"checks": [], "reason": ""})
            entry["checks"].append(check)
            entry["reason"] = "; ".join(filter(None, [entry["reason"], "{}: {}".format(check, describe(result))]))


def _settle(report: ExportReport, out: Path, xml_paths: Dict[str, Path]) -> None:
    """Move each pending IR to its name, or to its parity-failed name (an earlier run's files of that precision
    under the other name go); xml_paths then points at the final files."""
    _failed_checks(report, xml_paths)
    for precision, pending in list(xml_paths.items()):
        final = out / ir_name(report.stem, precision)
        failed = out / failed_name(final.name)
        if precision in report.failed:
            _remove_pair(final)  # the passing name never points at an IR this run disowns
            _move_pair(pending, failed)
            report.failed[precision]["file"] = failed.name
            xml_paths[precision] = failed
        else:
            _remove_pair(failed)
            _move_pair(pending, final)
            xml_paths[precision] = final


def _check_parity(report: ExportReport, model: nn.Module, card: ModelCard, onnx_path: Path,
                  xml_paths: Dict[str, Path], images: Optional[str], image_count: int,
                  precisions: Sequence[str], torch_fp16: str,
                  fp16_max_diff: float = parity.FP16_MAX_ABS_DIFF) -> None:
    """Fill report.parity: ONNX vs FP32 IR, FP16 IR vs FP32 IR (or vs ONNX), PyTorch FP32 vs FP16 activations."""
    pictures, where = parity.parity_images(image_count, images)
    report.parity_images = where
    fp32 = parity.ir_runner(str(xml_paths["fp32"])) if "fp32" in xml_paths else None
    if fp32 is not None:
        report.parity["onnx_vs_ir_fp32"] = parity.compare(
            parity.onnxruntime_runner(str(onnx_path)), fp32, pictures, parity.ONNX_IR_MAX_ABS_DIFF,
            parity.ONNX_IR_MIN_IOU, card.task)
    if "fp16" in xml_paths:
        reference = fp32 if fp32 is not None else parity.onnxruntime_runner(str(onnx_path))
        report.parity["ir_fp16_vs_fp32"] = parity.compare(reference, parity.ir_runner(str(xml_paths["fp16"])),
                                                          pictures, fp16_max_diff, parity.FP16_MIN_IOU, card.task)
    if "ncs2" in xml_paths:  # same FP16 limits: the opset10 rewrites must not change the result
        reference = fp32 if fp32 is not None else parity.onnxruntime_runner(str(onnx_path))
        report.parity["ir_ncs2_vs_fp32"] = parity.compare(reference, parity.ir_runner(str(xml_paths["ncs2"])),
                                                          pictures, fp16_max_diff, parity.FP16_MIN_IOU, card.task)
    if "fp16" in precisions or "ncs2" in xml_paths:
        report.parity["torch_fp16_activations"] = parity.torch_fp16_parity(model, card, pictures, fp16_max_diff,
                                                                           mode=torch_fp16)


def _say(verbose: bool, text: str) -> None:
    """Print `text` when verbose."""
    if verbose:
        print(text, flush=True)


def read_report(path: str) -> ExportReport:
    """Load an export_report.json."""
    try:
        with open(str(path), "r", encoding="utf-8") as handle:
            return ExportReport.from_dict(json.load(handle))
    except (OSError, ValueError, TypeError) as exc:
        raise EdgematteError("{}: not a readable export report ({})".format(path, exc)) from None
