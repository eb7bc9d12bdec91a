"""NNCF post-training INT8 of an OpenVINO IR, calibrated on real images fed exactly as the edge runtime feeds them."""
import copy
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edgematte.edge._ov import Core, with_exact_precision
from edgematte.edge.card import ModelCard, save_ir
from edgematte.edge.datasets import IMAGE_EXTS, list_images
from edgematte.edge.errors import EdgematteError, InputError, ModelFileError
from edgematte.edge.io import read_image
from edgematte.edge.runtime import check_ir_weights, onnx_card, to_network_input

from .accuracy import DEFAULT_VAL_LIMIT, SCORE_NAME, validation_items, validation_score

PRESETS = ("performance", "mixed")
DEFAULT_SUBSET = 300  # NNCF's own default calibration subset size
# calib_data/ ships beside the packages in the source tree (an installed wheel has no copy: pass --calib)
DEFAULT_CALIB = Path(__file__).resolve().parent.parent / "calib_data"


class CalibrationError(InputError):
    """The calibration folder is missing, empty, or holds no readable image."""


def calibration_files(folder: Optional[str] = None) -> List[Path]:
    """Image files of a calibration folder (recursive, sorted); CalibrationError when there are none."""
    root = Path(folder) if folder else DEFAULT_CALIB
    if not root.is_dir():
        hint = "" if folder else " (calib_data/ ships in the source tree only: pass --calib DIR)"
        raise CalibrationError("{}: calibration folder not found{}".format(root, hint))
    files = list_images(root)
    if not files:
        raise CalibrationError("{}: no calibration images ({}) in the folder".format(root, ", ".join(IMAGE_EXTS)))
    return files


def calibration_inputs(card: ModelCard, folder: Optional[str] = None, subset: int = DEFAULT_SUBSET) -> List[np.ndarray]:
    """Up to `subset` network inputs from the folder's images, laid out as the card's artifact takes them.

    Unreadable images are skipped (and counted in the error if none is left): a calibration set is a sample.
    """
    inputs = []  # type: List[np.ndarray]
    skipped = []  # type: List[str]
    files = calibration_files(folder)
    for path in files:
        if len(inputs) >= subset:
            break
        try:
            inputs.append(to_network_input(read_image(str(path), downscale=True), card))
        except EdgematteError as error:
            skipped.append("{} ({})".format(path.name, error))
    if not inputs:
        raise CalibrationError("{}: none of the {} calibration images could be read, e.g. {}".format(
            folder or DEFAULT_CALIB, len(files), skipped[0] if skipped else "?"))
    return inputs


def int8_card(card: ModelCard, source_xml: str, images: int, folder: str, preset: str) -> ModelCard:
    """The INT8 IR's card: the FP32 card with precision INT8 and how it was quantized (lineage in notes)."""
    import nncf

    out = copy.deepcopy(card)
    out.precision = "INT8"
    out.weights_sha256 = None
    out.tools = dict(card.tools, nncf=str(nncf.__version__))
    lineage = "INT8 by NNCF post-training quantization ({} preset, {} calibration images from {}) of {} " \
              "(weights sha256 {})".format(preset, images, folder, os.path.basename(source_xml), card.weights_sha256)
    out.notes = (card.notes + "; " if card.notes else "") + lineage
    return out


def quantize_ir(xml_path: str, out_xml: str, calib: Optional[str] = None, subset: int = DEFAULT_SUBSET,
                preset: str = "performance", ignored_scope: Sequence[str] = (),
                fast_bias_correction: bool = True, max_drop: Optional[float] = None, val: Optional[str] = None,
                val_limit: int = DEFAULT_VAL_LIMIT) -> Dict[str, Any]:
    """INT8 IR at out_xml from the IR (FP32 or FP16 weights, card in rt_info) or kit ONNX file at xml_path, written
    atomically.

    `ignored_scope`: op names or regular expressions (prefixed "re:") kept in floating point.
    `max_drop` (with `val`, a dataset folder): nncf.quantize_with_accuracy_control with the kit's validation score
    (see accuracy.py): quantizers are reverted, most harmful first, until the score drops by at most max_drop.
    Returns what was done: calibration count, op counts, file sizes, seconds (and the scores with max_drop).
    """
    import nncf

    if preset not in PRESETS:
        raise InputError("--preset must be one of {}, got {!r}".format(", ".join(PRESETS), preset))
    if not str(out_xml).endswith(".xml"):
        raise InputError("{}: an IR path must end in .xml".format(out_xml))
    started = time.time()
    model, card = read_source(xml_path)
    if Path(xml_path).suffix.lower() == ".xml":
        check_ir_weights(xml_path, card)  # INT8 of a damaged .bin would get a fresh, valid hash
    if card.precision == "INT8":
        raise ModelFileError("{}: already INT8".format(xml_path))
    inputs = calibration_inputs(card, calib, subset)
    input_name = model.inputs[0].get_any_name()
    scope = None
    if ignored_scope:
        names = [n for n in ignored_scope if not n.startswith("re:")]
        patterns = [n[3:] for n in ignored_scope if n.startswith("re:")]
        scope = nncf.IgnoredScope(names=names, patterns=patterns, validate=False)
    options = dict(preset=nncf.QuantizationPreset.MIXED if preset == "mixed" else nncf.QuantizationPreset.PERFORMANCE,
                   subset_size=len(inputs), fast_bias_correction=fast_bias_correction,
                   **({"ignored_scope": scope} if scope is not None else {}))
    calibration = nncf.Dataset(inputs, lambda x: {input_name: x})
    control = None  # type: Optional[Dict[str, Any]]
    if max_drop is None:
        if val:
            raise InputError("--val is only used with --max-drop")
        quantized = nncf.quantize(model, calibration, **options)
    else:
        if not val:
            raise InputError("--max-drop needs --val DIR: the labelled images that guard the quality")
        if not 0.0 <= float(max_drop) < 1.0:
            raise InputError("--max-drop must be in [0, 1), got {}".format(max_drop))
        items = validation_items(card, val, val_limit)
        quantized = nncf.quantize_with_accuracy_control(
            model, calibration, nncf.Dataset(items), lambda compiled, data: validation_score(compiled, data, card),
            max_drop=float(max_drop), drop_type=nncf.DropType.ABSOLUTE, **options)
        control = {"max_drop": float(max_drop), "metric": SCORE_NAME[card.task], "validation_images": len(items),
                   "validation_folder": str(val)}
    new_card = int8_card(card, xml_path, len(inputs), str(calib or DEFAULT_CALIB), preset)
    if control is not None:
        new_card.notes += "; accuracy control: {} drop <= {} on {} images of {}".format(
            control["metric"], control["max_drop"], control["validation_images"], val)
    new_card = save_ir(quantized, str(out_xml), new_card, compress_to_fp16=False)
    saved = Core().read_model(str(out_xml))
    out = Path(out_xml)
    if control is not None:
        core = Core()
        exact = with_exact_precision(core, "CPU")
        control["score_source"] = validation_score(core.compile_model(model, "CPU", exact), items, card)[0]
        control["score_int8"] = validation_score(core.compile_model(saved, "CPU", exact), items, card)[0]
        control["drop"] = control["score_source"] - control["score_int8"]
    return {"accuracy_control": control, "source": str(xml_path), "path": str(out), "calibration_images": len(inputs),
            "calibration_folder": str(calib or DEFAULT_CALIB), "preset": preset,
            "fake_quantize_ops": sum(1 for op in saved.get_ops() if op.get_type_name() == "FakeQuantize"),
            "xml_bytes": out.stat().st_size, "bin_bytes": out.with_suffix(".bin").stat().st_size,
            "source_bin_bytes": _weights_bytes(Path(xml_path)),
            "weights_sha256": new_card.weights_sha256, "seconds": round(time.time() - started, 2), "card": new_card}


def read_source(path: str) -> Tuple[Any, ModelCard]:
    """The openvino.Model and card of what quantize starts from: an IR pair (card in rt_info) or an ONNX file
    exported by the kit (card in its metadata); ModelFileError naming the file otherwise."""
    if Path(path).suffix.lower() != ".onnx":
        model = read_ir(path)
        card = ModelCard.read_rt_info(model, path)
    else:
        if not Path(path).is_file():
            raise ModelFileError("{}: no such ONNX file".format(path))
        try:
            model = Core().read_model(str(path))
        except Exception as error:  # noqa: BLE001 - OpenVINO raises plain RuntimeErrors with long texts
            raise ModelFileError("{}: OpenVINO cannot read it ({})".format(path, str(error).strip().splitlines()[0]))
        card = onnx_card(model, str(path))
    if card is None:
        raise ModelFileError("{}: carries no edgematte model card (export it with `edgematte export`)".format(path))
    return model, card


def _weights_bytes(source: Path) -> int:
    """Bytes of the source's weights: the IR's .bin, or the whole ONNX file."""
    return source.stat().st_size if source.suffix.lower() == ".onnx" else source.with_suffix(".bin").stat().st_size


def read_ir(xml_path: str) -> Any:
    """The openvino.Model of an IR pair; ModelFileError naming the file when it is absent or unreadable."""
    xml = Path(xml_path)
    if xml.suffix != ".xml" or not xml.is_file():
        raise ModelFileError("{}: not an IR .xml file".format(xml_path))
    if not xml.with_suffix(".bin").is_file():
        raise ModelFileError("{}: its weights file {} is missing".format(xml_path, xml.with_suffix(".bin").name))
    try:
        return Core().read_model(str(xml))
    except Exception as error:  # noqa: BLE001 - OpenVINO raises plain RuntimeErrors with long texts
        raise ModelFileError("{}: OpenVINO cannot read it ({})".format(xml_path, str(error).strip().splitlines()[0]))


__all__ = ["quantize_ir", "read_source", "calibration_inputs", "calibration_files", "int8_card", "read_ir", "CalibrationError",
           "DEFAULT_CALIB", "DEFAULT_SUBSET", "PRESETS"]
