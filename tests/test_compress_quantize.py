"""`edgematte quantize`: NNCF INT8 of a small conv IR calibrated on generated images; card, hash, agreement, errors."""
import json

import cv2
import numpy as np
import pytest

pytest.importorskip("nncf")

from conftest import make_scene  # noqa: E402
from edge_tiny import IR_INPUT  # noqa: E402
from edgematte.compress.quantize import CalibrationError, quantize_ir  # noqa: E402
from edgematte.edge._ov import Core, ov, with_exact_precision  # noqa: E402
from edgematte.edge.card import ModelCard, save_ir, sha256_file  # noqa: E402
from edgematte.edge.cli import main  # noqa: E402
from edgematte.edge.runtime import load_model  # noqa: E402

SIZE = (48, 64)


def conv_ir(folder, name="convnet"):
    """u8 BGR NHWC -> two 3x3 convs (ReLU) -> 1x1 conv -> sigmoid: a real conv net NNCF can quantize."""
    rng = np.random.default_rng(0)
    op = ov.opset8
    param = op.parameter(ov.PartialShape([1, SIZE[0], SIZE[1], 3]), ov.Type.u8, name="image")
    x = op.transpose(op.convert(param, "f32"), np.array([0, 3, 1, 2], dtype=np.int64))
    x = op.multiply(op.subtract(x, np.float32(128.0)), np.float32(1 / 64.0))
    for cin, cout in ((3, 16), (16, 16)):
        weights = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
        x = op.relu(op.convolution(x, op.constant(weights), [1, 1], [1, 1], [1, 1], [1, 1]))
    head = (rng.standard_normal((1, 16, 1, 1)) * 0.3).astype(np.float32)
    out = op.sigmoid(op.convolution(x, op.constant(head), [1, 1], [0, 0], [0, 0], [1, 1]))
    model = ov.Model([out], [param], name)
    card = ModelCard(name=name, task="saliency", arch="convnet", input_size=list(SIZE), input=dict(IR_INPUT))
    xml = folder / (name + "_fp32.xml")
    save_ir(model, str(xml), card)
    return xml


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib")
    for seed in range(12):
        image, _ = make_scene(60 + seed, 80, seed=seed)
        cv2.imwrite(str(folder / "scene{:02d}.png".format(seed)), image)
    (folder / "notes.txt").write_text("not an image: ignored by suffix")
    return folder


def test_quantize_ir_writes_a_self_describing_int8_ir(tmp_path, calib):
    source = conv_ir(tmp_path)
    out = tmp_path / "q" / "convnet_int8.xml"
    result = quantize_ir(str(source), str(out), calib=str(calib), subset=8)
    assert result["calibration_images"] == 8 and result["fake_quantize_ops"] >= 3
    card = ModelCard.read_rt_info(Core().read_model(str(out)))
    assert card.precision == "INT8" and card.task == "saliency" and card.input_size == list(SIZE)
    assert card.weights_sha256 == sha256_file(str(out.with_suffix(".bin"))) and "nncf" in card.tools
    assert "convnet_fp32.xml" in card.notes and "8 calibration images" in card.notes
    assert sorted(p.name for p in out.parent.iterdir()) == ["convnet_int8.bin", "convnet_int8.xml"]  # no temp left
    image, _ = make_scene(70, 90, seed=42)
    fp32, int8 = load_model(str(source)).predict(image), load_model(str(out)).predict(image)
    assert int8.shape == fp32.shape == (70, 90)
    assert 0 < np.abs(fp32 - int8).max() < 0.1  # quantized for real (not a copy), yet close


def test_cli_quantize_reports_agreement(tmp_path, calib, capsys):
    source = conv_ir(tmp_path)
    code = main(["quantize", str(source), "-o", str(tmp_path / "out"), "--calib", str(calib), "--subset", "6"])
    assert code == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "convnet_int8.xml" in printed and "IoU@0.5" in printed
    report = json.loads((tmp_path / "out" / "quantize_report.json").read_text())
    assert report["calibration_images"] == 6 and report["card"]["precision"] == "INT8"
    agree = report["agreement_with_source"]
    assert agree["images"] == 12 and 0.02 < agree["max_abs_diff"] < 0.1  # the toy hovers near 0.5: IoU says little
    assert 0 <= agree["min_iou"] <= agree["mean_iou"] <= 1
    # it moved further than FP16 may: one warning line on stderr pointing at --max-drop, the same text in the report
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0] == "warning: " + report["warning"], captured.err
    assert "beyond the FP16 parity limits" in lines[0] and "--max-drop" in lines[0]
    assert "{:.3f}".format(agree["max_abs_diff"]) in lines[0]


def test_departure_warning_follows_the_fp16_limits():
    from edgematte.compress import cli
    from edgematte.export import parity

    assert (cli.FP16_MAX_ABS_DIFF, cli.FP16_MIN_IOU) == (parity.FP16_MAX_ABS_DIFF, parity.FP16_MIN_IOU)
    close = {"images": 16, "max_abs_diff": 0.01, "min_iou": 0.995}
    assert cli.departure_warning(close) is None
    far = dict(close, max_abs_diff=0.29, min_iou=0.83)
    assert "0.290 > {:g}".format(cli.FP16_MAX_ABS_DIFF) in cli.departure_warning(far) and "0.830 < 0.99" in cli.departure_warning(far)
    assert cli.departure_warning(dict(close, min_iou=0.95)) is not None
    assert cli.departure_warning(far, guarded=True) is None  # --max-drop held the quality: nothing to point at


def test_bad_calibration_or_model_is_one_line_and_writes_nothing(tmp_path, calib, capsys):
    source = conv_ir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CalibrationError, match="no calibration images"):
        quantize_ir(str(source), str(tmp_path / "x" / "a_int8.xml"), calib=str(empty))
    assert not (tmp_path / "x").exists()
    assert main(["quantize", str(source), "-o", str(tmp_path / "y"), "--calib", str(empty)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no calibration images" in err[0] and "Traceback" not in err[0]
    broken = tmp_path / "broken.xml"
    broken.write_text("<net>")
    assert main(["quantize", str(broken), "-o", str(tmp_path / "z"), "--calib", str(calib)]) == 1
    assert "broken.xml" in capsys.readouterr().err
    assert not (tmp_path / "z" / "broken_int8.xml").exists()


@pytest.fixture(scope="module")
def val(tmp_path_factory):
    from test_data_layouts import make_pairs_dataset

    return make_pairs_dataset(tmp_path_factory.mktemp("val") / "v", n=10, size=(60, 80))


def test_accuracy_control_keeps_the_drop_within_budget(tmp_path, calib, val):
    source = conv_ir(tmp_path)
    plain = quantize_ir(str(source), str(tmp_path / "p" / "c_int8.xml"), calib=str(calib), subset=8)
    loose = quantize_ir(str(source), str(tmp_path / "l" / "c_int8.xml"), calib=str(calib), subset=8,
                        max_drop=0.5, val=str(val))
    tight = quantize_ir(str(source), str(tmp_path / "t" / "c_int8.xml"), calib=str(calib), subset=8,
                        max_drop=0.0, val=str(val))
    for result in (loose, tight):
        control = result["accuracy_control"]
        assert control["validation_images"] == 10 and control["metric"] == "1 - MAE"
        assert 0.0 < control["score_int8"] <= 1.0 and 0.0 < control["score_source"] <= 1.0
        assert control["drop"] <= control["max_drop"] + 1e-6  # the budget holds on the validation set
    assert loose["fake_quantize_ops"] == plain["fake_quantize_ops"]  # nothing to restore within a loose budget
    if plain_drop(source, tmp_path / "p" / "c_int8.xml", val) > 1e-6:  # plain INT8 lost quality: some reverted
        assert tight["fake_quantize_ops"] < plain["fake_quantize_ops"]
    assert "accuracy control" in ModelCard.read_rt_info(Core().read_model(str(tmp_path / "t" / "c_int8.xml"))).notes


def plain_drop(source, int8, val) -> float:
    from edgematte.compress.accuracy import validation_items, validation_score

    card = ModelCard.read_rt_info(Core().read_model(str(source)))
    items = validation_items(card, str(val))
    core = Core()
    exact = with_exact_precision(core, "CPU")
    return (validation_score(core.compile_model(str(source), "CPU", exact), items, card)[0]
            - validation_score(core.compile_model(str(int8), "CPU", exact), items, card)[0])


def test_max_drop_needs_validation_data(tmp_path, calib, capsys):
    source = conv_ir(tmp_path)
    assert main(["quantize", str(source), "-o", str(tmp_path / "o"), "--calib", str(calib), "--max-drop",
                 "0.01"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-drop needs --val" in err[0]
    assert not (tmp_path / "o" / "convnet_int8.xml").exists()


def conv_onnx(folder, name="convnet"):
    """The same kind of conv net as an ONNX file with the card in its metadata, as `edgematte export` writes:
    normalised f32 RGB NCHW in, two 3x3 convs (ReLU), a 1x1 conv, sigmoid."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from edge_tiny import ONNX_INPUT

    rng = np.random.default_rng(0)
    h, w = SIZE
    inits, nodes, x = [], [], "x"
    for i, (cin, cout) in enumerate(((3, 16), (16, 16))):
        weights = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
        inits.append(numpy_helper.from_array(weights, "w{}".format(i)))
        nodes += [helper.make_node("Conv", [x, "w{}".format(i)], ["c{}".format(i)], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", ["c{}".format(i)], ["r{}".format(i)])]
        x = "r{}".format(i)
    inits.append(numpy_helper.from_array((rng.standard_normal((1, 16, 1, 1)) * 0.3).astype(np.float32), "head"))
    nodes += [helper.make_node("Conv", [x, "head"], ["logit"]), helper.make_node("Sigmoid", ["logit"], ["y"])]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, h, w])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    card = ModelCard(name=name, task="saliency", arch="convnet", input_size=list(SIZE), input=dict(ONNX_INPUT))
    model.metadata_props.add(key="edgematte.card", value=card.to_json())
    path = folder / (name + ".onnx")
    onnx.save(model, str(path))
    return path


def test_quantize_takes_the_onnx_file_too(tmp_path, calib, capsys):
    source = conv_onnx(tmp_path)
    code = main(["quantize", str(source), "-o", str(tmp_path / "out"), "--calib", str(calib), "--subset", "6"])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "out" / "convnet_int8.xml"
    card = ModelCard.read_rt_info(Core().read_model(str(out)))
    assert card.precision == "INT8" and card.input == load_model(str(source)).card.input and "convnet.onnx" in card.notes
    report = json.loads((tmp_path / "out" / "quantize_report.json").read_text())
    assert report["fake_quantize_ops"] >= 3 and report["source_bin_bytes"] == source.stat().st_size
    image, _ = make_scene(70, 90, seed=42)
    reference, int8 = load_model(str(source)).predict(image), load_model(str(out)).predict(image)
    assert 0 < np.abs(reference - int8).max() < 0.1  # quantized for real, still the same network


def test_onnx_without_a_card_is_one_line(tmp_path, calib, capsys):
    onnx = pytest.importorskip("onnx")
    source = conv_onnx(tmp_path)
    model = onnx.load(str(source))
    del model.metadata_props[:]
    onnx.save(model, str(source))
    code = main(["quantize", str(source), "-o", str(tmp_path / "out"), "--calib", str(calib)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "convnet.onnx: carries no edgematte model card" in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
