"""`edgematte pipeline`: prune -> fine-tune -> export -> FP16 -> INT8 on a tiny model, resumable, with its report."""
import json

import pytest
import torch

pytest.importorskip("nncf")
pytest.importorskip("torch_pruning")

from edgematte.edge.cli import main  # noqa: E402
from edgematte.export.pipeline import Pipeline, PipelineConfig  # noqa: E402
from edgematte.train.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from edgematte.train.models import create_model  # noqa: E402
from test_data_layouts import make_pairs_dataset  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = {"width": 0.5, "decoder_channels": [32, 24, 16, 16, 16], "input_size": [64, 64]}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    torch.manual_seed(0)
    ckpt = root / "sod.pt"
    save_checkpoint(str(ckpt), create_model("mbv2_unet_sod", **TINY))
    data = make_pairs_dataset(root / "data", n=8, size=(48, 64))
    return root, str(ckpt), str(data)


def _config(root, ckpt, data, out="p", **kw):
    base = dict(checkpoint=ckpt, out=str(root / out), ratio=0.5, train=[data], val=data, finetune_epochs=1,
                batch=4, workers=0, calib=str(data + "/images"), subset=4, bench_runs=3, threads=1)
    base.update(kw)
    return PipelineConfig(**base)


def test_pipeline_runs_every_stage_and_reports(setup, capsys):
    root, ckpt, data = setup
    # a chunked fine-tune stops the pipeline before export; the same call continues it
    assert Pipeline(_config(root, ckpt, data), max_steps=1).run() is None
    state = json.loads((root / "p" / "pipeline.json").read_text())
    assert {"base", "base_int8", "prune", "pruned_raw"} <= set(state["stages"]) and "finetune" not in state["stages"]
    report = Pipeline(_config(root, ckpt, data)).run()
    labels = [r["label"] for r in report["rows"]]
    assert labels == ["unpruned FP32", "unpruned FP16", "unpruned INT8", "pruned FP32, before fine-tune",
                      "pruned FP32", "pruned FP16", "pruned INT8"]
    rows = {r["label"]: r for r in report["rows"]}
    base, final = rows["unpruned FP32"], rows["pruned INT8"]
    assert final["params"] < base["params"] and final["flops"] < base["flops"]
    assert rows["pruned FP32"]["ir_mb"] < base["ir_mb"] and final["ir_mb"] < rows["pruned FP32"]["ir_mb"]
    pruned_model, _ = load_checkpoint(json.loads((root / "p" / "pipeline.json").read_text())
                                      ["stages"]["finetune"]["checkpoint"])
    assert sum(p.numel() for p in pruned_model.parameters()) == final["params"]
    for row in report["rows"]:
        assert row["latency"]["median_ms"] > 0 and row["latency"]["count"] == 3
        assert 0 <= row["quality"]["mae"] <= 1 and "maxF" in row["quality"]
    assert base["speedup"] == 1.0 and base["mae_change"] == 0.0
    # ONNX Runtime on the FP32 rows' ONNX files, in the same rounds; the other precisions exist as IRs only
    ort = [label for label, r in rows.items() if "ort_latency" in r]
    assert ort == ["unpruned FP32", "pruned FP32, before fine-tune", "pruned FP32"]
    assert all(rows[label]["ort_latency"]["count"] == 3 and rows[label]["onnx"].endswith(".onnx") for label in ort)
    assert report["prune"]["params_after"] == rows["pruned FP32, before fine-tune"]["params"]
    assert report["budget"] is None  # no budget set: none reported
    assert json.loads((root / "p" / "pipeline.json").read_text())["stages"]["base"]["irs"]["fp32"].endswith(
        "base/model_fp32.xml")
    md = (root / "p" / "report.md").read_text()
    assert "| pruned INT8 |" in md and "Budgets" not in md and "issue" not in md.lower()
    assert "ONNX Runtime ms" in md
    assert (root / "p" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # re-running skips every finished stage and only re-measures
    capsys.readouterr()
    Pipeline(_config(root, ckpt, data)).run()
    out = capsys.readouterr().out
    assert out.count("done before: skipped") == 7


def test_pipeline_refuses_other_settings_in_the_same_folder(setup, capsys):
    root, ckpt, data = setup
    (root / "q").mkdir()
    (root / "q" / "pipeline.json").write_text(json.dumps({"config": vars(_config(root, ckpt, data, "q")),
                                                          "stages": {}}))
    code = main(["pipeline", ckpt, "-o", str(root / "q"), "--ratio", "0.3", "--train", data, "--val", data,
                 "--finetune-epochs", "1", "--batch", "4", "--calib", data + "/images", "--subset", "4"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and "other settings (ratio)" in err


def test_pipeline_needs_training_data_to_fine_tune(setup, capsys):
    root, ckpt, data = setup
    code = main(["pipeline", ckpt, "-o", str(root / "r"), "--val", data])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "--train" in err and not (root / "r" / "pipeline.json").exists()


def test_pipeline_marks_a_failed_fp16_and_goes_on_with_budgets(setup, capsys):
    """FP16 missing its limit: its row is marked failed, INT8 (from FP32) still runs; the user's budgets are checked."""
    root, ckpt, data = setup
    code = main(["pipeline", ckpt, "-o", str(root / "f"), "--no-prune", "--val", data, "--calib", data + "/images",
                 "--subset", "4", "--bench-runs", "3", "--threads", "1", "--fp16-max-diff", "1e-9",
                 "--target-speedup", "1000", "--max-loss", "0.5"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "| unpruned FP16 (failed) | " in captured.out and "| unpruned INT8 |" in captured.out
    assert "FP16 parity failed" in captured.out and "model_fp16.parity-failed.xml" in captured.out
    assert "Budgets, unpruned INT8 against unpruned FP32: speed-up" in captured.out
    assert "(budget at least 1000x): NOT met" in captured.out and "(budget at most +50.0 %)" in captured.out
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert any("model_fp16.parity-failed.xml: FP16 parity failed" in line for line in warnings), captured.err
    report = json.loads((root / "f" / "report.json").read_text())
    rows = {r["label"]: r for r in report["rows"]}
    assert "failed" in rows["unpruned FP16"] and "latency" not in rows["unpruned FP16"]
    assert rows["unpruned INT8"]["latency"]["count"] == 3 and report["budget"]["checks"]["speedup"]["met"] is False
    assert not (root / "f" / "base" / "model_fp16.xml").exists()


def test_pipeline_skips_int8_when_its_fp32_source_failed(setup, monkeypatch, capsys):
    from edgematte.export import parity

    root, ckpt, data = setup
    monkeypatch.setattr(parity, "ONNX_IR_MAX_ABS_DIFF", -1.0)  # every FP32 IR misses ONNX-vs-IR parity
    report = Pipeline(_config(root, ckpt, data, "s", prune=False, finetune_epochs=0)).run()
    rows = {r["label"]: r for r in report["rows"]}
    assert rows["unpruned INT8"]["failed"].startswith("not made: its FP32 source") and "failed" in rows["unpruned FP32"]
    assert report["baseline"] == "unpruned FP16" and rows["unpruned FP16"]["speedup"] == 1.0
    assert "[base_int8] skipped" in capsys.readouterr().err


def test_budgets_and_limits_are_checked_up_front(setup, capsys):
    root, ckpt, data = setup
    for extra, word in ((["--max-loss", "0.1"], "--val"), (["--target-speedup", "0", "--val", data], "positive"),
                        (["--fp16-max-diff", "-1"], "positive")):
        code = main(["pipeline", ckpt, "-o", str(root / "u"), "--no-prune"] + extra)
        err = capsys.readouterr().err.strip()
        assert code == 1 and word in err and err.count("\n") == 0, err
    assert not (root / "u").exists()


def test_a_shipped_checkpoint_brings_its_fp16_limit():
    from edgematte.edge.zoo import PACKAGE_DIR
    from edgematte.export.pipeline import shipped_fp16_limit

    record = json.loads((PACKAGE_DIR / "portrait" / "ship.json").read_text())["export_parity"]
    assert shipped_fp16_limit(str(PACKAGE_DIR / "portrait" / "model.pt")) == max(
        v["limits"]["max_abs_diff"] for k, v in record.items() if "fp16" in k)
    assert shipped_fp16_limit("runs/x/best.pt") is None
