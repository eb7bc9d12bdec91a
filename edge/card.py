"""The model card: what a model is and how to feed it, stored inside every artifact (IR rt_info, ONNX metadata, checkpoint)."""
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional

from .card_schema import check_card_fields, parse_card_json
from .errors import ModelFileError

CARD_FORMAT = 1
RT_INFO_PATH = ["edgematte", "card"]  # where the card's JSON lives in an IR's rt_info
ONNX_METADATA_KEY = "edgematte.card"  # ONNX metadata_props key

TASKS = ("alpha", "saliency", "trimap")

# Output meaning per task: what the single deployed output holds.
OUTPUT_MEANING = {
    "alpha": "foreground alpha matte in [0,1], shape [N,1,H,W]",
    "saliency": "foreground (salient object) probability in [0,1], shape [N,1,H,W]",
    "trimap": "trimap class probabilities (background, unknown, foreground) in [0,1], shape [N,3,H,W]",
}


@dataclass
class Normalisation:
    """Pixel normalisation the network expects: x = (pixel[color] - mean) / std, pixels in 0..255."""

    color: str = "RGB"
    mean: List[float] = field(default_factory=lambda: [123.675, 116.28, 103.53])
    std: List[float] = field(default_factory=lambda: [58.395, 57.12, 57.375])


@dataclass
class ModelCard:
    """Self-description of a model artifact; round-trips to JSON and to IR rt_info."""

    name: str
    task: str
    arch: str
    config: Dict[str, Any] = field(default_factory=dict)
    input_size: List[int] = field(default_factory=lambda: [512, 512])  # [H, W] the network runs at
    dynamic: bool = False
    # What the artifact itself takes: an IR with preprocessing inside takes u8 BGR NHWC;
    # ONNX and checkpoints take normalised float RGB NCHW.
    input: Dict[str, Any] = field(default_factory=lambda: {"dtype": "f32", "layout": "NCHW", "color": "RGB",
                                                           "normalised": True})
    normalisation: Normalisation = field(default_factory=Normalisation)
    output: Dict[str, Any] = field(default_factory=dict)
    precision: str = "FP32"
    prune: Optional[Dict[str, Any]] = None
    source_sha256: Optional[str] = None
    # where the encoder's initial weights came from: encoder, package, version, file, sha256, licence (None: random)
    encoder: Optional[Dict[str, Any]] = None
    weights_sha256: Optional[str] = None  # sha256 of the IR .bin; checked when the IR is loaded
    tools: Dict[str, str] = field(default_factory=dict)
    metrics: Dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    format: int = CARD_FORMAT

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ModelFileError("model card: unknown task {!r} (expected one of {})".format(self.task, ", ".join(TASKS)))
        if isinstance(self.normalisation, dict):
            self.normalisation = Normalisation(**self.normalisation)
        if not self.output:
            self.output = {"meaning": OUTPUT_MEANING[self.task], "channels": 3 if self.task == "trimap" else 1}

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-able dict."""
        return asdict(self)

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys) of the card."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, source: str = "model card") -> "ModelCard":
        """Build a card from a dict, with a one-line error naming `source` when it is malformed."""
        if not isinstance(data, dict):
            raise ModelFileError("{}: the model card is not a JSON object".format(source))
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("name", "task", "arch") if k not in data]
        if missing:
            raise ModelFileError("{}: the model card lacks {}".format(source, ", ".join(missing)))
        check_card_fields(data, source, CARD_FORMAT)
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise ModelFileError("{}: malformed model card ({})".format(source, exc)) from None

    @classmethod
    def from_json(cls, text: str, source: str = "model card") -> "ModelCard":
        """Parse a card from JSON text, bounded in size and depth (a card is read from files the user passes)."""
        return cls.from_dict(parse_card_json(text, source), source)

    # -- OpenVINO rt_info ---------------------------------------------------------------------
    def write_rt_info(self, model: Any) -> None:
        """Store the card in an openvino.Model's rt_info (saved into the IR .xml)."""
        model.set_rt_info(self.to_json(), RT_INFO_PATH)

    @classmethod
    def read_rt_info(cls, model: Any, source: str = "IR") -> Optional["ModelCard"]:
        """Read the card from an openvino.Model's rt_info; None when the model carries none."""
        text = _rt_info_text(model)
        if text is None:
            return None
        return cls.from_json(text, source)


def _rt_info_text(model: Any) -> Optional[str]:
    """The card JSON from rt_info under both the current and the 2022.3 API, or None."""
    try:
        if not model.has_rt_info(RT_INFO_PATH):
            return None
        value = model.get_rt_info(RT_INFO_PATH)
    except (AttributeError, TypeError):  # 2022.3: rt_info is a nested map without has_rt_info(path)
        try:
            value = model.get_rt_info()[RT_INFO_PATH[0]][RT_INFO_PATH[1]]
        except Exception:  # noqa: BLE001 - absent in any form means no card
            return None
    for attr in ("astype",):
        if hasattr(value, attr):
            try:
                return value.astype(str)
            except Exception:  # noqa: BLE001
                pass
    if hasattr(value, "value"):
        return str(value.value)
    return str(value)


def save_ir(model: Any, xml_path: str, card: "ModelCard", compress_to_fp16: bool = False) -> "ModelCard":
    """Save an openvino.Model as an IR pair carrying `card`, atomically; returns the card with weights_sha256 set.

    The model is saved once, its .bin hashed into the card, and saved again with the card; the second .bin must be
    byte-identical (the card lives in the .xml only). The .bin is renamed into place before the .xml, so an .xml
    always has its .bin. Needs OpenVINO >= 2023.1 (save_model): saving happens on the build machine, not the box.
    """
    import copy
    import os
    import shutil
    import tempfile

    from ._ov import ov
    from .save_errors import saving

    card = copy.deepcopy(card)
    folder = os.path.dirname(os.path.abspath(xml_path))
    stem = os.path.splitext(os.path.basename(xml_path))[0]
    with saving(xml_path, "the IR"):  # a full disk is one line naming the IR, not OpenVINO's iostream error
        os.makedirs(folder, exist_ok=True)
        tmp_dir = tempfile.mkdtemp(prefix="." + stem + ".", suffix=".tmp", dir=folder)
        try:
            first = os.path.join(tmp_dir, "first.xml")
            ov.save_model(model, first, compress_to_fp16=compress_to_fp16)  # default True: FP32 must say False
            card.weights_sha256 = sha256_file(first[:-4] + ".bin")
            card.write_rt_info(model)
            final = os.path.join(tmp_dir, "final.xml")
            ov.save_model(model, final, compress_to_fp16=compress_to_fp16)
            if sha256_file(final[:-4] + ".bin") != card.weights_sha256:
                raise RuntimeError("{}: the second save wrote a different .bin".format(xml_path))
            os.replace(final[:-4] + ".bin", os.path.splitext(xml_path)[0] + ".bin")
            os.replace(final, xml_path)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return card


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()
