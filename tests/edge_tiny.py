"""Tiny torch-free models for the edge tests: OpenVINO IRs built from opset ops, with model cards."""
import hashlib
from pathlib import Path
from typing import Tuple

import numpy as np

from edgematte.edge._ov import ov
from edgematte.edge.card import ModelCard

IR_INPUT = {"dtype": "u8", "layout": "NHWC", "color": "BGR", "normalised": False}
ONNX_INPUT = {"dtype": "f32", "layout": "NCHW", "color": "RGB", "normalised": True}


def expected_prob(value: float) -> float:
    """What the tiny IR predicts for a uniform image of brightness `value`: sigmoid((value - 128) / 16)."""
    return float(1.0 / (1.0 + np.exp(-(value - 128.0) / 16.0)))


def _body(param, task: str):
    """u8 NHWC BGR -> [1,C,H,W]: sigmoid of the scaled channel mean (saliency) or a 3-way softmax (trimap)."""
    op = ov.opset8
    x = op.convert(param, "f32")
    mean = op.reduce_mean(x, np.array([3], dtype=np.int64), True)  # [1,H,W,1]
    mean = op.transpose(mean, np.array([0, 3, 1, 2], dtype=np.int64))  # [1,1,H,W]
    score = op.multiply(op.subtract(mean, np.float32(128.0)), np.float32(1.0 / 16.0))
    if task == "trimap":
        logits = op.concat([op.negative(score), op.multiply(score, np.float32(0.0)), score], 1)
        return op.softmax(logits, 1)
    return op.sigmoid(score)


def build_ir(folder: Path, name: str = "tiny", size: Tuple[int, int] = (64, 48), task: str = "saliency",
             dynamic: bool = False, with_hash: bool = True, with_card: bool = True) -> Path:
    """Save a tiny IR (u8 BGR NHWC input at `size` [H, W]) with its card in rt_info; returns the .xml path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shape = [1, -1, -1, 3] if dynamic else [1, size[0], size[1], 3]
    param = ov.opset8.parameter(ov.PartialShape(shape), ov.Type.u8, name="image")
    model = ov.Model([_body(param, task)], [param], name)
    xml = folder / (name + ".xml")
    card = ModelCard(name=name, task=task, arch="tiny", input_size=list(size), dynamic=dynamic, input=dict(IR_INPUT))
    if with_card:
        card.write_rt_info(model)
    ov.save_model(model, str(xml), compress_to_fp16=False)
    if with_card and with_hash:  # second pass: the card records the sha256 of the .bin it ships with
        card.weights_sha256 = hashlib.sha256(xml.with_suffix(".bin").read_bytes()).hexdigest()
        card.write_rt_info(model)
        ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml


def build_onnx(folder: Path, name: str = "tiny", size: Tuple[int, int] = (32, 40)) -> Path:
    """A tiny ONNX (normalised f32 RGB NCHW in, sigmoid(4 * channel mean) out) with its card in metadata_props."""
    onnx = __import__("pytest").importorskip("onnx")
    from onnx import TensorProto, helper

    h, w = size
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, h, w])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, h, w])
    four = helper.make_tensor("four", TensorProto.FLOAT, [], [4.0])
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1], keepdims=1),
             helper.make_node("Mul", ["m", "four"], ["s"]),
             helper.make_node("Sigmoid", ["s"], ["y"])]
    graph = helper.make_graph(nodes, name, [x], [y], initializer=[four])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    card = ModelCard(name=name, task="saliency", arch="tiny", input_size=[h, w], input=dict(ONNX_INPUT))
    model.metadata_props.add(key="edgematte.card", value=card.to_json())
    path = Path(folder) / (name + ".onnx")
    onnx.save(model, str(path))
    return path


def onnx_expected(bgr_value: Tuple[int, int, int]) -> float:
    """What the tiny ONNX predicts for a uniform BGR colour with the default card normalisation."""
    card = ModelCard(name="x", task="saliency", arch="tiny")
    rgb = np.array(bgr_value[::-1], dtype=np.float64)
    normed = (rgb - np.array(card.normalisation.mean)) / np.array(card.normalisation.std)
    return float(1.0 / (1.0 + np.exp(-4.0 * normed.mean())))
