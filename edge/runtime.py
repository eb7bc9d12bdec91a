"""Load an IR, ONNX, zoo or plugin model for a device and predict alpha / saliency / trimap on BGR images."""
import mmap
import os
from collections import deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from ._ov import Core, Type, with_exact_precision
from .card import ONNX_METADATA_KEY, ModelCard, sha256_file
from .errors import DeviceError, EdgematteError, InputError, ModelFileError
from .zoo import is_zoo_name, list_zoo, path_for

LOADER_GROUP = "edgematte.loaders"
COMPOSITE_DEVICES = ("AUTO", "HETERO", "MULTI", "BATCH")  # virtual devices: NAME or NAME:dev1,dev2
SIZE_MULTIPLE = 32  # dynamic models run at sides rounded to this


# -- pre/post-processing shared by every predictor ------------------------------------------------
def network_size(card: ModelCard, height: int, width: int) -> Tuple[int, int]:
    """(H, W) the network runs at: the card's input_size, or for dynamic models the image scaled so its long side is
    max(input_size), both sides rounded to a multiple of 32."""
    if not card.dynamic:
        return int(card.input_size[0]), int(card.input_size[1])
    scale = max(card.input_size) / float(max(height, width))
    return tuple(max(SIZE_MULTIPLE, int(round(side * scale / SIZE_MULTIPLE)) * SIZE_MULTIPLE)  # type: ignore
                 for side in (height, width))


def check_image(bgr: Any) -> np.ndarray:
    """A BGR uint8 HxWx3 array from what the caller passed (gray and BGRA accepted); InputError otherwise."""
    if not isinstance(bgr, np.ndarray) or bgr.ndim not in (2, 3) or bgr.size == 0:
        raise InputError("predict takes a BGR uint8 HxWx3 array, got {}".format(
            getattr(bgr, "shape", type(bgr).__name__)))
    if bgr.dtype != np.uint8:
        raise InputError("predict takes uint8 pixels, got {} (read images with edgematte.edge.io.read_image)".format(
            bgr.dtype))
    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    if bgr.shape[2] == 4:
        return np.ascontiguousarray(bgr[:, :, :3])
    if bgr.shape[2] != 3:
        raise InputError("predict takes 3 channels, got {}".format(bgr.shape[2]))
    return bgr


def resize_to(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Stretch to (H, W): area interpolation when shrinking, bilinear otherwise (as the peers are fed)."""
    h, w = image.shape[:2]
    if (h, w) == tuple(size):
        return image
    shrinking = size[0] <= h and size[1] <= w
    return cv2.resize(image, (int(size[1]), int(size[0])),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def to_network_input(bgr: np.ndarray, card: ModelCard, spec: Optional[Dict[str, Any]] = None) -> np.ndarray:
    """Resize a BGR uint8 image to the network size and lay it out as the artifact's input (`spec`, default
    card.input): u8 or f32, BGR or RGB, NHWC or NCHW, raw or normalised per card.normalisation. Batch 1."""
    spec = dict(card.input if spec is None else spec)
    image = resize_to(check_image(bgr), network_size(card, bgr.shape[0], bgr.shape[1]))
    if str(spec.get("color", "BGR")).upper() == "RGB":
        image = image[:, :, ::-1]
    if spec.get("normalised"):
        norm = card.normalisation
        mean = np.asarray(norm.mean, dtype=np.float32)
        std = np.asarray(norm.std, dtype=np.float32)
        if str(norm.color).upper() != str(spec.get("color", "BGR")).upper():  # mean/std given in the other order
            mean, std = mean[::-1], std[::-1]
        tensor = (image.astype(np.float32) - mean) / std
    elif str(spec.get("dtype", "u8")).lower() in ("u8", "uint8"):
        tensor = image
    else:
        tensor = image.astype(np.float32)
    if str(spec.get("layout", "NHWC")).upper() == "NCHW":
        tensor = tensor.transpose(2, 0, 1)
    return np.ascontiguousarray(tensor[None])


def from_network_output(output: np.ndarray, card: ModelCard, size: Tuple[int, int]) -> np.ndarray:
    """The network output [1,C,h,w] (or [1,h,w,C], [1,h,w]) resized bilinear to (H, W), clipped to [0,1], float32:
    HxW for alpha/saliency, HxWx3 (background, unknown, foreground) for trimap."""
    out = np.asarray(output, dtype=np.float32)
    while out.ndim > 3 and out.shape[0] == 1:
        out = out[0]
    channels = 3 if card.task == "trimap" else 1
    if out.ndim == 3:
        if out.shape[0] == channels:
            out = out.transpose(1, 2, 0)
        elif out.shape[-1] != channels:
            raise ModelFileError("model '{}': output shape {} does not hold {} channel(s) for task {}".format(
                card.name, list(output.shape), channels, card.task))
        if channels == 1:
            out = out[:, :, 0]
    out = cv2.resize(np.ascontiguousarray(out), (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


# -- predictors -----------------------------------------------------------------------------------
class Predictor:
    """A loaded model: `.card`, `.predict(bgr)`, `.predict_many(images, nireq)`; subclasses implement predict."""

    card: ModelCard
    source: str = ""
    device: str = ""

    def predict(self, bgr: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """HxW float32 alpha in [0,1] at the image's size (HxWx3 probabilities for trimap)."""
        raise NotImplementedError

    def predict_many(self, images: Iterable[np.ndarray], nireq: int = 0) -> Iterator[np.ndarray]:
        """Predict a stream of images, yielding results in input order (sequential unless overridden)."""
        for image in images:
            yield self.predict(image)

    # The three stages of predict(), separately timeable (edgematte bench): finish(infer(prepare(bgr)), size).
    def prepare(self, bgr: np.ndarray) -> Any:
        """The network input for one BGR image (resize, layout, normalisation as the artifact needs)."""
        return bgr

    def infer(self, prepared: Any) -> Any:
        """The raw network output for a prepared input (one synchronous inference)."""
        return self.predict(prepared)

    def finish(self, raw: Any, size: Tuple[int, int]) -> np.ndarray:
        """The alpha at (H, W) from a raw output."""
        return raw

    def __repr__(self) -> str:
        return "{}({!r}, task={}, device={})".format(type(self).__name__, self.source, self.card.task, self.device)


def check_card_input(port: Any, card: ModelCard, source: str) -> None:
    """Refuse a model whose input port (of a Model or a CompiledModel) does not take what `card` says it takes."""
    want_u8 = str(card.input.get("dtype", "u8")).lower() in ("u8", "uint8") and not card.input.get("normalised")
    got = port.get_element_type()
    if (got == Type.u8) != want_u8:
        raise ModelFileError("{}: the card says the input is {} but the model takes {}".format(
            source, "u8" if want_u8 else "f32", got.get_type_name()))
    shape = port.get_partial_shape()
    if card.dynamic and shape.is_static:
        raise ModelFileError("{}: the card says the input is dynamic but the model takes the fixed shape {}".format(
            source, [int(d) for d in shape.to_shape()]))
    if not card.dynamic and shape.is_static:
        h, w = card.input_size
        nchw = str(card.input.get("layout", "NHWC")).upper() == "NCHW"
        expected = [1, 3, h, w] if nchw else [1, h, w, 3]
        if [int(d) for d in shape.to_shape()] != [int(d) for d in expected]:
            raise ModelFileError("{}: the card says input {} but the model takes {}".format(
                source, expected, [int(d) for d in shape.to_shape()]))


class OpenVINOPredictor(Predictor):
    """An IR or ONNX model compiled by OpenVINO; predict_many keeps several infer requests in flight."""

    def __init__(self, compiled: Any, card: ModelCard, source: str, device: str) -> None:
        self.compiled = compiled
        self.card = card
        self.source = source
        self.device = device
        self._request = None  # created on first predict
        self._check_input()

    def _check_input(self) -> None:
        """Refuse an artifact whose input does not match what its card says it takes."""
        check_card_input(self.compiled.input(0), self.card, self.source)

    def predict(self, bgr: np.ndarray) -> np.ndarray:
        """HxW float32 alpha in [0,1] at the image's size (HxWx3 probabilities for trimap)."""
        return self.finish(self.infer(self.prepare(bgr)), bgr.shape[:2])

    def prepare(self, bgr: np.ndarray) -> np.ndarray:
        return to_network_input(bgr, self.card)

    def infer(self, prepared: np.ndarray) -> np.ndarray:
        if self._request is None:
            self._request = self.compiled.create_infer_request()
        self._request.infer({0: prepared})
        return self._request.get_output_tensor(0).data

    def finish(self, raw: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
        return from_network_output(raw, self.card, size)

    def execution_devices(self) -> List[str]:
        """The devices the model actually runs on (what AUTO picked), as OpenVINO reports them."""
        try:
            return [str(d) for d in self.compiled.get_property("EXECUTION_DEVICES")]
        except Exception:  # noqa: BLE001 - older OpenVINO without the property
            return [self.device]

    def optimal_requests(self) -> int:
        """The device's optimal number of parallel infer requests (1 when it does not say)."""
        try:
            return max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        except Exception:  # noqa: BLE001 - a plugin without the property
            return 1

    def predict_many(self, images: Iterable[np.ndarray], nireq: int = 0) -> Iterator[np.ndarray]:
        """Run up to `nireq` requests at once (0 = the device's optimal number); results come in input order.

        Requests are used round-robin (oldest first), which keeps the order without Python callbacks:
        AsyncInferQueue's callback needs the GIL on OpenVINO's thread and deadlocked sporadically here.
        """
        count = int(nireq) if nireq and int(nireq) > 0 else self.optimal_requests()
        card = self.card
        return round_robin(self.compiled, images, count,
                           lambda image: (to_network_input(image, card), image.shape[:2]),
                           lambda raw, size: from_network_output(raw, card, size))


def round_robin(compiled: Any, images: Iterable[np.ndarray], count: int,
                prepare: Callable[[np.ndarray], Tuple[Any, Tuple[int, int]]],
                finish: Callable[[Any, Tuple[int, int]], np.ndarray], input_key: Any = 0,
                output_index: int = 0) -> Iterator[np.ndarray]:
    """Keep `count` infer requests of `compiled` in flight, used round-robin (oldest first), results in input order.

    Without Python callbacks: AsyncInferQueue's callback needs the GIL on OpenVINO's thread and deadlocked
    sporadically here. `prepare` gives (network input, image size), `finish` the alpha from the raw output.
    """
    free = deque(compiled.create_infer_request() for _ in range(count))  # type: Deque[Any]
    pending = deque()  # type: Deque[Tuple[Any, Tuple[int, int]]]

    def collect() -> np.ndarray:
        request, size = pending.popleft()
        request.wait()
        result = finish(request.get_output_tensor(output_index).data, size)
        free.append(request)
        return result

    try:
        for image in images:
            if not free:
                yield collect()
            tensor, size = prepare(image)
            request = free.popleft()
            request.start_async({input_key: tensor})
            pending.append((request, size))
        while pending:
            yield collect()
    finally:
        for request, _ in pending:  # the consumer stopped early: let in-flight requests finish
            request.wait()


# -- devices --------------------------------------------------------------------------------------
def _quoted(text: str) -> str:
    """'text' in quotes, with control characters escaped so that an error stays on one line."""
    return "'{}'".format(text) if text.isprintable() else repr(text)


def _match_device(available: List[str], wanted: str) -> Optional[str]:
    """The available device `wanted` names (case-insensitive; "GPU" also matches "GPU.0"), as OpenVINO spells it."""
    bare = wanted.strip().upper()
    exact = [a for a in available if a.upper() == bare]
    if exact:
        return exact[0]
    family = [a.split(".")[0] for a in available if a.split(".")[0].upper() == bare]
    return family[0] if family else None


def check_device(core: Any, device: str) -> str:
    """The device name as OpenVINO spells it (case and spaces normalised: "cpu " -> "CPU"), verified against
    core.available_devices; DeviceError naming the device and listing what is there otherwise.

    Virtual devices: plain AUTO (OpenVINO picks among what is there, CPU last). AUTO:a,b is a priority list, and
    as OpenVINO documents, AUTO moves on to the next candidate when one cannot be used: absent candidates are dropped
    here (OpenVINO itself fails outright when an absent device's plugin cannot even be loaded), exclusions (-GPU)
    are kept, and only a list with no device left is an error. HETERO:/MULTI:/BATCH: lists use every device they
    name, so each must be present.
    """
    available = list(core.available_devices)
    name = (device or "").strip()
    head, colon, rest = name.partition(":")
    virtual = head.strip().upper()
    composite = virtual in COMPOSITE_DEVICES
    there = "available: {} (also AUTO, and HETERO:/MULTI:/AUTO: lists of these)".format(", ".join(available) or "none")
    if not composite:
        match = _match_device(available, name)
        if match is None:
            raise DeviceError("device {} is not available here; {}".format(_quoted(name or device), there))
        return match
    canonical, absent = [], []  # type: List[str], List[str]
    for dev in (d.strip() for d in rest.split(",")):
        if not dev:
            continue
        if virtual == "AUTO" and dev.startswith("-"):  # AUTO:-GPU: an exclusion, valid whether GPU is there or not
            canonical.append("-" + (_match_device(available, dev[1:]) or dev[1:].strip().upper()))
            continue
        bare, paren, tail = dev.partition("(")  # MULTI:CPU(4),GPU(2)
        match = _match_device(available, bare)
        if match is None:
            absent.append(dev)
        else:
            canonical.append(match + paren + tail)
    if absent and (virtual != "AUTO" or not [c for c in canonical if not c.startswith("-")]):
        if len(absent) == 1:
            raise DeviceError("device {} is not available here; {}".format(_quoted(absent[0]), there))
        raise DeviceError("devices {} are not available here; {}".format(
            ", ".join(_quoted(d) for d in absent), there))
    return virtual + (":" + ",".join(canonical) if canonical else "")


def _ov_reason(exc: BaseException) -> str:
    """The informative line of an OpenVINO exception (they come with 'Exception from file:line' noise)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Exception from", "Check '"))]
    return (useful or lines or [type(exc).__name__])[-1][:300]


# -- ONNX metadata without the onnx package -------------------------------------------------------
def _varint(buf: Any, pos: int) -> Tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: Any, start: int, end: int) -> Iterator[Tuple[int, int, Any]]:
    """(field number, wire type, value or (start, end) for length-delimited) of a protobuf message."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise ValueError("truncated field")
            yield number, wire, (pos, pos + length)
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError("unsupported wire type {}".format(wire))


def read_onnx_metadata(path: str) -> Dict[str, str]:
    """ModelProto.metadata_props (field 14: key=1, value=2) of an ONNX file, read with a tiny protobuf walker."""
    props = {}  # type: Dict[str, str]
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                raise ModelFileError("{}: empty file".format(path))
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                for number, wire, value in _fields(buf, 0, size):
                    if number != 14 or wire != 2:
                        continue
                    entry = {}
                    for sub, sub_wire, span in _fields(buf, value[0], value[1]):
                        if sub in (1, 2) and sub_wire == 2:
                            entry[sub] = bytes(buf[span[0]:span[1]]).decode("utf-8", "replace")
                    if 1 in entry:
                        props[entry[1]] = entry.get(2, "")
    except (ValueError, IndexError) as exc:
        raise ModelFileError("{}: not a readable ONNX file ({})".format(path, exc)) from None
    except OSError as exc:
        raise ModelFileError("{}: cannot read ({})".format(path, exc.strerror or exc)) from None
    return props


def onnx_card(model: Any, path: str) -> Optional[ModelCard]:
    """The card of an ONNX model: from OpenVINO's rt_info ["framework", key] when exposed, else the file itself."""
    text = None
    try:
        if model.has_rt_info(["framework", ONNX_METADATA_KEY]):
            value = model.get_rt_info(["framework", ONNX_METADATA_KEY])
            text = value.astype(str) if hasattr(value, "astype") else str(value)
    except Exception:  # noqa: BLE001 - older OpenVINO: no such rt_info; read the protobuf
        text = None
    if text is None:
        text = read_onnx_metadata(path).get(ONNX_METADATA_KEY)
    return ModelCard.from_json(text, source=path) if text is not None else None


# -- IR checks -------------------------------------------------------------------------------------
_HASH_CACHE = {}  # type: Dict[Tuple[str, int, int], str]


def weights_sha256(path: str) -> str:
    """sha256 of a weights file, cached in memory by (path, size, mtime) so reloading is free."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = sha256_file(path)
    return _HASH_CACHE[key]


def _check_ir_files(xml: Path) -> Path:
    """The .bin of an IR after cheap checks (xml looks like an IR, .bin present); ModelFileError otherwise."""
    with open(str(xml), "rb") as handle:
        head = handle.read(4096)
    if not head.strip():
        raise ModelFileError("{}: empty file".format(xml))
    if b"<net" not in head:
        raise ModelFileError("{}: not an OpenVINO IR .xml (no <net> element)".format(xml))
    weights = xml.with_suffix(".bin")
    if not weights.is_file():
        raise ModelFileError("{}: its weights file {} is missing".format(xml, weights.name))
    return weights


def check_ir_weights(xml: Any, card: ModelCard) -> None:
    """Refuse a kit IR whose card records no weights_sha256, or whose .bin does not match it (a damaged .bin
    otherwise loads and gives masks off by up to 250 levels)."""
    weights = Path(xml).with_suffix(".bin")
    if not card.weights_sha256:
        raise ModelFileError("{}: its model card records no weights_sha256, so {} cannot be checked (re-export it "
                             "with `edgematte export`)".format(xml, weights.name))
    if weights_sha256(str(weights)) != card.weights_sha256:
        raise ModelFileError("{}: weights {} do not match the card's sha256 (corrupt or from another "
                             "export)".format(xml, weights.name))


def _read_model(core: Any, path: Path, weights: Optional[Path]) -> Any:
    """core.read_model of an IR (with its .bin) or ONNX file, with OpenVINO's failure as one ModelFileError line."""
    try:
        return core.read_model(str(path)) if weights is None else core.read_model(str(path), str(weights))
    except RuntimeError as exc:
        reason = _ov_reason(exc)
        if weights is not None and "weight" in reason.lower():  # a cut .bin fails here, before the sha256 check
            raise ModelFileError("{}: cannot read the IR: its weights file {} is damaged ({})".format(
                path, weights.name, reason)) from None
        raise ModelFileError("{}: cannot read the model ({})".format(path, reason)) from None


def check_kit_ir(xml: Any) -> Path:
    """The path of a kit IR after every load check short of compiling (files, card, weights hash, input against
    the card), so that a tool copying IRs (bundle) names the user's file, not its copy, when one is refused."""
    path = Path(xml)
    weights = _check_ir_files(path)
    model = _read_model(Core(), path, weights)
    card = ModelCard.read_rt_info(model, source=str(path))
    if card is None:
        raise ModelFileError("{}: carries no edgematte model card (export it with `edgematte export`)".format(path))
    check_ir_weights(path, card)
    check_card_input(model.input(0), card, str(path))
    return path


# -- loading --------------------------------------------------------------------------------------
_LOADERS = {}  # type: Dict[str, Callable[..., Predictor]]
_PLUGINS_LOADED = False
_PLUGIN_FAILURES = []  # type: List[str]


def register_loader(suffixes: Tuple[str, ...], factory: Callable[..., Predictor]) -> None:
    """Let `load_model` open files with these suffixes through `factory(path, device=..., **opts)`."""
    for suffix in suffixes:
        _LOADERS[suffix.lower() if suffix.startswith(".") else "." + suffix.lower()] = factory


def _load_plugins() -> None:
    """Import the `edgematte.loaders` entry points once; a plugin whose extra is missing is noted, not fatal."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    from .cli import iter_entry_points

    seen = set()
    for ep in iter_entry_points(LOADER_GROUP):
        if ep.name in seen:
            continue
        seen.add(ep.name)
        try:
            ep.load()()
        except ImportError as exc:
            _PLUGIN_FAILURES.append("{} ({})".format(ep.name, exc))


def supported_suffixes() -> List[str]:
    """Suffixes load_model can open now (built-in plus registered plugins)."""
    return sorted(set([".xml", ".onnx"] + list(_LOADERS)))


def _compile(core: Any, model: Any, device: str, config: Optional[Dict[str, Any]], source: str) -> Any:
    """core.compile_model, with a failure (the device cannot run the model, a bad config) as one DeviceError line
    naming the model, the device and OpenVINO's reason."""
    try:
        return core.compile_model(model, device, with_exact_precision(core, device, config))
    except (RuntimeError, TypeError, ValueError) as exc:
        raise DeviceError("{}: device {} cannot compile the model: {}".format(
            source, _quoted(device), _ov_reason(exc))) from None


def model_reference(path_or_name: Any) -> str:
    """The model path or zoo name as text; ModelFileError for nothing, an empty name or a value of another kind."""
    if path_or_name is None:
        raise ModelFileError("no model given: pass an IR .xml, an .onnx, a kit checkpoint or a zoo name")
    if not isinstance(path_or_name, (str, os.PathLike)):
        raise ModelFileError("a model is a file path or a zoo name, got a {}".format(type(path_or_name).__name__))
    text = os.fspath(path_or_name)
    if not isinstance(text, str):
        raise ModelFileError("a model path must be text, got {}".format(type(text).__name__))
    if not text.strip():
        raise ModelFileError("the model path is empty: pass an IR .xml, an .onnx, a kit checkpoint or a zoo name")
    return text


def load_model(path_or_name: Any, device: str = "CPU", config: Optional[Dict[str, Any]] = None,
               card: Optional[ModelCard] = None, core: Any = None, **opts: Any) -> Predictor:
    """Load an IR (.xml), ONNX (.onnx), zoo name or plugin-claimed file, compiled for `device`.

    `config` goes to compile_model (e.g. {"PERFORMANCE_HINT": "THROUGHPUT"}); `card` supplies or overrides the model
    card (for artifacts without one). Errors: ModelFileError (missing/corrupt/mismatched files), DeviceError.
    """
    text = model_reference(path_or_name)
    path = Path(text)
    if is_zoo_name(text) and (not path.exists() or (path.is_dir() and text in list_zoo())):
        path = path_for(text)  # a folder in the working directory named like an installed zoo model is not a model
    if path.is_dir():
        raise ModelFileError("{}: is a folder, not a model file".format(path))
    suffix = path.suffix.lower()
    if suffix not in (".xml", ".onnx"):
        if suffix not in _LOADERS:
            _load_plugins()
        if suffix in _LOADERS:
            if not path.exists():
                raise ModelFileError("{}: no such model file".format(path))
            extra = dict(opts)
            if card is not None:
                extra["card"] = card
            return _LOADERS[suffix](str(path), device=device, **extra)
        notes = "; loaders not available: {}".format(", ".join(_PLUGIN_FAILURES)) if _PLUGIN_FAILURES else ""
        raise ModelFileError("{}: unsupported model file type '{}' (supported: {}{})".format(
            path, suffix or "no suffix", ", ".join(supported_suffixes()), notes))
    if not path.is_file():
        raise ModelFileError("{}: no such model file".format(path))
    if opts:
        raise EdgematteError("load_model: unknown option(s) {} for {}".format(", ".join(sorted(opts)), suffix))
    core = core or Core()
    device = check_device(core, device)
    weights = _check_ir_files(path) if suffix == ".xml" else None
    model = _read_model(core, path, weights)
    found = ModelCard.read_rt_info(model, source=str(path)) if suffix == ".xml" else onnx_card(model, str(path))
    if card is None:
        card = found
    if card is None:
        raise ModelFileError("{}: carries no edgematte model card (export it with `edgematte export`, or pass "
                             "card=...)".format(path))
    if weights is not None and found is not None:
        check_ir_weights(path, found)
    compiled = _compile(core, model, device, config, str(path))
    return OpenVINOPredictor(compiled, card, str(path), device)


__all__ = ["Predictor", "OpenVINOPredictor", "load_model", "register_loader", "supported_suffixes", "check_device",
           "network_size", "to_network_input", "from_network_output", "resize_to", "check_image",
           "read_onnx_metadata", "onnx_card", "weights_sha256", "check_ir_weights", "check_kit_ir", "check_card_input"]
