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
    assert report["prune"]["params_after"] == rows["pruned FP32, before fine-tune"]["params"]
    assert report["target"]["row"] == "pruned INT8" and isinstance(report["target"]["met"], bool)
    md = (root / "p" / "report.md").read_text()
    assert "| pruned INT8 |" in md and "Target (issue 4)" in md
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
