"""ONNX -> OpenVINO IR: u8 BGR NHWC preprocessing inside (PrePostProcessor), BatchNorm-free check, FP32/FP16, card in rt_info."""
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

from edgematte.edge._ov import Core, Layout, PrePostProcessor, ColorFormat, Type, ov
from edgematte.edge.card import ModelCard, save_ir
from edgematte.edge.errors import ModelFileError

from edgematte.edge.ncs2 import lint_model

from .cards import ir_card
from .targets import for_ncs2


class NCS2UnfitError(ModelFileError):
    """An IR for the NCS2 target still holds what MYRIAD cannot run."""


class BatchNormLeftError(ModelFileError):
    """The saved IR still holds BatchNorm ops (they should have been folded into convolutions/scale-shifts)."""


def add_preprocessing(model: Any, card: ModelCard) -> Any:
    """Make the IR take u8 BGR NHWC pixels: convert to f32, BGR->RGB, subtract mean, divide by std; output f32."""
    ppp = PrePostProcessor(model)
    tensor = ppp.input().tensor()
    tensor.set_element_type(Type.u8)
    tensor.set_layout(Layout("NHWC"))
    tensor.set_color_format(ColorFormat.BGR)
    steps = ppp.input().preprocess()
    steps.convert_element_type(Type.f32)
    steps.convert_color(ColorFormat.RGB)
    steps.mean([float(v) for v in card.normalisation.mean])
    steps.scale([float(v) for v in card.normalisation.std])
    ppp.input().model().set_layout(Layout("NCHW"))
    ppp.output().tensor().set_element_type(Type.f32)
    return ppp.build()


def batchnorm_ops(model: Any) -> int:
    """How many ops of the model have "BatchNorm" in their type name."""
    return sum(1 for op in model.get_ops() if "BatchNorm" in op.get_type_name())


def op_histogram(model: Any) -> Dict[str, int]:
    """Histogram of op types (Constant/Parameter/Result left out)."""
    counts: Dict[str, int] = {}
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind not in ("Constant", "Parameter", "Result"):
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def export_ir(onnx_path: str, xml_path: str, card: ModelCard, precision: str = "fp32",
              target: Optional[str] = None) -> Dict[str, Any]:
    """Convert `onnx_path` to an IR pair at `xml_path` (+ .bin), atomically; returns what was measured.

    target "ncs2": FP16 only, ops rewritten to opset10 (export/targets.py), and the saved IR must pass the NCS2
    lint (edge/ncs2.py) or nothing is written (NCS2UnfitError naming every finding).

    weights_sha256 in the card is the sha256 of the final .bin: the IR is saved once, the .bin hashed, the card set,
    and saved again; the second .bin must be byte-identical (the card lives in the .xml only).
    """
    xml = Path(xml_path)
    if xml.suffix != ".xml":
        raise ModelFileError("{}: an IR path must end in .xml".format(xml_path))
    card = ir_card(card, precision)
    compress = precision == "fp16"
    model = add_preprocessing(ov.convert_model(str(onnx_path)), card)
    rewrites = {}  # type: Dict[str, int]
    if target == "ncs2":
        if precision != "fp16":
            raise ValueError("the ncs2 target is FP16 only")
        rewrites = for_ncs2(model)
        card.notes = (card.notes + "; " if card.notes else "") + "NCS2 target: opset10 ops ({})".format(
            ", ".join("{} x{}".format(k, v) for k, v in sorted(rewrites.items())) or "nothing to rewrite")
    elif target is not None:
        raise ValueError("unknown target {!r} (known: ncs2)".format(target))
    converted_bn = batchnorm_ops(model)
    xml.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix="." + xml.stem + ".", suffix=".tmp", dir=str(xml.parent))
    try:  # staged and checked in a scratch folder: a failed check leaves nothing at the target
        staged = Path(tmp_dir) / xml.name
        card = save_ir(model, str(staged), card, compress_to_fp16=compress)
        saved = Core().read_model(str(staged))  # check what was written, not the in-memory model
        left = batchnorm_ops(saved)
        if left:
            raise BatchNormLeftError("{}: {} BatchNorm op(s) remain in the IR".format(xml_path, left))
        ops = op_histogram(saved)
        if target == "ncs2":
            findings = lint_model(saved)
            if findings:
                raise NCS2UnfitError("{}: not fit for NCS2 after rewriting: {}".format(xml_path, "; ".join(
                    "{} {} ({})".format(f["type"], f["op"], f["detail"]) for f in findings[:5])))
        os.replace(str(staged.with_suffix(".bin")), str(xml.with_suffix(".bin")))  # .bin first, .xml last
        os.replace(str(staged), str(xml))
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return {
        "path": str(xml),
        "precision": precision,
        "batchnorm_ops": left,
        "batchnorm_ops_after_convert": converted_bn,
        "ops": ops,
        "xml_bytes": xml.stat().st_size,
        "bin_bytes": xml.with_suffix(".bin").stat().st_size,
        "weights_sha256": card.weights_sha256,
        "target": target,
        "rewrites": rewrites,
        "card": card,
    }


def read_ir_card(xml_path: str) -> ModelCard:
    """The card stored in an IR's rt_info (ModelFileError when absent)."""
    if not Path(xml_path).is_file():
        raise ModelFileError("{}: no such IR file".format(xml_path))
    card = ModelCard.read_rt_info(Core().read_model(str(xml_path)), str(xml_path))
    if card is None:
        raise ModelFileError("{}: the IR carries no edgematte model card".format(xml_path))
    return card
