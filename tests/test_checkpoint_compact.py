"""Compact kit checkpoints (int8 weights per output channel): what the zoo ships next to each IR."""

import pytest
import torch

from edgematte.edge.errors import ModelFileError
from edgematte.train.checkpoint import (WEIGHT_CODEC, card_for, load_checkpoint, read_checkpoint,
                                        save_checkpoint)
from edgematte.train.models import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = {"width": 0.5, "decoder_channels": [32, 24, 16, 16, 16], "input_size": [64, 64]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny sod model with non-trivial BatchNorm statistics, as a full kit checkpoint."""
    root = tmp_path_factory.mktemp("ship")
    torch.manual_seed(0)
    model = create_model("mbv2_unet_sod", **TINY)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 3, 64, 64))
    path = root / "best.pt"
    save_checkpoint(str(path), model.eval(), card_for(model, name="tiny"), extra={"metrics": {"val_mae": 0.2}})
    return root, path


def test_compact_checkpoint_is_small_and_expands_to_nearly_the_same_model(trained, tmp_path):
    root, path = trained
    model, ckpt = load_checkpoint(str(path))
    compact = tmp_path / "compact.pt"
    save_checkpoint(str(compact), model, card_for(model, name="tiny"), extra={"metrics": ckpt["metrics"]},
                    compact=True)
    raw = torch.load(str(compact), weights_only=True)
    assert raw["weights_codec"] == WEIGHT_CODEC and all(q.dtype == torch.int8 for q in raw["qweights"].values())
    assert compact.stat().st_size < 0.4 * path.stat().st_size
    expanded = read_checkpoint(str(compact))
    assert "qweights" not in expanded and expanded["metrics"] == {"val_mae": 0.2}
    for name, tensor in ckpt["state_dict"].items():
        got = expanded["state_dict"][name]
        assert got.shape == tensor.shape and got.dtype == tensor.dtype
        if tensor.is_floating_point() and tensor.dim() >= 2:  # int8: within half a step of each channel's scale
            step = tensor.reshape(tensor.shape[0], -1).abs().amax(1) / 127
            err = (got - tensor).reshape(tensor.shape[0], -1).abs().amax(1)
            assert torch.all(err <= step / 2 + 1e-7)
        else:
            assert torch.equal(got, tensor)
    again, _ = load_checkpoint(str(compact))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x)["out"], again(x)["out"]
    assert (a - b).abs().max() < 0.05 and not torch.equal(a, b)


def test_damaged_compact_checkpoint_is_a_one_line_error(trained, tmp_path):
    _, path = trained
    model, _ = load_checkpoint(str(path))
    compact = tmp_path / "c.pt"
    save_checkpoint(str(compact), model, compact=True)
    raw = torch.load(str(compact), weights_only=True)
    for damage in ({"weights_codec": "int4-magic"}, {"qscales": {}}):
        bad = tmp_path / "bad.pt"
        torch.save(dict(raw, **damage), str(bad))
        with pytest.raises(ModelFileError, match="bad.pt"):
            load_checkpoint(str(bad))


def test_init_accepts_a_zoo_name(tmp_path, monkeypatch):
    from edgematte.train.trainer import resolve_checkpoint

    zoo = tmp_path / "zoo"
    (zoo / "people").mkdir(parents=True)
    (zoo / "people" / "model.xml").write_text("<net/>")
    (zoo / "people" / "model.pt").write_bytes(b"x")
    monkeypatch.setenv("EDGEMATTE_ZOO", str(zoo))
    assert resolve_checkpoint("people") == str(zoo / "people" / "model.pt")
    own = tmp_path / "people"  # an existing file of that name wins over the zoo
    own.write_bytes(b"y")
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("people") == "people"
    assert resolve_checkpoint("runs/x/best.pt") == "runs/x/best.pt"  # paths are left to the reader's errors
    with pytest.raises(ModelFileError, match="nobody"):
        resolve_checkpoint("nobody")
