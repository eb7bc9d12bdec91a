"""Checkpoints: atomic save, weights_only load, round trip (also pruned), card, and one-line errors per bad file."""
import os

import pytest
import torch

from edgematte.edge.card import ModelCard
from edgematte.edge.errors import ModelFileError
from edgematte.train.checkpoint import FORMAT, card_for, load_checkpoint, save_checkpoint
from edgematte.train.models import create_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("u2netp", input_size=[256, 256]).eval()
    path = tmp_path_factory.mktemp("ckpt") / "u2netp.pt"
    save_checkpoint(str(path), model, card_for(model, name="tiny"), extra={"epoch": 7, "metrics": {"mae": 0.1}})
    return model, path


def test_round_trip(saved):
    model, path = saved
    raw = torch.load(str(path), weights_only=True)
    assert raw["format"] == FORMAT and raw["arch"] == "u2netp" and raw["epoch"] == 7
    assert raw["config"]["input_size"] == [256, 256]
    loaded, ckpt = load_checkpoint(str(path))
    assert not loaded.training and loaded.arch == "u2netp" and loaded.task == "saliency"
    assert loaded.config == model.config and ckpt["metrics"] == {"mae": 0.1}
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.deploy_forward(x), model.deploy_forward(x))
    assert [p.name for p in path.parent.iterdir()] == ["u2netp.pt"]  # no temp files left


def test_card(saved):
    model, path = saved
    card = ModelCard.from_dict(load_checkpoint(str(path))[1]["card"])
    assert (card.name, card.task, card.arch) == ("tiny", "saliency", "u2netp")
    assert card.input_size == [256, 256] and card.prune is None
    assert card.input == {"dtype": "f32", "layout": "NCHW", "color": "RGB", "normalised": True}
    assert card.normalisation.mean == [123.675, 116.28, 103.53] and card.normalisation.color == "RGB"
    assert card.config["input_size"] == [256, 256]
    modnet = card_for(create_model("modnet"))
    assert modnet.name == "modnet" and modnet.task == "alpha" and modnet.normalisation.std == [127.5] * 3


def test_pruned_model_round_trips_and_is_carded(tmp_path):
    from edgematte.train.models import apply_channels

    model = create_model("u2netp").eval()
    record = {"stage1.rebnconv1.conv_s1": [64, 8, 1], "stage1.rebnconv1.bn_s1": [8],
              "stage1.rebnconv2.conv_s1": [8, 16, 1], "stage1.rebnconv1d.conv_s1": [24, 64, 1]}
    apply_channels(model, record)  # pruned in place, config not told
    path = tmp_path / "pruned.pt"
    card = card_for(model)
    save_checkpoint(str(path), model, card)
    assert card.prune["channels"] == record and card.prune["params"] < 1131181
    loaded, _ = load_checkpoint(str(path))
    assert loaded.config.channels == record
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.deploy_forward(x), model.deploy_forward(x))


def test_save_is_atomic_when_writing_fails(saved, tmp_path, monkeypatch):
    model, path = saved
    target = tmp_path / "keep.pt"
    target.write_bytes(b"old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(str(target), model)
    assert target.read_bytes() == b"old" and os.listdir(str(tmp_path)) == ["keep.pt"]


def _write(path, data):
    path.write_bytes(data)
    return path


def _variant(saved, tmp_path, **changes):
    raw = torch.load(str(saved[1]), weights_only=True)
    raw.update(changes)
    path = tmp_path / "variant.pt"
    torch.save(raw, str(path))
    return path


@pytest.mark.parametrize("case, pattern", [
    ("missing", "no such checkpoint"),
    ("empty", "empty file"),
    ("truncated", "truncated or corrupt"),
    ("text", "not a PyTorch checkpoint"),
    ("pickled_module", "pickled Python objects"),
    ("bare_state_dict", "not an edgematte checkpoint"),
    ("unknown_arch", "unknown architecture 'resnet'"),
    ("bad_config", "bad model config"),
    ("wrong_weights", "weights do not fit model 'u2net'"),
    ("missing_weights", "missing"),
])
def test_bad_files_raise_one_line_errors_naming_the_file(saved, tmp_path, case, pattern):
    good = saved[1].read_bytes()
    state = torch.load(str(saved[1]), weights_only=True)["state_dict"]
    if case == "missing":
        path = tmp_path / "nope.pt"
    elif case == "empty":
        path = _write(tmp_path / "empty.pt", b"")
    elif case == "truncated":
        path = _write(tmp_path / "cut.pt", good[: len(good) // 2])
    elif case == "text":
        path = _write(tmp_path / "notes.pt", b"just some text\n")
    elif case == "pickled_module":
        path = tmp_path / "module.pt"
        torch.save({"model": torch.nn.Linear(2, 2)}, str(path))
    elif case == "bare_state_dict":
        path = tmp_path / "u2netp.pth"
        torch.save(state, str(path))
    elif case == "unknown_arch":
        path = _variant(saved, tmp_path, arch="resnet")
    elif case == "bad_config":
        path = _variant(saved, tmp_path, config={"input_size": [256, 256], "depth": 3})
    elif case == "wrong_weights":
        path = _variant(saved, tmp_path, arch="u2net")
    else:
        path = _variant(saved, tmp_path, state_dict={k: v for k, v in state.items() if "side1" not in k})
    with pytest.raises(ModelFileError, match=pattern) as info:
        load_checkpoint(str(path))
    message = str(info.value)
    assert str(path) in message and "\n" not in message
