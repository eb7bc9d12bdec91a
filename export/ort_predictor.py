"""ONNX Runtime as a backend (entry point `edgematte.backends`): `bench --vs onnxruntime`, bench's CUDA rows and
the `parity` reference, on the CPU or the CUDA execution provider, fed exactly as the edge runtime feeds an IR."""
from typing import Any, List, Tuple, Union

import numpy as np

from edgematte.edge.errors import DeviceError, ModelFileError
from edgematte.edge.runtime import Core, Predictor, onnx_card, from_network_output, to_network_input

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
# FP32 as the reference: no TF32 tensor-core rounding in CUDA convolutions/GEMMs (ORT >= 1.18 knows this option).
CUDA_OPTIONS = {"use_tf32": "0"}


def parse_device(device: str) -> Tuple[str, int]:
    """("CPU", 0) or ("CUDA", index) for "CPU", "CUDA", "CUDA:1"; DeviceError for any other device."""
    name, _, index = str(device).strip().upper().partition(":")
    if name == "CPU" and not index:
        return "CPU", 0
    if name == "CUDA" and (not index or index.isdigit()):
        return "CUDA", int(index or 0)
    raise DeviceError("device {}: ONNX Runtime runs here on CPU or CUDA[:N]".format(device))


def providers_for(device: str, tf32_off: bool = True) -> List[Any]:
    """InferenceSession providers: CPU alone, or CUDA (device_id, TF32 off) then CPU for ops CUDA lacks."""
    kind, index = parse_device(device)
    if kind == "CPU":
        return [CPU_PROVIDER]
    options = dict(CUDA_OPTIONS) if tf32_off else {}
    options["device_id"] = str(index)
    return [(CUDA_PROVIDER, options), CPU_PROVIDER]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "") or type(exc).__name__


def _preload_cuda(ort: Any) -> None:
    """Let onnxruntime-gpu find CUDA/cuDNN from the nvidia-* wheels or PyTorch (onnxruntime >= 1.21); best effort."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception:  # noqa: BLE001 - libraries may come from the system instead; the session check decides
            pass


def create_session(model: Union[str, bytes], device: str = "CPU", threads: int = 0, quiet: bool = False) -> Any:
    """An InferenceSession on `device` that really runs there: DeviceError when the provider is missing, cannot start
    (no GPU, CUDA/cuDNN libraries absent) or ONNX Runtime fell back to the CPU behind our back."""
    import onnxruntime as ort

    kind, _ = parse_device(device)
    wanted = CUDA_PROVIDER if kind == "CUDA" else CPU_PROVIDER
    available = ort.get_available_providers()
    if wanted not in available:
        hint = " (install onnxruntime-gpu instead of onnxruntime)" if kind == "CUDA" else ""
        raise DeviceError("onnxruntime {} has no {} (providers: {}){}".format(
            ort.__version__, wanted, ", ".join(available), hint))
    if kind == "CUDA":
        _preload_cuda(ort)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    if quiet:
        options.log_severity_level = 3  # errors only: a failing probe should not print ORT's warnings
    label = model if isinstance(model, str) else "model"
    try:
        try:
            # enable_fallback=0: a provider that fails raises instead of being silently replaced by the CPU.
            session = ort.InferenceSession(model, options, providers=providers_for(device), enable_fallback=0)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own pybind exception types
            if not (kind == "CUDA" and "use_tf32" in str(exc)):
                raise
            # an onnxruntime older than the use_tf32 option: TF32 stays at its default there
            session = ort.InferenceSession(model, options, providers=providers_for(device, tf32_off=False),
                                           enable_fallback=0)
    except Exception as exc:  # noqa: BLE001
        if kind == "CUDA":
            raise DeviceError("{}: ONNX Runtime cannot start {}: {}".format(label, device, _one_line(exc))) from None
        raise ModelFileError("{}: ONNX Runtime cannot load it: {}".format(label, _one_line(exc))) from None
    if wanted not in session.get_providers():
        raise DeviceError("{}: ONNX Runtime fell back to {} instead of {} (no CUDA GPU visible, or the CUDA/cuDNN "
                          "libraries onnxruntime-gpu {} needs are missing)".format(
                              label, ", ".join(session.get_providers()), wanted, ort.__version__))
    return session


class OrtPredictor(Predictor):
    """An ONNX file run by ONNX Runtime on CPU or CUDA[:N], fed and read back as the edge runtime feeds an IR."""

    def __init__(self, path: str, device: str = "CPU", threads: int = 0) -> None:
        parse_device(device)  # a device ONNX Runtime does not run on fails before the file is read
        self.card = onnx_card(Core().read_model(path), path)
        if self.card is None:
            raise ModelFileError("{}: carries no edgematte model card".format(path))
        self.session = create_session(str(path), device, threads)
        self.name = self.session.get_inputs()[0].name
        self.source, self.device = str(path), device
        self.providers = list(self.session.get_providers())

    def prepare(self, bgr: np.ndarray) -> np.ndarray:
        return to_network_input(bgr, self.card)

    def infer(self, prepared: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.name: prepared})[0]

    def finish(self, raw: np.ndarray, size: Any) -> np.ndarray:
        return from_network_output(raw, self.card, size)

    def predict(self, bgr: np.ndarray) -> np.ndarray:
        return self.finish(self.infer(self.prepare(bgr)), bgr.shape[:2])


def register() -> None:
    """Entry point of `edgematte.backends`: make `--vs onnxruntime` (and bench's CUDA rows for .onnx) available."""
    from edgematte.edge.bench import register_backend

    register_backend("onnxruntime", OrtPredictor)
