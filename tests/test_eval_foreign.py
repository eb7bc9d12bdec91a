"""PreprocSpec JSON and validation, the shipped peer specs, and ForeignPredictor on tiny IR/ONNX models built here."""
import json
from pathlib import Path

import numpy as np
import pytest

from edgematte.edge.errors import InputError, ModelFileError
from edgematte.edge.foreign import ForeignPredictor, PreprocSpec, load_spec, shipped_specs

ov = pytest.importorskip("openvino")
ops = pytest.importorskip("openvino.opset8")

PEERS = {"mediapipe_selfie": "mediapipe_selfie.xml", "sinet": "sinet.onnx", "prisma": "prisma.onnx",
         "deeplab_mnv2": "deeplab_mnv2.onnx", "slimnet": "slimnet.tflite", "mnv3_unet": "mnv3_unet.tflite"}


def identity_ir(tmp_path: Path, shape, name: str = "id") -> Path:
    """An IR whose output is its input (x * 1): the prediction is then the normalised input channel."""
    x = ops.parameter(shape, ov.Type.f32, name="pixels")
    out = ops.multiply(x, ops.constant(np.float32(1.0)))
    out.output(0).get_tensor().set_names({"probs"})
    path = tmp_path / (name + ".xml")
    ov.save_model(ov.Model([out], [x], name), str(path))
    return path


def flat_image(b: int, g: int, r: int, h: int = 12, w: int = 10) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    image[...] = (b, g, r)
    return image


# -- the spec ------------------------------------------------------------------------------------
def test_spec_json_round_trip(tmp_path: Path) -> None:
    spec = PreprocSpec([320, 256], layout="nhwc", color="bgr", mean=[1, 2, 3], std=[4.0], scale=0.5,
                       activation="Softmax", channel=1, output_layout="NHWC", output_name="out", name="x", notes="n")
    assert spec.layout == "NHWC" and spec.color == "BGR" and spec.activation == "softmax"
    assert spec.std == [4.0, 4.0, 4.0]
    assert PreprocSpec.from_json(spec.to_json()) == spec
    spec.save(tmp_path / "s.json")
    assert PreprocSpec.load(tmp_path / "s.json") == spec
    assert json.loads((tmp_path / "s.json").read_text())["input_size"] == [320, 256]


@pytest.mark.parametrize("change, words", [
    ({"input_size": [256]}, "input_size"),
    ({"input_size": [0, 256]}, "input_size"),
    ({"layout": "CHW"}, "layout"),
    ({"color": "YUV"}, "color"),
    ({"activation": "relu"}, "activation"),
    ({"output_layout": "NC"}, "output_layout"),
    ({"std": [1, 0, 1]}, "std"),
    ({"mean": [1, 2]}, "mean"),
    ({"scale": 0}, "scale"),
    ({"channel": -1}, "channel"),
    ({"format": 9}, "format"),
    ({"colour": "RGB"}, "unknown spec key"),
])
def test_spec_errors_name_the_source(change, words) -> None:
    data = dict({"input_size": [256, 256]}, **change)
    with pytest.raises(ModelFileError, match=words) as info:
        PreprocSpec.from_dict(data, "my.json")
    assert str(info.value).startswith("my.json: ") and "\n" not in str(info.value)


def test_spec_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="input_size"):
        PreprocSpec.from_dict({"layout": "NCHW"})
    with pytest.raises(ModelFileError, match="JSON object"):
        PreprocSpec.from_json("[1, 2]")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ModelFileError, match="bad.json: not valid JSON"):
        PreprocSpec.load(bad)
    with pytest.raises(ModelFileError, match="missing.json"):
        PreprocSpec.load(tmp_path / "missing.json")
    with pytest.raises(ModelFileError, match="no shipped spec"):
        load_spec("no_such_peer")


def test_preprocess_layout_color_and_normalisation() -> None:
    image = flat_image(10, 20, 30)
    rgb = PreprocSpec([4, 6], layout="NCHW", color="RGB", mean=[0, 10, 20], std=[2, 2, 5], scale=1.0).preprocess(image)
    assert rgb.shape == (1, 3, 4, 6) and rgb.dtype == np.float32
    assert rgb[0, :, 0, 0].tolist() == [15.0, 5.0, -2.0]  # (30-0)/2, (20-10)/2, (10-20)/5
    bgr = PreprocSpec([4, 6], layout="NHWC", color="BGR", std=[255.0], scale=2.0).preprocess(image)
    assert bgr.shape == (1, 4, 6, 3)
    np.testing.assert_allclose(bgr[0, 0, 0], np.array([10, 20, 30]) / 255.0 * 2.0, rtol=1e-6)


def test_shipped_specs_cover_the_peers() -> None:
    assert set(PEERS) <= set(shipped_specs())
    for name in PEERS:
        spec = load_spec(name)
        assert spec.name == name and spec.notes
    assert load_spec("sinet").scale == pytest.approx(1 / 255.0)


# -- the predictor on tiny models ------------------------------------------------------------------
def test_identity_ir_nchw_no_activation(tmp_path: Path) -> None:
    model = identity_ir(tmp_path, [1, 3, 8, 8])
    spec = PreprocSpec([8, 8], layout="NCHW", color="RGB", std=[255.0], channel=0, name="tiny")
    predictor = ForeignPredictor(model, spec, threads=1)
    assert int(predictor._compiled.get_property("INFERENCE_NUM_THREADS")) == 1
    alpha = predictor.predict(flat_image(10, 20, 204, h=12, w=10))
    assert alpha.shape == (12, 10) and alpha.dtype == np.float32
    np.testing.assert_allclose(alpha, 204 / 255.0, rtol=1e-5)  # channel 0 of RGB is red
    card = predictor.card
    assert card.task == "alpha" and card.name == "tiny" and card.input_size == [8, 8]
    assert card.config["spec"] == spec.to_dict() and card.normalisation.std == [255.0] * 3


def test_identity_ir_nhwc_sigmoid_bgr(tmp_path: Path) -> None:
    model = identity_ir(tmp_path, [1, 8, 8, 3])
    spec = PreprocSpec([8, 8], layout="NHWC", color="BGR", mean=[100.0], std=[50.0], activation="sigmoid",
                       channel=1, output_layout="NHWC")
    alpha = ForeignPredictor(model, spec).predict(flat_image(0, 150, 0))
    np.testing.assert_allclose(alpha, 1 / (1 + np.exp(-1.0)), rtol=1e-5)  # green: (150-100)/50 = 1


def test_identity_ir_softmax_over_channels(tmp_path: Path) -> None:
    model = identity_ir(tmp_path, [1, 3, 8, 8])
    spec = PreprocSpec([8, 8], layout="NCHW", color="RGB", std=[100.0], activation="softmax", channel=2)
    alpha = ForeignPredictor(model, spec).predict(flat_image(200, 100, 0))  # logits R=0, G=1, B=2
    logits = np.array([0.0, 1.0, 2.0])
    np.testing.assert_allclose(alpha, np.exp(2.0) / np.exp(logits).sum(), rtol=1e-5)


def test_output_resized_back_bilinear(tmp_path: Path) -> None:
    model = identity_ir(tmp_path, [1, 3, 8, 8])
    spec = PreprocSpec([8, 8], layout="NCHW", color="RGB", std=[255.0])
    image = np.zeros((32, 48, 3), np.uint8)
    image[:, 24:, 2] = 255  # right half red
    alpha = ForeignPredictor(model, spec).predict(image)
    assert alpha.shape == (32, 48)
    assert alpha[:, :20].max() < 0.05 and alpha[:, 28:].min() > 0.95


def test_onnx_model_dynamic_input(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 3, "h", "w"])])
    path = tmp_path / "sig.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    spec = PreprocSpec([16, 16], layout="NCHW", color="RGB", mean=[0, 0, 128], std=[1, 1, 64], channel=2)
    alpha = ForeignPredictor(path, spec).predict(flat_image(192, 0, 0))  # blue: (192-128)/64 = 1, sigmoid in graph
    np.testing.assert_allclose(alpha, 1 / (1 + np.exp(-1.0)), rtol=1e-5)


def test_predict_many_keeps_order(tmp_path: Path) -> None:
    model = identity_ir(tmp_path, [1, 3, 8, 8])
    predictor = ForeignPredictor(model, PreprocSpec([8, 8], std=[255.0]))
    images = [flat_image(0, 0, 10 * i, h=9 + i, w=7) for i in range(7)]
    many = list(predictor.predict_many(iter(images), nireq=3))
    assert [m.shape for m in many] == [(9 + i, 7) for i in range(7)]
    for image, alpha in zip(images, many):
        np.testing.assert_allclose(alpha, predictor.predict(image), rtol=1e-6)


def test_predictor_errors(tmp_path: Path) -> None:
    model = identity_ir(tmp_path, [1, 3, 8, 8])
    with pytest.raises(ModelFileError, match="takes"):
        ForeignPredictor(model, PreprocSpec([16, 16]))
    with pytest.raises(ModelFileError, match="takes"):
        ForeignPredictor(model, PreprocSpec([8, 8], layout="NHWC"))
    with pytest.raises(ModelFileError, match="no input named"):
        ForeignPredictor(model, PreprocSpec([8, 8], input_name="nope"))
    with pytest.raises(ModelFileError, match="no output named"):
        ForeignPredictor(model, PreprocSpec([8, 8], output_name="nope"))
    assert ForeignPredictor(model, PreprocSpec([8, 8], input_name="pixels", output_name="probs"))
    with pytest.raises(ModelFileError, match="no such model file"):
        ForeignPredictor(tmp_path / "absent.onnx", PreprocSpec([8, 8]))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="junk.onnx"):
        ForeignPredictor(junk, PreprocSpec([8, 8]))
    predictor = ForeignPredictor(model, PreprocSpec([8, 8], channel=5))
    with pytest.raises(ModelFileError, match="channel 5"):
        predictor.predict(flat_image(1, 2, 3))
    with pytest.raises(InputError):
        predictor.predict(np.zeros((8, 8), np.uint8))


# -- the real peers ------------------------------------------------------------------------------
@pytest.mark.shared
@pytest.mark.parametrize("name", sorted(PEERS))
def test_peer_specs_on_close_up_portraits(name: str, shared_dir: Path) -> None:
    """Each shipped peer spec gives sensible masks: IoU > 0.8 on close-up portraits (README: 0.97-0.99)."""
    from edgematte.edge.datasets import find_pairs, read_pair
    from edgematte.edge.metrics import iou

    model = shared_dir / "peers" / PEERS[name]
    if not model.is_file():
        pytest.skip("peer model absent")
    pairs = [p for p in find_pairs(shared_dir / "data" / "portraits") if p.stem.startswith("ecoreal_")][:6]
    predictor = ForeignPredictor(model, load_spec(name))
    scores = []
    for pair in pairs:
        image, alpha = read_pair(pair)
        scores.append(iou(predictor.predict(image), alpha))
    assert np.mean(scores) > 0.8, scores
