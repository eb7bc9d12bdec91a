"""Per-target rewrites of an OpenVINO model: NCS2 (MYRIAD, OpenVINO 2022.3) takes opset10 ops, static shapes.

`for_ncs2` replaces the newer op versions the ONNX frontend emits by their opset10-or-older equivalents with the
same attributes (the graph is static, so sizes and scales are constants): Interpolate-11 -> Interpolate-4,
Softmax-8 -> Softmax-1, MaxPool-8 (single output used, no dilation) -> MaxPool-1. What it cannot rewrite stays,
and `edgematte.edge.ncs2.lint_model` names it.
"""
from typing import Any, Dict

import numpy as np

from edgematte.edge._ov import ov
from edgematte.edge.ncs2 import op_opset


def _interpolate4(op: Any) -> Any:
    attrs = op.get_attributes()
    data = op.input_value(0)
    in_shape = [int(d) for d in data.get_shape()]
    out_shape = [int(d) for d in op.get_output_shape(0)]
    if op.get_input_size() > 2:
        axes = [int(a) for a in op.input_value(2).get_node().get_vector()]
    else:
        axes = list(range(len(in_shape)))
    axes = [a % len(in_shape) for a in axes]
    sizes = np.array([out_shape[a] for a in axes], dtype=np.int64)
    scales = np.array([out_shape[a] / float(in_shape[a]) for a in axes], dtype=np.float32)
    return ov.opset10.interpolate(data, sizes, scales, mode=attrs["mode"], shape_calculation_mode="sizes",
                                  pads_begin=list(attrs["pads_begin"]), pads_end=list(attrs["pads_end"]),
                                  coordinate_transformation_mode=attrs["coordinate_transformation_mode"],
                                  nearest_mode=attrs["nearest_mode"], antialias=bool(attrs["antialias"]),
                                  cube_coeff=float(attrs["cube_coeff"]), axes=np.array(axes, dtype=np.int64))


def _softmax1(op: Any) -> Any:
    rank = len(op.get_output_shape(0))
    return ov.opset1.softmax(op.input_value(0), int(op.get_attributes()["axis"]) % rank)


def _maxpool1(op: Any) -> Any:
    attrs = op.get_attributes()
    if any(int(d) != 1 for d in attrs.get("dilations", [1])) or op.output(1).get_target_inputs():
        return None
    return ov.opset1.max_pool(op.input_value(0), attrs["strides"], attrs["pads_begin"], attrs["pads_end"],
                              attrs["kernel"], rounding_type=attrs["rounding_type"], auto_pad=attrs["auto_pad"])


REWRITES = {"Interpolate": _interpolate4, "Softmax": _softmax1, "MaxPool": _maxpool1}


def for_ncs2(model: Any) -> Dict[str, int]:
    """Rewrite newer-than-opset10 ops in place; returns how many of each kind were replaced."""
    if not all(port.get_partial_shape().is_static for port in model.inputs):
        raise ValueError("NCS2 needs static input shapes (export without --dynamic)")
    done = {}  # type: Dict[str, int]
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind not in REWRITES or op_opset(op) <= 10:
            continue
        new = REWRITES[kind](op)
        if new is None:
            continue
        new.set_friendly_name(op.get_friendly_name())
        op.output(0).replace(new.output(0))
        done[kind] = done.get(kind, 0) + 1
    model.validate_nodes_and_infer_types()
    return done


__all__ = ["for_ncs2", "REWRITES"]
