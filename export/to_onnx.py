"""torch -> ONNX: export a zoo model's deploy_forward, embed its card, and check it against PyTorch with onnxruntime (and OpenCV DNN)."""
import logging
import warnings
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import onnx
import torch
from torch import nn

from edgematte.edge.card import ONNX_METADATA_KEY, ModelCard
from edgematte.edge.io import atomic_path
from edgematte.edge.save_errors import saving

from .cards import onnx_card
from .parity import ParityError, max_abs_diff

INPUT_NAME = "input"
OUTPUT_NAME = "out"
ORT_TOLERANCE = 1e-4  # max |ORT - PyTorch| on the same normalised input
# torch.onnx.export(dynamo=True): torch's default exporter; on the zoo it gives half the nodes of the deprecated
# TorchScript exporter (no Identity/Shape/Slice chains: resize sizes are constants), and a TorchScript export leaves
# state behind that makes a later dynamo export of MODNet fail in the same process.
EXPORTER = "dynamo"
DEFAULT_OPSET = 18  # the dynamo exporter's native opset; its down-conversion to 17 fails on MODNet


class DeployModule(nn.Module):
    """forward() = model.deploy_forward(): the single deployable output, which is what gets exported."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.deploy_forward(x)


def _export_dynamo(module: nn.Module, sample: torch.Tensor, opset: int, dynamic: bool) -> onnx.ModelProto:
    """torch.export-based exporter (torch's default since 2.9): constant-folded graph, BN folded into convs."""
    shapes = None
    if dynamic:
        dim = torch.export.Dim.DYNAMIC
        shapes = ({0: dim, 2: dim, 3: dim},)
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")  # "torchvision is not installed"
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, (sample,), None, dynamo=True, opset_version=opset,
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        dynamic_shapes=shapes, optimize=True, verbose=False)
    finally:
        registration.setLevel(level)
    return program.model_proto


def _strip_node_metadata(proto: onnx.ModelProto) -> None:
    """Drop the exporter's per-node/per-value debug metadata (stack traces, local paths): not part of the model."""
    graphs = [proto.graph]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)
        for value in list(graph.input) + list(graph.output) + list(graph.value_info):
            del value.metadata_props[:]
        for tensor in graph.initializer:
            del tensor.metadata_props[:]


def set_onnx_card(proto: onnx.ModelProto, card: ModelCard) -> None:
    """Store the card JSON under metadata_props['edgematte.card'] (replacing an older one)."""
    kept = [p for p in proto.metadata_props if p.key != ONNX_METADATA_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key = ONNX_METADATA_KEY
    entry.value = card.to_json()


def op_types(proto: onnx.ModelProto) -> Dict[str, int]:
    """Histogram of node op types in the main graph."""
    counts: Dict[str, int] = {}
    for node in proto.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def sample_input(input_size: Sequence[int], seed: int = 0) -> torch.Tensor:
    """A deterministic normalised-looking input (N(0,1)), batch 1."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, int(input_size[0]), int(input_size[1]), generator=generator)


def run_onnxruntime(path: str, x: np.ndarray) -> np.ndarray:
    """Run the ONNX file on CPU with onnxruntime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, min(torch.get_num_threads(), 4))
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def try_opencv_dnn(path: str, x: np.ndarray, reference: np.ndarray) -> Dict[str, Any]:
    """Whether OpenCV DNN loads and runs the file, and its max |diff| to PyTorch; never raises."""
    import cv2

    result: Dict[str, Any] = {"opencv": cv2.__version__, "loads": False, "runs": False, "max_abs_diff": None,
                              "error": None}
    try:
        net = cv2.dnn.readNetFromONNX(str(path))
        result["loads"] = True
        net.setInput(x)
        out = net.forward()
        result["runs"] = True
        result["max_abs_diff"] = max_abs_diff(np.asarray(out).reshape(reference.shape), reference)
    except Exception as exc:  # noqa: BLE001 - cv2.error and shape errors alike: recorded, not fatal
        lines = [line.strip() for line in str(exc).splitlines() if line.strip() and line.strip() != ">"]
        result["error"] = (lines[-1] if lines else type(exc).__name__)[:300]
    return result


def export_onnx(model: nn.Module, path: str, input_size: Sequence[int], dynamic: bool = False,
                card: Optional[ModelCard] = None, opset: int = DEFAULT_OPSET,
                tolerance: float = ORT_TOLERANCE) -> Dict[str, Any]:
    """Export model.deploy_forward to `path` (atomic), embed the card, check it; returns what was measured.

    Raises ParityError when onnxruntime differs from PyTorch by `tolerance` or more.
    """
    size: List[int] = [int(input_size[0]), int(input_size[1])]
    model = model.eval()
    module = DeployModule(model).eval()
    sample = sample_input(size)
    with torch.no_grad():
        reference = module(sample).detach().float().numpy()
        proto = _export_dynamo(module, sample, opset, dynamic)
    _strip_node_metadata(proto)
    card = onnx_card(model, size, dynamic=dynamic, base=card)
    set_onnx_card(proto, card)
    onnx.checker.check_model(proto, full_check=True)
    with atomic_path(path) as tmp:
        with saving(path, "the ONNX file"):  # a full disk: one line naming the file
            onnx.save_model(proto, tmp)  # one self-contained file (OpenCV DNN cannot read external data)
        onnxruntime_out = run_onnxruntime(tmp, sample.numpy())
        diff = max_abs_diff(onnxruntime_out, reference)
        if not diff < tolerance:
            raise ParityError("{}: onnxruntime differs from PyTorch by {:.3g} (tolerance {:g})".format(
                path, diff, tolerance))
    opencv = try_opencv_dnn(path, sample.numpy(), reference)
    return {
        "path": str(path),
        "exporter": EXPORTER,
        "opset": int(next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)),
        "input_size": size,
        "dynamic": bool(dynamic),
        "ops": op_types(proto),
        "batchnorm_ops": sum(n for op, n in op_types(proto).items() if "BatchNorm" in op),
        "ort_max_abs_diff": diff,
        "opencv_dnn": opencv,
        "card": card,
    }
