"""`edgematte parity` and the CUDA reference path: ORT-CPU / TORCH-CPU references against IRs of one tiny exported
model, a perturbed IR that must fail, CUDA absent -> one line and its own exit status, bench's CUDA rows.

The model is mbv2_unet_sod at width 0.35 and 64x64, untrained (torch seed 0) with its 1x1 head scaled up so that
its maps are decisive (far from 0.5) and IoU@0.5 measures agreement instead of rounding noise.
"""
import json
import subprocess
import sys
import types

import cv2
import numpy as np
import onnx
import pytest
import torch

from conftest import make_scene
from test_data_layouts import make_pairs_dataset
from edgematte.edge.cli import main
from edgematte.edge.errors import DeviceError, InputError
from edgematte.export import ort_predictor, parity, reference
from edgematte.export.reference import CUDA_UNAVAILABLE_EXIT, ParityLimits, compare_maps, cuda_available

SIZE = [64, 64]
ORT_CUDA, ORT_CUDA_REASON = cuda_available("onnxruntime")
TORCH_CUDA, TORCH_CUDA_REASON = cuda_available("torch")
needs_ort_cuda = pytest.mark.skipif(not ORT_CUDA, reason="no CUDA for onnxruntime: " + ORT_CUDA_REASON)
needs_torch_cuda = pytest.mark.skipif(not TORCH_CUDA, reason="no CUDA for PyTorch: " + TORCH_CUDA_REASON)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """{"pt", "onnx", "fp32", "fp16", "perturbed", "images"}: one model as checkpoint, ONNX, IRs, and 3 scenes."""
    from edgematte.export.to_ir import export_ir
    from edgematte.export.to_onnx import export_onnx
    from edgematte.train.checkpoint import card_for, save_checkpoint
    from edgematte.train.models import create_model

    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("reference")
    torch.manual_seed(0)
    model = create_model("mbv2_unet_sod", input_size=SIZE, width=0.35).eval()
    with torch.no_grad():
        model.head.weight.mul_(40.0)
    save_checkpoint(str(out / "tiny.pt"), model, card_for(model, name="tiny"))
    info = export_onnx(model, str(out / "tiny.onnx"), SIZE)
    card = info["card"]
    files = {"pt": out / "tiny.pt", "onnx": out / "tiny.onnx"}
    for precision in ("fp32", "fp16"):
        files[precision] = out / "tiny_{}.xml".format(precision)
        export_ir(str(files["onnx"]), str(files[precision]), card, precision)
    proto = onnx.load(str(files["onnx"]))  # the same graph with the head's weights negated: a wrong deployment
    head = [node for node in proto.graph.node if node.op_type == "Conv"][-1]
    weight = next(t for t in proto.graph.initializer if t.name == head.input[1])
    weight.CopyFrom(onnx.numpy_helper.from_array(-onnx.numpy_helper.to_array(weight), weight.name))
    onnx.save(proto, str(out / "perturbed.onnx"))
    files["perturbed"] = out / "perturbed_fp32.xml"
    export_ir(str(out / "perturbed.onnx"), str(files["perturbed"]), card, "fp32")
    images = out / "images"
    images.mkdir()
    for seed in range(3):
        cv2.imwrite(str(images / "scene{}.png".format(seed)), make_scene(72, 96, seed=seed)[0])
    files["images"] = images
    return {k: str(v) for k, v in files.items()}


def _parity(capsys, *argv):
    """(exit status, stdout, stderr lines) of `edgematte parity ARGV`."""
    code = main(["parity"] + [str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def test_limits_are_export_fp16_limits():
    assert reference.MAX_ABS_DIFF == parity.FP16_MAX_ABS_DIFF and reference.MIN_IOU == parity.FP16_MIN_IOU
    assert ParityLimits().max_abs_diff == parity.FP16_MAX_ABS_DIFF


def test_ort_cpu_matches_fp32_ir(tiny, tmp_path, capsys):
    out = tmp_path / "parity.json"
    code, printed, err = _parity(capsys, tiny["onnx"], "--ref", "ort-cpu", "--vs", "CPU", "--data", tiny["images"],
                                 "--json", out)
    assert code == 0 and err == [] and "PASS" in printed and "scene0.png" in printed
    report = json.loads(out.read_text())
    assert set(report) == {"reference", "deployed", "task", "data", "notes", "limits", "per_image", "summary", "ok"}
    assert report["ok"] is True and report["task"] == "saliency" and report["notes"] == []
    assert report["reference"]["ref"] == "ORT-CPU" and "CPUExecutionProvider" in report["reference"]["runtime"]
    assert report["deployed"]["model"] == tiny["fp32"] and report["deployed"]["precision"] == "FP32"
    assert report["limits"] == {"max_abs_diff": parity.FP16_MAX_ABS_DIFF, "min_iou": 0.99, "min_argmax_agreement": 0.99}
    rows = report["per_image"]
    assert [r["image"] for r in rows] == ["scene0.png", "scene1.png", "scene2.png"]
    for row in rows:
        assert set(row) == {"image", "max_abs_diff", "mean_abs_diff", "iou", "ok"}
        assert row["max_abs_diff"] < 1e-4 and row["mean_abs_diff"] <= row["max_abs_diff"] and row["iou"] >= 0.99
    summary = report["summary"]
    assert summary["images"] == 3 and summary["failed"] == [] and summary["max_abs_diff"] < 1e-4
    # the maps are decisive, so the IoU above compared real foreground, not two empty maps
    alpha = reference.reference_predictor(tiny["onnx"], "ORT-CPU").predict(make_scene(72, 96, seed=0)[0])
    assert 0.05 < float((alpha >= 0.5).mean()) < 0.95 and float(np.abs(alpha - 0.5).mean()) > 0.1


def test_checkpoint_on_torch_cpu_matches_ir(tiny, tmp_path, capsys):
    out = tmp_path / "parity.json"
    code, printed, err = _parity(capsys, tiny["pt"], "--ref", "TORCH-CPU", "--ir", tiny["fp32"], "--data",
                                 tiny["images"], "--limit", "2", "--json", out)
    assert code == 0 and err == [] and "torch" in printed
    report = json.loads(out.read_text())
    assert report["reference"]["runtime"].startswith("torch ") and report["reference"]["device"] == "CPU"
    assert report["summary"]["images"] == 2 and report["summary"]["max_abs_diff"] < 1e-4


def test_fp16_ir_differs_measurably(tiny):
    report = reference.run_parity(tiny["onnx"], "ORT-CPU", ir=tiny["fp16"], data=tiny["images"])
    summary = report["summary"]
    assert report["deployed"]["precision"] == "FP16"
    assert 1e-6 < summary["max_abs_diff"] and 0 < summary["mean_abs_diff"] < summary["max_abs_diff"]


def test_perturbed_ir_fails_with_one_line_after_writing_json(tiny, tmp_path, capsys):
    out = tmp_path / "bad.json"
    code, printed, err = _parity(capsys, tiny["onnx"], "--ref", "ORT-CPU", "--ir", tiny["perturbed"], "--data",
                                 tiny["images"], "--json", out)
    assert code == 1 and "FAIL" in printed
    assert len(err) == 1 and "outside the limits" in err[0] and "perturbed_fp32.xml" in err[0]
    report = json.loads(out.read_text())
    assert report["ok"] is False and len(report["summary"]["failed"]) == 3
    assert report["summary"]["max_abs_diff"] > 0.02 and report["summary"]["min_iou"] < 0.99
    # looser limits turn the same numbers into a pass: the limits are what decides
    code, _, _ = _parity(capsys, tiny["onnx"], "--ref", "ORT-CPU", "--ir", tiny["perturbed"], "--data",
                         tiny["images"], "--max-diff", "1", "--min-iou", "0")
    assert code == 0


def test_default_ir_and_dataset_folder(tiny, tmp_path):
    data = make_pairs_dataset(tmp_path / "data", n=2, size=(40, 56))
    report = reference.run_parity(tiny["onnx"], "ORT-CPU", data=str(data))  # IR: tiny_fp32.xml next to tiny.onnx
    assert report["deployed"]["model"] == tiny["fp32"] and [r["image"] for r in report["per_image"]] == [
        "s000", "s001"]


@pytest.mark.skipif(ORT_CUDA and TORCH_CUDA, reason="a usable CUDA GPU is present")
def test_cuda_absent_is_one_line_and_distinct_exit(tiny, capsys):
    for model, usable in ((tiny["onnx"], ORT_CUDA), (tiny["pt"], TORCH_CUDA)):
        if usable:
            continue
        code, printed, err = _parity(capsys, model, "--ref", "CUDA", "--ir", tiny["fp32"], "--data", tiny["images"])
        assert code == CUDA_UNAVAILABLE_EXIT == 3 and printed == ""
        assert len(err) == 1 and err[0].startswith("edgematte: error: CUDA reference unavailable: "), err
    assert CUDA_UNAVAILABLE_EXIT not in (0, 1, 2)  # distinct from success, user errors and internal errors


def test_cuda_available_refuses_a_silent_cpu_fallback(monkeypatch):
    """onnxruntime-gpu listing CUDA but running the session on the CPU (libraries missing) is not CUDA."""
    class Session:
        def __init__(self, model, options, providers=None, enable_fallback=1):
            assert providers[0][0] == "CUDAExecutionProvider" and providers[0][1]["use_tf32"] == "0"
            assert enable_fallback == 0

        def get_providers(self):
            return ["CPUExecutionProvider"]

    fake = types.SimpleNamespace(__version__="9.9", get_available_providers=lambda: [
        "CUDAExecutionProvider", "CPUExecutionProvider"], SessionOptions=lambda: types.SimpleNamespace(),
        InferenceSession=Session)
    monkeypatch.setitem(sys.modules, "onnxruntime", fake)
    monkeypatch.setattr(reference, "_CUDA_CACHE", {})
    ok, reason = cuda_available("onnxruntime", "CUDA:1")
    assert ok is False and "fell back to CPUExecutionProvider" in reason
    with pytest.raises(DeviceError, match="fell back"):
        ort_predictor.create_session(b"model", "CUDA")


def test_device_and_reference_names():
    assert ort_predictor.parse_device("cuda:1") == ("CUDA", 1) and ort_predictor.parse_device("CPU") == ("CPU", 0)
    assert ort_predictor.providers_for("CUDA:1")[0] == ("CUDAExecutionProvider", {"use_tf32": "0", "device_id": "1"})
    assert ort_predictor.providers_for("CPU") == ["CPUExecutionProvider"]
    for bad in ("GPU", "CUDA:x", "MYRIAD"):
        with pytest.raises(DeviceError):
            ort_predictor.parse_device(bad)
    assert reference.parse_reference("cuda:2") == (reference.REFERENCES["CUDA"], 2)
    for bad in ("ORT-CPU:1", "TPU"):
        with pytest.raises(InputError):
            reference.parse_reference(bad)


def test_bad_requests_are_one_line(tiny, tmp_path, capsys):
    (tmp_path / "lonely.onnx").write_bytes(open(tiny["onnx"], "rb").read())
    cases = (([tiny["onnx"], "--ref", "TPU"], "TPU"),
             ([tiny["onnx"], "--ref", "TORCH-CPU"], "ORT-CPU"),
             ([tiny["pt"], "--ref", "ORT-CPU", "--ir", tiny["fp32"]], "TORCH-CPU"),
             ([tiny["fp32"], "--ref", "ORT-CPU"], "tiny_fp32.xml"),
             ([str(tmp_path / "lonely.onnx"), "--ref", "ORT-CPU"], "--ir"),
             ([tiny["onnx"], "--ref", "ORT-CPU", "--data", str(tmp_path / "none")], "none"),
             ([str(tmp_path / "missing.onnx"), "--ref", "ORT-CPU"], "missing.onnx"),
             ([tiny["onnx"], "--ref", "ORT-CPU", "--limit", "-1"], "--limit"))
    for argv, text in cases:
        code, _, err = _parity(capsys, *argv)
        assert code == 1 and len(err) == 1 and text in err[0], (argv, err)


def test_trimap_maps_report_argmax_agreement():
    rng = np.random.default_rng(0)
    a = rng.dirichlet([1, 1, 1], size=(20, 30)).astype(np.float32)
    same = compare_maps(a, a.copy(), trimap=True)
    assert same == {"max_abs_diff": 0.0, "mean_abs_diff": 0.0, "iou": 1.0, "argmax_agreement": 1.0}
    swapped = a[..., [2, 1, 0]]  # background and foreground exchanged
    row = compare_maps(a, swapped, trimap=True)
    assert row["argmax_agreement"] < 0.8 and row["max_abs_diff"] > 0.1
    assert not reference.passes(row, ParityLimits()) and reference.passes(same, ParityLimits())
    assert compare_maps(a[..., 0], np.full((20, 30), np.nan, np.float32))["max_abs_diff"] == float("inf")


def test_bench_reports_cuda_rows_unavailable(tiny, tmp_path, capsys):
    if ORT_CUDA or TORCH_CUDA:
        pytest.skip("a CUDA GPU is present: the CUDA rows run")
    out = tmp_path / "bench.json"
    code = main(["bench", tiny["onnx"], "-d", "CPU,CUDA", "--niter", "2", "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0 and captured.err == ""
    report = json.loads(out.read_text())
    assert [(r["label"], r["backend"]) for r in report["rows"]] == [("tiny [CPU]", "openvino")]
    (row,) = report["unavailable"]
    assert (row["label"], row["device"], row["backend"]) == ("tiny [CUDA] onnxruntime", "CUDA", "onnxruntime")
    # the reason is wrapped to the terminal's width: join the continuation lines back
    joined = " ".join(line.strip() for line in captured.out.splitlines())
    assert "tiny [CUDA] onnxruntime: unavailable: " + row["unavailable"] in joined
    for model, text in ((tiny["onnx"], "tiny [CUDA] onnxruntime"), (tiny["pt"], "tiny [CUDA] torch")):
        code = main(["bench", model, "-d", "CUDA", "--niter", "2"])  # the only device: a one-line error
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and text in err[0] and "CUDA" in err[0].split(text)[1], err


@needs_ort_cuda
def test_cuda_onnx_reference_matches_ir(tiny, tmp_path):
    report = reference.run_parity(tiny["onnx"], "CUDA", ir=tiny["fp32"], data=tiny["images"])
    assert "CUDAExecutionProvider" in report["reference"]["runtime"] and report["ok"]
    assert report["summary"]["max_abs_diff"] < 1e-3


@needs_torch_cuda
def test_cuda_checkpoint_reference_matches_ir(tiny):
    report = reference.run_parity(tiny["pt"], "CUDA", ir=tiny["fp32"], data=tiny["images"])
    assert report["reference"]["device"] == "CUDA" and report["ok"]
    assert report["summary"]["max_abs_diff"] < 1e-3


def test_import_is_light_and_help_documents_exit_status(capsys):
    code = ("import sys, edgematte.export.reference as r; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr[-2000:]
    with pytest.raises(SystemExit):
        main(["parity", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "3 (CUDA_UNAVAILABLE_EXIT)" in text and "ORT-CPU" in text and "TORCH-CPU" in text


def _tf32_leaves():
    """The leaf objects of torch's TF32 settings whose fp32_precision a reference may change."""
    backends = torch.backends
    return [getattr(backends.cudnn, "conv", None), getattr(backends.cudnn, "rnn", None), backends.cuda.matmul]


@pytest.fixture
def tf32_restored():
    """Put torch's TF32 settings back through torch's own API after the test (monkeypatch cannot undo these
    dynamically served attributes, and a half-restored state breaks every later legacy-flag read)."""
    leaves = [leaf for leaf in _tf32_leaves() if hasattr(leaf, "fp32_precision")]
    saved = [leaf.fp32_precision for leaf in leaves]
    yield
    for leaf, value in zip(leaves, saved):
        leaf.fp32_precision = value


def test_torch_cuda_reference_is_ieee_fp32(tf32_restored):
    """The PyTorch CUDA reference turns TF32 off (settable, and so testable, on a CPU-only build too)."""
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    if not hasattr(conv, "fp32_precision"):
        pytest.skip("PyTorch < 2.9: the legacy allow_tf32 flags are used")
    reference._torch_ieee_fp32()
    assert conv.fp32_precision == "ieee" and matmul.fp32_precision == "ieee"


def test_tf32_settings_are_restored_after_the_reference_test():
    """Runs after the test above in file order: the legacy flags read cleanly again (no mixed-API state)."""
    if not hasattr(torch.backends.cudnn.conv, "fp32_precision"):
        pytest.skip("PyTorch < 2.9")
    assert isinstance(torch.backends.cudnn.allow_tf32, bool)
    assert torch.backends.cudnn.conv.fp32_precision != "ieee"
