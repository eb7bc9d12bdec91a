"""`edgematte ship`: a trained checkpoint becomes a zoo model (INT8 or FP16 by measured quality) found by name."""
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nncf")

from conftest import make_scene  # noqa: E402
from test_data_layouts import make_pairs_dataset  # noqa: E402
from edgematte.edge.card import ModelCard  # noqa: E402
from edgematte.edge.cli import main  # noqa: E402
from edgematte.edge.runtime import load_model  # noqa: E402
from edgematte.edge.zoo import checkpoint_for  # noqa: E402
from edgematte.export.ship import holds_quality  # noqa: E402
from edgematte.train.checkpoint import load_checkpoint  # noqa: E402
from edgematte.train.trainer import TrainConfig, fit  # noqa: E402


def test_quality_rule():
    fp32 = {"mean": {"mae": 0.100, "iou": 0.80}}
    assert holds_quality({"mean": {"mae": 0.106, "iou": 0.795}}, fp32)
    assert not holds_quality({"mean": {"mae": 0.110, "iou": 0.80}}, fp32)  # MAE +10 %
    assert not holds_quality({"mean": {"mae": 0.100, "iou": 0.78}}, fp32)  # IoU -0.02


def test_ship_installs_a_loadable_zoo_model(tmp_path, monkeypatch, capsys):
    data = str(make_pairs_dataset(tmp_path / "data", n=6, size=(48, 64)))
    calib = make_pairs_dataset(tmp_path / "calib", n=4, size=(48, 64), seed=3) / "images"
    run = tmp_path / "run"
    torch.set_num_threads(1)
    fit(TrainConfig(model="mbv2_unet_sod", data=[data], val=[data], out=str(run), size=64, epochs=1, batch=2,
                    workers=0, log_every=1, model_config={"width": 0.35, "decoder_channels": [16, 16, 8, 8, 8]}))
    zoo = tmp_path / "zoo"
    code = main(["ship", str(run / "best.pt"), "--name", "mine", "--val", data, "--zoo", str(zoo),
                 "--calib", str(calib), "--work", str(tmp_path / "work"), "--fp16-max-diff", "0.03"])
    assert code == 0
    out = capsys.readouterr().out
    assert "installed" in out and "MINE INT8" in out.upper()
    record = json.loads((zoo / "mine" / "ship.json").read_text())
    assert record["chosen"] in ("int8", "fp16") and record["validation"]["images"] == 6
    assert record["chosen"] == ("int8" if record["int8_holds_quality"] else "fp16")
    assert set(record["summary"]) == {"fp32", "fp16", "int8"}
    assert record["export_parity"]["ir_fp16_vs_fp32"]["limits"]["max_abs_diff"] == 0.03  # --fp16-max-diff recorded
    assert record["bin_bytes"]["fp16"] < record["bin_bytes"]["fp32"]
    assert sorted(p.name for p in (zoo / "mine").iterdir()) == ["model.bin", "model.pt", "model.xml", "ship.json"]
    # the compact kit checkpoint ships too, opens like any checkpoint and scores like the FP32 IR
    assert record["checkpoint_bytes"] == (zoo / "mine" / "model.pt").stat().st_size
    assert record["checkpoint_bytes"] < 0.4 * (run / "best.pt").stat().st_size
    fp32_mae = record["summary"]["fp32"]["mean"]["mae"]
    assert record["checkpoint_summary"]["mean"]["mae"] == pytest.approx(fp32_mae, abs=0.02)
    assert checkpoint_for("mine", str(zoo)) == zoo / "mine" / "model.pt"
    assert load_checkpoint(str(zoo / "mine" / "model.pt"))[1]["card"]["name"] == "run"

    monkeypatch.setenv("EDGEMATTE_ZOO", str(zoo))
    model = load_model("mine")
    assert isinstance(model.card, ModelCard) and model.card.precision == record["chosen"].upper()
    image, _ = make_scene(50, 70, seed=5)
    alpha = model.predict(image)
    assert alpha.shape == (50, 70) and 0 <= alpha.min() <= alpha.max() <= 1
