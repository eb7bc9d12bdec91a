"""Run a foreign segmentation model (ONNX, TFLite, IR) through OpenVINO, fed by a JSON preprocessing spec."""
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np

from ._ov import Core, version, with_exact_precision
from .card import ModelCard, Normalisation, sha256_file
from .errors import DeviceError, InputError, ModelFileError
from .io import write_text
from .runtime import Predictor, check_device, round_robin

SPEC_FORMAT = 1
SPECS_DIR = Path(__file__).resolve().parent / "specs"  # the shipped specs (package data)
LAYOUTS = ("NCHW", "NHWC")
COLORS = ("RGB", "BGR")
ACTIVATIONS = ("none", "sigmoid", "softmax")
MAX_SPEC_BYTES = 1 << 20  # shipped specs are under 1 KiB
PathLike = Union[str, "os.PathLike"]


@dataclass
class PreprocSpec:
    """How to feed a foreign model and read its output: x = (pixel[color] - mean) / std * scale, pixels 0..255.

    The whole image is stretched (bilinear, no letterbox) to `input_size` [H, W]; the output channel `channel`
    after `activation` (softmax over the channel axis, or sigmoid) is the foreground probability, resized back
    bilinearly. `mean`/`std` are in the spec's `color` order.
    """

    input_size: List[int]
    layout: str = "NCHW"
    color: str = "RGB"
    mean: List[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: List[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    scale: float = 1.0
    activation: str = "none"
    channel: int = 0
    output_layout: str = "NCHW"
    input_name: Optional[str] = None
    output_name: Optional[str] = None
    name: str = ""
    notes: str = ""
    format: int = SPEC_FORMAT

    def __post_init__(self) -> None:
        size = list(self.input_size) if isinstance(self.input_size, (list, tuple)) else []
        if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
            raise ValueError("input_size must be [H, W] with two positive integers, got {!r}".format(self.input_size))
        self.input_size = size
        self.layout, self.output_layout = str(self.layout).upper(), str(self.output_layout).upper()
        self.color, self.activation = str(self.color).upper(), str(self.activation).lower()
        for key, value, allowed in (("layout", self.layout, LAYOUTS), ("output_layout", self.output_layout, LAYOUTS),
                                    ("color", self.color, COLORS), ("activation", self.activation, ACTIVATIONS)):
            if value not in allowed:
                raise ValueError("{} must be one of {}, got {!r}".format(key, "|".join(allowed), value))
        self.mean, self.std = _triple("mean", self.mean), _triple("std", self.std)
        if any(v == 0 for v in self.std):
            raise ValueError("std must not contain 0")
        if not isinstance(self.scale, (int, float)) or isinstance(self.scale, bool) or self.scale == 0:
            raise ValueError("scale must be a non-zero number, got {!r}".format(self.scale))
        self.scale = float(self.scale)
        if not isinstance(self.channel, int) or isinstance(self.channel, bool) or self.channel < 0:
            raise ValueError("channel must be a non-negative integer, got {!r}".format(self.channel))
        if self.format != SPEC_FORMAT:
            raise ValueError("unsupported spec format {!r} (this version reads {})".format(self.format, SPEC_FORMAT))

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)

    def to_json(self) -> str:
        """JSON text of the spec: one key a line, field order kept."""
        items = ["  {}: {}".format(json.dumps(k), json.dumps(v)) for k, v in self.to_dict().items()]
        return "{\n" + ",\n".join(items) + "\n}\n"

    @classmethod
    def from_dict(cls, data: Any, source: str = "preprocessing spec") -> "PreprocSpec":
        """Build a spec from a dict; a one-line ModelFileError naming `source` when it is malformed."""
        if not isinstance(data, dict):
            raise ModelFileError("{}: a preprocessing spec must be a JSON object".format(source))
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ModelFileError("{}: unknown spec key(s) {} (known: {})".format(source, ", ".join(unknown),
                                                                                 ", ".join(known)))
        if "input_size" not in data:
            raise ModelFileError("{}: the spec lacks input_size [H, W]".format(source))
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise ModelFileError("{}: {}".format(source, exc)) from None

    @classmethod
    def from_json(cls, text: str, source: str = "preprocessing spec") -> "PreprocSpec":
        """Parse a spec from JSON text."""
        try:
            data = json.loads(text)
        except RecursionError:
            raise ModelFileError("{}: the spec is nested too deeply to be a preprocessing spec".format(source)) from None
        except ValueError as exc:
            raise ModelFileError("{}: not valid JSON ({})".format(source, exc)) from None
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path: PathLike) -> "PreprocSpec":
        """Read a spec file, at most MAX_SPEC_BYTES of it (a spec is a few hundred bytes; /dev/zero is not one)."""
        try:
            with open(str(path), "rb") as handle:
                raw = handle.read(MAX_SPEC_BYTES + 1)
            if len(raw) > MAX_SPEC_BYTES:
                raise ModelFileError("{}: more than {} bytes, not a preprocessing spec".format(path, MAX_SPEC_BYTES))
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelFileError("{}: cannot read the spec ({})".format(path, getattr(exc, "strerror", None) or exc)) from None
        return cls.from_json(text, str(path))

    def save(self, path: PathLike) -> None:
        """Write the spec as JSON, atomically."""
        write_text(path, self.to_json())

    # -- numpy pre/post-processing --------------------------------------------------------------
    def preprocess(self, bgr: np.ndarray) -> np.ndarray:
        """The network input for one BGR uint8 image: stretched, colour-ordered, normalised, batch 1, float32."""
        h, w = self.input_size
        pixels = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.color == "RGB":
            pixels = pixels[..., ::-1]
        x = (pixels.astype(np.float32) - np.float32(self.mean)) * (np.float32(self.scale) / np.float32(self.std))
        if self.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x[None], dtype=np.float32)

    def postprocess(self, output: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
        """Foreground probability HxW float32 in [0,1] at `size` (H, W) from the raw network output (batch 1)."""
        out = np.asarray(output, dtype=np.float32)
        if out.ndim == 4:
            out = out[0] if self.output_layout == "NCHW" else out[0].transpose(2, 0, 1)
        elif out.ndim == 3:  # [N, H, W]: one channel
            out = out[:1]
        elif out.ndim == 2:
            out = out[None]
        else:
            raise ModelFileError("foreign model: cannot read an output of shape {}".format(list(np.shape(output))))
        if self.channel >= out.shape[0]:
            raise ModelFileError("foreign model: spec channel {} but the output has {} channel(s)".format(
                self.channel, out.shape[0]))
        if self.activation == "softmax":
            shifted = np.exp(out - out.max(axis=0, keepdims=True))
            prob = shifted[self.channel] / shifted.sum(axis=0)
        elif self.activation == "sigmoid":
            prob = 0.5 * (1.0 + np.tanh(0.5 * out[self.channel]))
        else:
            prob = out[self.channel]
        h, w = size
        prob = cv2.resize(np.ascontiguousarray(prob, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(prob, 0.0, 1.0).astype(np.float32)

    def input_shape(self) -> List[int]:
        """The batch-1 input shape the spec feeds."""
        h, w = self.input_size
        return [1, 3, h, w] if self.layout == "NCHW" else [1, h, w, 3]


def _triple(name: str, value: Any) -> List[float]:
    """A per-channel triple from one number or three (a single value is broadcast)."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(values) == 1:
        values = values * 3
    if len(values) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError("{} must be a number or three numbers, got {!r}".format(name, value))
    return [float(v) for v in values]


# -- shipped specs ------------------------------------------------------------------------------
def shipped_specs() -> List[str]:
    """Names of the specs shipped in edgematte/edge/specs/."""
    return sorted(p.stem for p in SPECS_DIR.glob("*.json"))


def load_spec(path_or_name: PathLike) -> PreprocSpec:
    """A spec from a JSON file path, or by the name of a shipped spec (e.g. "mediapipe_selfie")."""
    path = Path(path_or_name)
    if path.is_file():
        return PreprocSpec.load(path)
    shipped = SPECS_DIR / (str(path_or_name) + ".json")
    if path.suffix == "" and shipped.is_file():
        return PreprocSpec.load(shipped)
    raise ModelFileError("{}: no such spec file, and no shipped spec of that name (shipped: {})".format(
        path_or_name, ", ".join(shipped_specs()) or "none"))


# -- the predictor ------------------------------------------------------------------------------
class ForeignPredictor(Predictor):
    """A Predictor (card, predict, predict_many) over any model OpenVINO reads: .xml IR, .onnx, .tflite."""

    def __init__(self, path: PathLike, spec: PreprocSpec, device: str = "CPU",
                 config: Optional[Dict[str, Any]] = None, threads: int = 0, core: Any = None) -> None:
        self.path = Path(path)
        self.spec = spec
        if not self.path.is_file():
            raise ModelFileError("{}: no such model file".format(self.path))
        core = core or Core()
        device = check_device(core, device)
        try:
            model = core.read_model(str(self.path))
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses of many kinds
            raise ModelFileError("{}: OpenVINO cannot read this model ({})".format(
                self.path, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)) from None
        self._input_name = self._pick_input(model)
        self._fit_input_shape(model)
        self._output_index = self._pick_output(model)
        # string values: OpenVINO 2022.3 takes Dict[str, str], current versions parse strings too
        compile_config = {str(k): str(v) for k, v in (config or {}).items()}
        if threads:
            compile_config.setdefault("INFERENCE_NUM_THREADS", str(int(threads)))
        try:
            self._compiled = core.compile_model(model, device, with_exact_precision(core, device, compile_config))
        except Exception as exc:  # noqa: BLE001
            raise DeviceError("{}: cannot compile on device {!r} ({})".format(
                self.path, device, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)) from None
        self._request = self._compiled.create_infer_request()
        self.device = device
        self.source = str(self.path)
        self.card = self._make_card()

    # -- model inspection ---------------------------------------------------------------------
    def _pick_input(self, model: Any) -> str:
        """The input to feed: the spec's input_name, or the model's only input."""
        names = [port.get_any_name() for port in model.inputs]
        if self.spec.input_name:
            for port in model.inputs:
                if self.spec.input_name in port.get_names():
                    return port.get_any_name()
            raise ModelFileError("{}: no input named {!r} (inputs: {})".format(
                self.path, self.spec.input_name, ", ".join(names)))
        if len(names) != 1:
            raise ModelFileError("{}: the model has {} inputs ({}); set input_name in the spec".format(
                self.path, len(names), ", ".join(names)))
        return names[0]

    def _fit_input_shape(self, model: Any) -> None:
        """Check a static input shape against the spec, or fix a dynamic one to it."""
        port = [p for p in model.inputs if p.get_any_name() == self._input_name][0]
        want = self.spec.input_shape()
        shape = port.get_partial_shape()
        if shape.is_static:
            have = [int(d) for d in shape.to_shape()]
            if have != want:
                raise ModelFileError("{}: the model takes {} but the spec feeds {} ({} {}x{})".format(
                    self.path, have, want, self.spec.layout, *self.spec.input_size))
            return
        if shape.rank.is_static and shape.rank.get_length() != 4:
            raise ModelFileError("{}: the model input has rank {}, the spec feeds 4-D {}".format(
                self.path, shape.rank.get_length(), self.spec.layout))
        try:
            model.reshape({self._input_name: want})
        except Exception as exc:  # noqa: BLE001
            raise ModelFileError("{}: cannot reshape the input to {} ({})".format(self.path, want, exc)) from None

    def _pick_output(self, model: Any) -> int:
        """Index of the output to read: the spec's output_name, or the first output."""
        if not self.spec.output_name:
            return 0
        for index, port in enumerate(model.outputs):
            if self.spec.output_name in port.get_names():
                return index
        raise ModelFileError("{}: no output named {!r} (outputs: {})".format(
            self.path, self.spec.output_name, ", ".join(p.get_any_name() for p in model.outputs)))

    def _make_card(self) -> ModelCard:
        """A model card describing the foreign model as the kit sees it (task alpha, fed per the spec)."""
        spec = self.spec
        return ModelCard(
            name=spec.name or self.path.stem,
            task="alpha",
            arch="foreign",
            config={"spec": spec.to_dict(), "model_file": self.path.name},
            input_size=list(spec.input_size),
            input={"dtype": "f32", "layout": spec.layout, "color": spec.color, "normalised": True},
            normalisation=Normalisation(color=spec.color, mean=list(spec.mean),
                                        std=[s / spec.scale for s in spec.std]),
            output={"meaning": "foreground probability in [0,1] (foreign model: channel {} after {})".format(
                spec.channel, spec.activation), "channels": 1},
            source_sha256=sha256_file(str(self.path)),
            tools={"openvino": version()},
            notes=spec.notes,
        )

    # -- inference ----------------------------------------------------------------------------
    def _prepare(self, bgr: np.ndarray) -> Tuple[np.ndarray, Tuple[int, int]]:
        """Validated network input and the original (H, W)."""
        if not isinstance(bgr, np.ndarray) or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
            raise InputError("foreign model: expected a BGR uint8 HxWx3 image, got {} {}".format(
                getattr(bgr, "dtype", type(bgr).__name__), list(np.shape(bgr))))
        return self.spec.preprocess(bgr), (bgr.shape[0], bgr.shape[1])

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Raw network output for an already preprocessed input (used to time inference alone)."""
        self._request.infer({self._input_name: x})
        return self._request.get_output_tensor(self._output_index).data

    def predict(self, bgr: np.ndarray) -> np.ndarray:
        """Foreground probability HxW float32 in [0,1] at the image's size."""
        x, size = self._prepare(bgr)
        return self.spec.postprocess(self.infer(x), size)

    def prepare(self, bgr: np.ndarray) -> np.ndarray:
        return self._prepare(bgr)[0]

    def finish(self, raw: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
        return self.spec.postprocess(raw, size)

    def predict_many(self, images: Iterable[np.ndarray], nireq: int = 0) -> Iterator[np.ndarray]:
        """Predict a stream of images with `nireq` parallel requests (0: OpenVINO's optimal number), order kept.

        The same round-robin requests as OpenVINOPredictor (`runtime.round_robin`, no AsyncInferQueue callbacks).
        """
        try:
            optimal = int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        except Exception:  # noqa: BLE001 - a plugin without the property
            optimal = 1
        count = int(nireq) if nireq and int(nireq) > 0 else max(1, optimal)
        return round_robin(self._compiled, images, count, self._prepare, self.spec.postprocess,
                           input_key=self._input_name, output_index=self._output_index)


__all__ = ["PreprocSpec", "ForeignPredictor", "load_spec", "shipped_specs", "SPECS_DIR"]
