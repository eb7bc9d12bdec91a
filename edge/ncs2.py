"""`edgematte check-ncs2`: lint an IR against what the NCS2 (MYRIAD plugin, OpenVINO 2022.3 LTS) can run.

Rules (each finding names the op): static shapes everywhere and batch 1; FP16 weights (MYRIAD computes in FP16;
an FP32 IR is converted on the stick, which hides overflow until it runs there); every op from opset10 or lower
(2022.3's MYRIAD plugin predates later op versions: Interpolate-11, Softmax-8, MaxPool-8, ...); none of the ops
MYRIAD cannot take (transposed convolutions, INT8 FakeQuantize, ops with data-dependent output shapes). Passing
the lint is necessary, not sufficient: only a stick running the IR proves it.
"""
import re
from typing import Any, Dict, List

from ._ov import Core
from .errors import ModelFileError
from .verbs import add_verb

MAX_OPSET = 10
UNSUPPORTED = {
    "ConvolutionBackpropData": "transposed convolution (ConvTranspose) is not supported by MYRIAD",
    "GroupConvolutionBackpropData": "grouped transposed convolution is not supported by MYRIAD",
    "FakeQuantize": "INT8 (FakeQuantize) does not run on MYRIAD; ship FP16 for the stick",
    "NonZero": "data-dependent output shape",
    "NonMaxSuppression": "data-dependent output shape",
    "Loop": "control flow is not supported by MYRIAD",
    "If": "control flow is not supported by MYRIAD",
}
SKIP = ("Parameter", "Result", "Constant")


def op_opset(op: Any) -> int:
    """The opset number of the op's version ("opset11" -> 11); 0 when it is not a numbered opset (extension)."""
    match = re.match(r"opset(\d+)$", str(op.get_type_info().version_id))
    return int(match.group(1)) if match else 0


def lint_model(model: Any) -> List[Dict[str, str]]:
    """Every finding as {"op", "type", "rule", "detail"}; an empty list means the IR passes."""
    problems = []  # type: List[Dict[str, str]]

    def add(op: Any, rule: str, detail: str) -> None:
        problems.append({"op": op.get_friendly_name(), "type": op.get_type_name(), "rule": rule, "detail": detail})

    for port in model.inputs:
        shape = port.get_partial_shape()
        node = port.get_node()
        if not shape.is_static:
            add(node, "static-shape", "input {} has a dynamic shape {}".format(port.get_any_name(), shape))
        elif len(shape) and int(shape.to_shape()[0]) != 1:
            add(node, "batch-1", "input {} has batch {}".format(port.get_any_name(), shape.to_shape()[0]))
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "Constant" and str(op.get_element_type()) in ("<Type: 'float32'>", "f32") and \
                int(op.get_output_size()) and _constant_elements(op) > 64:
            add(op, "fp16-weights", "FP32 weights ({} values): export with --precision fp16".format(
                _constant_elements(op)))
            continue
        if kind in SKIP:
            continue
        if kind in UNSUPPORTED:
            add(op, "unsupported", UNSUPPORTED[kind])
        version = op_opset(op)
        if version == 0:
            add(op, "opset", "op version {} is not a standard opset".format(op.get_type_info().version_id))
        elif version > MAX_OPSET:
            add(op, "opset", "{}-{} is from opset{} (MYRIAD takes opset{} or lower)".format(
                kind, op.get_type_info().version_id, version, MAX_OPSET))
        for output in op.outputs():
            if not output.get_partial_shape().is_static:
                add(op, "static-shape", "output shape {} is dynamic".format(output.get_partial_shape()))
                break
    return problems


def _constant_elements(op: Any) -> int:
    count = 1
    for dim in op.get_output_shape(0):
        count *= int(dim)
    return count


def lint_ir(xml_path: str) -> List[Dict[str, str]]:
    """lint_model on the IR file; ModelFileError when it cannot be read."""
    try:
        model = Core().read_model(str(xml_path))
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeErrors with long texts
        raise ModelFileError("{}: OpenVINO cannot read it ({})".format(
            xml_path, (str(exc).strip().splitlines() or [type(exc).__name__])[0])) from None
    return lint_model(model)


def register(subparsers: Any) -> None:
    """Add the `check-ncs2` verb."""
    import argparse

    p = add_verb(subparsers, "check-ncs2", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="IR", help="IR .xml file")
    p.set_defaults(func=_run)


def _run(args: Any) -> int:
    import sys

    problems = lint_ir(args.model)
    for problem in problems:
        print("{}: {} {} [{}] {}".format(args.model, problem["type"], problem["op"], problem["rule"],
                                         problem["detail"]), file=sys.stderr)
    if problems:
        rules = sorted({p["rule"] for p in problems})
        print("{}: {} finding(s) ({}): not fit for NCS2".format(args.model, len(problems), ", ".join(rules)),
              file=sys.stderr)
        return 1
    print("{}: fit for NCS2 by every rule (static, batch 1, FP16, opset<={}, no unsupported op)".format(
        args.model, MAX_OPSET))
    return 0


__all__ = ["lint_ir", "lint_model", "MAX_OPSET", "UNSUPPORTED", "register"]
