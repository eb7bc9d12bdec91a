"""`edgematte bench`: the structure of its table, JSON, CSV and plot on tiny models (never timings)."""
import csv
import json

import cv2
import numpy as np
import pytest

from edge_tiny import build_ir, build_onnx
from test_data_layouts import make_pairs_dataset
from edgematte.edge._ov import Core
from edgematte.edge.bench import bench, build_rows
from edgematte.edge.cli import main
from edgematte.edge.errors import EdgematteError


def test_rows_measured_side_by_side(tmp_path, capsys):
    a = build_ir(tmp_path / "a", name="alpha_a", size=(32, 32))
    b = build_ir(tmp_path / "b", name="alpha_b", size=(48, 64))
    data = make_pairs_dataset(tmp_path / "data", n=4, size=(40, 50))
    out = tmp_path / "report"
    code = main(["bench", str(a), str(b), "--niter", "7", "--data", str(data), "--json", str(out) + ".json",
                 "--csv", str(out) + ".csv", "--plot", str(out) + ".png", "--nireq", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "alpha_a [CPU]" in printed and "x first" in printed and "IoU" in printed and "e2e ms" in printed
    report = json.loads((tmp_path / "report.json").read_text())
    rows = report["rows"]
    assert [r["label"] for r in rows] == ["alpha_a [CPU]", "alpha_b [CPU]"] and report["settings"]["rounds"] == 7
    for row in rows:
        lat = row["latency"]
        assert lat["count"] == 7 and lat["min_ms"] <= lat["median_ms"] <= lat["max_ms"] and lat["p90_ms"] > 0
        assert row["throughput_fps"] > 0 and row["size_mb"] > 0 and row["precision"] == "FP32"
        assert set(row["end_to_end"]) == {"preprocess_ms", "inference_ms", "postprocess_ms", "total_ms"}
        assert 0 <= row["quality"]["iou"] <= 1 and 0 <= row["quality"]["mae"] <= 1
    assert rows[0]["ratio_to_first"] == 1.0
    with open(str(tmp_path / "report.csv")) as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 2 and "latency.median_ms" in table[0] and "quality.iou" in table[0]
    plot = cv2.imread(str(tmp_path / "report.png"))
    assert plot is not None and plot.shape[2] == 3 and plot.std() > 1


def test_data_filter_picks_the_pairs_before_the_limit(tmp_path, capsys):
    a = build_ir(tmp_path / "a", name="alpha_a", size=(32, 32))
    data = make_pairs_dataset(tmp_path / "data", n=5, size=(40, 50))  # stems s000 .. s004
    report = bench([str(a)], niter=2, data=str(data), data_limit=1, data_filter=["s00[34]"])
    assert report["settings"]["data_images"] == 1 and report["settings"]["data_filter"] == ["s00[34]"]
    report = bench([str(a)], niter=2, data=str(data), data_filter=["s00[34]"])
    assert report["settings"]["data_images"] == 2
    assert main(["bench", str(a), "--niter", "2", "--data", str(data), "--data-filter", "nobody_*"]) != 0
    err = capsys.readouterr().err
    assert "nobody_*" in err and "Traceback" not in err


def test_precision_choice_reaches_the_compiled_model(tmp_path):
    a = build_ir(tmp_path / "a", name="alpha_a", size=(32, 32))
    hints = []
    for precision in ("bf16", ""):
        row = build_rows([str(a)], ["CPU"], precision=precision)[0]
        row.load(np.zeros((32, 32, 3), np.uint8))
        hints.append(str(row.predictor.compiled.get_property("INFERENCE_PRECISION_HINT")))
    assert "float32" in hints[1]
    if "BF16" in [str(c) for c in Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]:
        assert "bfloat16" in hints[0]  # where the CPU has no bf16 OpenVINO falls back to f32
    assert bench([str(a)], niter=2, precision="bf16")["settings"]["precision"] == "bf16"


def test_onnxruntime_row_and_time_budget(tmp_path):
    pytest.importorskip("onnxruntime")
    onnx = build_onnx(tmp_path, name="tiny", size=(32, 40))
    report = bench([str(onnx)], vs=["onnxruntime"], seconds=0.2)
    backends = [r["backend"] for r in report["rows"]]
    assert backends == ["openvino", "onnxruntime"] and report["settings"]["rounds"] >= 1
    image = np.full((32, 40, 3), 200, np.uint8)
    rows = build_rows([str(onnx)], ["CPU"], ["onnxruntime"])
    for row in rows:
        row.load(image)
    a, b = (row.predictor.predict(image) for row in rows)
    assert np.abs(a - b).max() < 1e-4  # the same ONNX file through OpenVINO and ONNX Runtime


def test_bad_requests_are_one_line(tmp_path, capsys):
    a = build_ir(tmp_path, size=(16, 16))
    for argv, text in ((["bench", str(a), "-d", "NOPE"], "NOPE"), (["bench", str(a), "--vs", "tensorrt"], "tensorrt"),
                       (["bench", str(tmp_path / "none.xml")], "none.xml")):
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and text in err[0], err
    with pytest.raises(SystemExit) as info:  # option ranges are argparse's: one line, exit 2
        main(["bench", str(a), "--niter", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "--niter" in err[0], err
    with pytest.raises(EdgematteError, match="nothing to measure"):
        build_rows([str(a)], ["CUDA"])


def test_cuda_rows_go_through_onnxruntime_once(tmp_path):
    onnx = build_onnx(tmp_path, name="tiny", size=(32, 40))
    rows = build_rows([str(onnx)], ["CPU", "CUDA:0"], ["onnxruntime"])
    assert [(r.label, r.device, r.backend) for r in rows] == [
        ("tiny [CPU]", "CPU", "openvino"), ("tiny [CPU] onnxruntime", "CPU", "onnxruntime"),
        ("tiny [CUDA:0] onnxruntime", "CUDA:0", "onnxruntime")]  # -d CUDA alone already gives the ORT row
    assert [r.backend for r in build_rows([str(onnx)], ["CUDA"])] == ["onnxruntime"]


def test_absent_cuda_is_a_row_note_not_a_crash(tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu installed: its CUDA row may run")
    onnx = build_onnx(tmp_path, name="tiny", size=(32, 40))
    report = bench([str(onnx)], ["CPU", "CUDA"], niter=2)
    assert [r["label"] for r in report["rows"]] == ["tiny [CPU]"]
    (row,) = report["unavailable"]
    assert row["label"] == "tiny [CUDA] onnxruntime" and "CUDAExecutionProvider" in row["unavailable"]
    assert main(["bench", str(onnx), "-d", "CUDA", "--niter", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA" in err[0]


def test_foreign_onnx_with_a_spec_gets_no_kit_onnxruntime_row(tmp_path):
    """--vs onnxruntime adds rows for kit ONNX files only; PATH@SPEC is fed by its spec through OpenVINO."""
    onnx = build_onnx(tmp_path, name="tiny", size=(32, 40))
    spec = tmp_path / "spec.json"
    spec.write_text('{"name": "peer", "input_size": [32, 40], "layout": "NCHW", "color": "RGB", "scale": 255.0}')
    rows = build_rows([str(onnx) + "@" + str(spec), str(onnx)], ["CPU"], ["onnxruntime"])
    assert [(r.label, r.backend) for r in rows] == [("tiny [CPU]", "openvino"), ("tiny [CPU]", "openvino"),
                                                    ("tiny [CPU] onnxruntime", "onnxruntime")]


def test_subset_flags_pick_the_data_pairs(tmp_path, capsys):
    a = build_ir(tmp_path / "a", name="alpha_a", size=(32, 32))
    data = make_pairs_dataset(tmp_path / "data", n=5, size=(40, 50))  # stems s000 .. s004
    out = tmp_path / "r.json"
    assert main(["bench", str(a), "--niter", "2", "--data", str(data), "--include", "s00[134]", "--exclude", "s001",
                 "--limit", "1", "--json", str(out)]) == 0
    settings = json.loads(out.read_text())["settings"]
    assert settings["data_images"] == 1 and settings["subset"] == {"include": ["s00[134]"], "exclude": ["s001"],
                                                                   "limit": 1}
    assert capsys.readouterr().err == ""
    assert main(["bench", str(a), "--niter", "2", "--data", str(data), "--data-filter", "s00[34]", "--data-limit", "1",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["settings"]["data_images"] == 1
    err = capsys.readouterr().err
    assert "--data-filter is deprecated; use --include GLOB" in err and "--data-limit is deprecated" in err


def _long_named_models(tmp_path):
    names = ["mobilenetv2_unet_portrait_pruned_int8", "u2netp_salient_objects_fp16_reference"]
    return [str(build_ir(tmp_path / n, name=n, size=(32, 32))) for n in names]


def test_table_fits_100_columns_and_wide_shows_every_column(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # not a terminal: 100 columns
    models = _long_named_models(tmp_path)
    data = make_pairs_dataset(tmp_path / "data", n=2, size=(40, 50))
    assert main(["bench"] + models + ["--niter", "3", "--data", str(data)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in printed) <= 100, printed
    header = printed[0].split()
    assert header[:2] == ["model", "prec"] and "IoU" in header and "e2e" in header and "load" not in header
    assert printed[2].startswith("mobilenetv2") and "..." in printed[2] and "[CPU]" in printed[2]
    assert "--wide" in printed[-1]
    assert main(["bench"] + models + ["--niter", "3", "--data", str(data), "--wide"]) == 0
    wide = capsys.readouterr().out.splitlines()
    assert all(h in wide[0] for h in ("backend", "load s", "first ms", "p90", "pre ms", "infer ms", "post ms"))
    assert "mobilenetv2_unet_portrait_pruned_int8 [CPU]" in wide[2]


def test_plot_labels_never_collide(tmp_path):
    from edgematte.edge.bench import _overlaps, place_labels, write_plot

    row = {"latency": {"median_ms": 3.0}, "quality": {"iou": 0.7}}
    rows = [dict(row, label="model_{} [CPU]".format(i)) for i in range(8)]  # all on one spot
    rows.append(dict(row, label="far_off [CPU]", latency={"median_ms": 30.0}))
    boxes = write_plot({"rows": rows}, str(tmp_path / "plot.png"))
    assert len(boxes) == 9 and cv2.imread(str(tmp_path / "plot.png")).shape == (560, 900, 3)
    for i, a in enumerate(boxes):
        assert 0 <= a[0] and a[0] + a[2] <= 900 and 0 <= a[1] and a[1] + a[3] <= 560
        assert not any(_overlaps(a, b, 0) for b in boxes[i + 1:])
    points = [(890, 10)] * 5  # in a corner: labels go left and down, still inside
    for box in place_labels(points, [(120, 12)] * 5, (0, 0, 900, 560)):
        assert box[0] >= 0 and box[0] + box[2] <= 900 and box[1] >= 0
