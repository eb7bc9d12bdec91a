"""edge.runtime on tiny torch-free IR/ONNX models: predictions, order, devices, corrupt files, hashes, zoo, plugins."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from edge_tiny import build_ir, build_onnx, expected_prob, onnx_expected
from edgematte.edge import runtime
from edgematte.edge.card import ModelCard
from edgematte.edge.errors import DeviceError, ModelFileError
from edgematte.edge.runtime import load_model, network_size


def _uniform(h: int, w: int, value) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    image[:] = value
    return image


def test_ir_predict_values_sizes_and_layout(tmp_path: Path) -> None:
    predictor = load_model(build_ir(tmp_path, size=(64, 48)))
    assert predictor.card.task == "saliency" and predictor.card.input["layout"] == "NHWC"
    for shape in [(30, 50), (200, 120), (64, 48), (1, 1)]:
        out = predictor.predict(_uniform(shape[0], shape[1], 160))
        assert out.shape == shape and out.dtype == np.float32
        assert np.allclose(out, expected_prob(160), atol=1e-5)
    # bright left half, dark right half: the network must see the image unrotated, unmirrored
    image = _uniform(40, 80, 10)
    image[:, :40] = 250
    out = predictor.predict(image)
    assert out[:, :30].min() > 0.99 and out[:, 50:].max() < 0.01
    assert predictor.predict(image[:, :, 0]).shape == (40, 80)  # grayscale accepted


def test_predict_many_keeps_order(tmp_path: Path) -> None:
    predictor = load_model(build_ir(tmp_path))
    values = list(range(0, 256, 9))
    images = [_uniform(10 + i, 20 + 2 * i, v) for i, v in enumerate(values)]
    results = list(predictor.predict_many(iter(images), nireq=3))
    assert len(results) == len(values)
    for image, value, out in zip(images, values, results):
        assert out.shape == image.shape[:2]
        assert abs(float(out.mean()) - expected_prob(value)) < 1e-5
    assert [float(r.mean()) for r in predictor.predict_many(images[:4], nireq=0)] == pytest.approx(
        [float(r.mean()) for r in results[:4]])


def test_trimap_output_is_hwc_probabilities(tmp_path: Path) -> None:
    predictor = load_model(build_ir(tmp_path, name="tri", task="trimap"))
    out = predictor.predict(_uniform(33, 17, 250))
    assert out.shape == (33, 17, 3)
    assert np.allclose(out.sum(-1), 1.0, atol=1e-5) and out[..., 2].min() > 0.9


def test_dynamic_model_keeps_aspect(tmp_path: Path) -> None:
    card = ModelCard(name="d", task="saliency", arch="tiny", input_size=[320, 320], dynamic=True)
    assert network_size(card, 1080, 1920) == (192, 320)
    assert network_size(card, 100, 37) == (320, 128)
    assert network_size(card, 5000, 10) == (320, 32)
    predictor = load_model(build_ir(tmp_path, name="dyn", size=(64, 64), dynamic=True))
    out = predictor.predict(_uniform(100, 37, 200))
    assert out.shape == (100, 37) and np.allclose(out, expected_prob(200), atol=1e-5)


def test_onnx_normalised_input_and_card(tmp_path: Path) -> None:
    path = build_onnx(tmp_path)
    predictor = load_model(path)
    assert predictor.card.input["normalised"] and predictor.card.input["layout"] == "NCHW"
    colour = (10, 120, 230)
    out = predictor.predict(_uniform(21, 70, colour))
    assert out.shape == (21, 70) and np.allclose(out, onnx_expected(colour), atol=1e-5)
    # the card also comes out of the file without OpenVINO's help (older OpenVINO, no rt_info)
    assert ModelCard.from_json(runtime.read_onnx_metadata(str(path))["edgematte.card"]) == predictor.card

    class NoRtInfo:
        def has_rt_info(self, path):
            raise AttributeError("old OpenVINO")

    assert runtime.onnx_card(NoRtInfo(), str(path)) == predictor.card


def test_unknown_device_lists_available(tmp_path: Path) -> None:
    xml = build_ir(tmp_path)
    from edgematte.edge._ov import Core

    available = Core().available_devices
    for device in ("NOPE", "HETERO:NOPE,CPU", "AUTO:NOPE"):
        with pytest.raises(DeviceError) as info:
            load_model(xml, device=device)
        text = str(info.value)
        assert "NOPE" in text and all(d in text for d in available) and "\n" not in text
    for device in ("CPU", "AUTO", "AUTO:CPU", "HETERO:CPU", "MULTI:CPU"):
        assert load_model(xml, device=device).predict(_uniform(8, 8, 128)).shape == (8, 8)


@pytest.mark.parametrize("damage", ["garbage_xml", "empty_xml", "missing_bin", "truncated_bin", "tampered_bin",
                                    "missing_xml", "no_card"])
def test_corrupt_model_files(tmp_path: Path, damage: str) -> None:
    xml = build_ir(tmp_path, with_card=damage != "no_card")
    weights = xml.with_suffix(".bin")
    if damage == "garbage_xml":
        xml.write_text("<html>not an IR</html>")
    elif damage == "empty_xml":
        xml.write_bytes(b"")
    elif damage == "missing_bin":
        weights.unlink()
    elif damage == "truncated_bin":
        weights.write_bytes(weights.read_bytes()[:3])
    elif damage == "tampered_bin":  # same size, other bytes: only the card's sha256 catches it
        data = bytearray(weights.read_bytes())
        data[0] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "missing_xml":
        xml.unlink()
    with pytest.raises(ModelFileError) as info:
        load_model(xml)
    assert "\n" not in str(info.value) and xml.name in str(info.value)


def test_truncated_bin_without_hash_is_caught_by_openvino(tmp_path: Path) -> None:
    xml = build_ir(tmp_path, with_hash=False)
    weights = xml.with_suffix(".bin")
    weights.write_bytes(weights.read_bytes()[:3])
    with pytest.raises(ModelFileError, match="tiny.xml"):
        load_model(xml)


def test_hash_is_cached(tmp_path: Path, monkeypatch) -> None:
    xml = build_ir(tmp_path)
    load_model(xml)
    calls = []
    monkeypatch.setattr(runtime, "sha256_file", lambda p: calls.append(p) or "x")
    load_model(xml)
    assert calls == []


def test_card_input_mismatch_refused(tmp_path: Path) -> None:
    xml = build_ir(tmp_path)
    wrong = ModelCard(name="w", task="saliency", arch="tiny", input_size=[64, 48])  # default card: f32 input
    with pytest.raises(ModelFileError, match="u8"):
        load_model(xml, card=wrong)
    wrong_size = ModelCard(name="w", task="saliency", arch="tiny", input_size=[32, 32],
                           input={"dtype": "u8", "layout": "NHWC", "color": "BGR", "normalised": False})
    with pytest.raises(ModelFileError, match="input"):
        load_model(xml, card=wrong_size)


def test_zoo_lookup(tmp_path: Path, monkeypatch) -> None:
    from edgematte.edge import zoo

    build_ir(tmp_path / "zoo" / "sod", name="model")
    (tmp_path / "zoo" / "empty").mkdir()
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "zoo"))
    assert "sod" in zoo.list_zoo() and "empty" not in zoo.list_zoo()
    assert zoo.path_for("sod") == tmp_path / "zoo" / "sod" / "model.xml"
    assert load_model("sod").predict(_uniform(5, 6, 200)).shape == (5, 6)
    with pytest.raises(ModelFileError) as info:
        zoo.path_for("nobody")  # installed neither in $EDGEMATTE_ZOO nor in the package
    assert "nobody" in str(info.value) and "sod" in str(info.value) and "-m" in str(info.value)
    assert zoo.list_zoo(root=str(tmp_path / "nothing")) == []


def test_loader_plugins_and_unknown_suffix(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(runtime, "_LOADERS", {})
    monkeypatch.setattr(runtime, "_PLUGINS_LOADED", True)  # no entry points: only what is registered here
    odd = tmp_path / "m.weird"
    odd.write_bytes(b"x")
    with pytest.raises(ModelFileError) as info:
        load_model(odd)
    assert ".weird" in str(info.value) and ".xml" in str(info.value) and ".onnx" in str(info.value)

    seen = {}

    class Echo(runtime.Predictor):
        def __init__(self, path, device="CPU", **opts):
            seen.update(path=path, device=device, **opts)
            self.card = ModelCard(name="e", task="alpha", arch="echo")

        def predict(self, bgr):
            return np.zeros(bgr.shape[:2], np.float32)

    runtime.register_loader((".weird",), Echo)
    predictor = load_model(odd, device="GPU", flavour=1)
    assert isinstance(predictor, Echo) and seen == {"path": str(odd), "device": "GPU", "flavour": 1}
    assert list(predictor.predict_many([_uniform(3, 4, 0)] * 2))[1].shape == (3, 4)
    assert ".weird" in runtime.supported_suffixes()


def test_old_openvino_layout_fallback(tmp_path: Path) -> None:
    """Under the 2022.3 layout (`openvino` without Core; the API in openvino.runtime) _ov and the runtime work."""
    xml = build_ir(tmp_path)
    code = textwrap.dedent("""
        import sys, types
        import numpy as np
        import openvino as real
        import openvino.preprocess as real_pre
        old = types.ModuleType("openvino")
        old.__path__ = []
        rt = types.ModuleType("openvino.runtime")
        for name in ("Core", "Model", "Type", "Layout", "PartialShape", "AsyncInferQueue", "get_version"):
            setattr(rt, name, getattr(real, name))
        old.runtime = rt
        old.preprocess = real_pre
        sys.modules.update({"openvino": old, "openvino.runtime": rt, "openvino.preprocess": real_pre})
        from edgematte.edge import _ov
        assert _ov.ov is rt, _ov.ov
        assert _ov.AsyncInferQueue is real.AsyncInferQueue and _ov.version()
        from edgematte.edge.runtime import load_model
        p = load_model(sys.argv[1])
        outs = list(p.predict_many([np.full((9, 7, 3), 200, np.uint8)] * 3, nireq=2))
        print("ok", outs[2].shape, round(float(outs[0].mean()), 4))
    """)
    result = subprocess.run([sys.executable, "-c", code, str(xml)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok (9, 7) {}".format(round(expected_prob(200), 4)) in result.stdout


def test_cpu_keeps_the_exported_precision_unless_asked(tmp_path: Path) -> None:
    """The CPU plugin's bf16 default (AVX512-BF16/AMX boxes) is overridden to f32; an explicit choice is kept."""
    from edgematte.edge._ov import Core, with_exact_precision

    core = Core()
    assert with_exact_precision(core, "AUTO", {"A": 1}) == {"A": 1}
    chosen = {"INFERENCE_PRECISION_HINT": "bf16"}
    assert with_exact_precision(core, "CPU", chosen) == chosen
    assert with_exact_precision(core, "CPU", {"EXECUTION_MODE_HINT": "PERFORMANCE"}) == {
        "EXECUTION_MODE_HINT": "PERFORMANCE"}
    assert with_exact_precision(core, "CPU").get("INFERENCE_PRECISION_HINT") == "f32"
    predictor = load_model(build_ir(tmp_path))
    assert "float32" in str(predictor.compiled.get_property("INFERENCE_PRECISION_HINT"))
