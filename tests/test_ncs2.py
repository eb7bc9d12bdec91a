"""NCS2: the lint fails on dynamic shapes, opset11+ ops and unsupported layers, and passes on `--target ncs2`."""
import numpy as np
import pytest

from edge_tiny import IR_INPUT, build_ir
from edgematte.edge._ov import ov
from edgematte.edge.card import ModelCard, save_ir
from edgematte.edge.cli import main
from edgematte.edge.ncs2 import lint_ir


def _save(model, folder, name="m", fp16=True):
    card = ModelCard(name=name, task="saliency", arch="toy", input_size=[16, 16], input=dict(IR_INPUT))
    xml = folder / (name + ".xml")
    save_ir(model, str(xml), card, compress_to_fp16=fp16)
    return xml


def _net(folder, last):
    """u8 [1,16,16,3] -> NCHW float -> conv 3->8 -> `last(x)` -> 1 channel sigmoid."""
    op = ov.opset8
    param = op.parameter([1, 16, 16, 3], ov.Type.u8, name="image")
    x = op.transpose(op.convert(param, "f32"), np.array([0, 3, 1, 2], dtype=np.int64))
    w = np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.1
    x = op.relu(op.convolution(x, op.constant(w), [1, 1], [1, 1], [1, 1], [1, 1]))
    x = last(x)
    head = np.full((1, int(x.get_output_shape(0)[1]), 1, 1), 0.1, dtype=np.float32)
    out = op.sigmoid(op.convolution(x, op.constant(head), [1, 1], [0, 0], [0, 0], [1, 1]))
    return _save(ov.Model([out], [param], "net"), folder, name=last.__name__)


def plain(x):
    return x


def upsample11(x):
    return ov.opset11.interpolate(x, np.array([32, 32], dtype=np.int64), "linear_onnx", "sizes",
                                  axes=np.array([2, 3], dtype=np.int64))


def deconv(x):
    w = np.full((8, 4, 2, 2), 0.05, dtype=np.float32)
    return ov.opset1.convolution_backprop_data(x, ov.opset1.constant(w), [2, 2])


def test_lint_passes_a_plain_fp16_net(tmp_path, capsys):
    xml = _net(tmp_path, plain)
    assert lint_ir(str(xml)) == []
    assert main(["check-ncs2", str(xml)]) == 0 and "fit for NCS2" in capsys.readouterr().out


@pytest.mark.parametrize("last,rule,text", [(upsample11, "opset", "opset11"),
                                            (deconv, "unsupported", "transposed convolution")])
def test_lint_names_each_offending_op(tmp_path, capsys, last, rule, text):
    xml = _net(tmp_path, last)
    findings = lint_ir(str(xml))
    assert [f["rule"] for f in findings] == [rule] and text in findings[0]["detail"]
    assert main(["check-ncs2", str(xml)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and text in err[0] and "not fit for NCS2" in err[1]


def test_lint_fails_dynamic_shapes_and_fp32_weights(tmp_path):
    dynamic = build_ir(tmp_path / "d", dynamic=True)
    assert "static-shape" in {f["rule"] for f in lint_ir(str(dynamic))}
    fp32 = _save(_fp32_model(), tmp_path, name="fp32", fp16=False)
    assert "fp16-weights" in {f["rule"] for f in lint_ir(str(fp32))}
    assert main(["check-ncs2", str(tmp_path / "missing.xml")]) == 1


def _fp32_model():
    param = ov.opset8.parameter([1, 16, 16, 3], ov.Type.u8, name="image")
    x = ov.opset8.transpose(ov.opset8.convert(param, "f32"), np.array([0, 3, 1, 2], dtype=np.int64))
    w = ov.opset8.constant(np.ones((8, 3, 3, 3), np.float32))
    return ov.Model([ov.opset8.convolution(x, w, [1, 1], [1, 1], [1, 1], [1, 1])], [param], "fp32")


def test_export_target_ncs2_rewrites_and_passes(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from edgematte.edge.runtime import load_model
    from edgematte.export.api import export_model
    from edgematte.train.checkpoint import save_checkpoint
    from edgematte.train.models import create_model

    torch.manual_seed(0)
    model = create_model("mbv2_unet_sod", width=0.35, decoder_channels=[16, 16, 8, 8, 8], input_size=[64, 64])
    head = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():  # a decisive random net: outputs far from 0.5, so IoU@0.5 measures the rewrite, not noise
        head.weight.mul_(30.0)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(str(ckpt), model.eval())
    report = export_model(str(ckpt), str(tmp_path / "out"), formats=("ir",), precisions=("fp32",), target="ncs2",
                          images="synthetic", image_count=2)
    ncs2 = tmp_path / "out" / "model_ncs2.xml"
    assert report.ir["ncs2"]["rewrites"].get("Interpolate", 0) >= 4
    assert lint_ir(str(ncs2)) == [] and lint_ir(str(tmp_path / "out" / "model_fp32.xml"))  # the plain IR fails
    assert report.parity["ir_ncs2_vs_fp32"]["ok"]
    predictor = load_model(str(ncs2))
    assert predictor.card.precision == "FP16" and "NCS2 target" in predictor.card.notes
    assert main(["check-ncs2", str(ncs2)]) == 0
    capsys.readouterr()
    assert main(["export", str(ckpt), "-o", str(tmp_path / "dyn"), "--target", "ncs2", "--dynamic"]) == 1
    assert "static shapes" in capsys.readouterr().err
