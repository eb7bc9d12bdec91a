"""ONNX Runtime as a bench backend (`edgematte bench X.onnx --vs onnxruntime`), registered by entry point."""
from typing import Any

import numpy as np

from edgematte.edge.errors import DeviceError, ModelFileError
from edgematte.edge.runtime import Core, Predictor, _onnx_card


class OrtPredictor(Predictor):
    """An ONNX file run by ONNX Runtime (CPU, or CUDA execution provider), fed as its card says."""

    def __init__(self, path: str, device: str = "CPU", threads: int = 0) -> None:
        import onnxruntime as ort

        providers = {"CPU": ["CPUExecutionProvider"], "CUDA": ["CUDAExecutionProvider"]}.get(device.upper())
        if providers is None or providers[0] not in ort.get_available_providers():
            raise DeviceError("device {}: not available to ONNX Runtime here (providers: {})".format(
                device, ", ".join(ort.get_available_providers())))
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        self.card = _onnx_card(Core().read_model(path), path)
        if self.card is None:
            raise ModelFileError("{}: carries no edgematte model card".format(path))
        self.session = ort.InferenceSession(path, options, providers=providers)
        self.name = self.session.get_inputs()[0].name
        self.source, self.device = path, device

    def prepare(self, bgr: np.ndarray) -> np.ndarray:
        from edgematte.edge.runtime import to_network_input

        return to_network_input(bgr, self.card)

    def infer(self, prepared: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.name: prepared})[0]

    def finish(self, raw: np.ndarray, size: Any) -> np.ndarray:
        from edgematte.edge.runtime import from_network_output

        return from_network_output(raw, self.card, size)

    def predict(self, bgr: np.ndarray) -> np.ndarray:
        return self.finish(self.infer(self.prepare(bgr)), bgr.shape[:2])


def register() -> None:
    """Entry point of `edgematte.backends`: make `--vs onnxruntime` available."""
    from edgematte.edge.bench import register_backend

    register_backend("onnxruntime", OrtPredictor)
