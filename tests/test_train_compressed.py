"""Training pruned architectures: --init fine-tunes them as themselves, --from-scratch, --distill from a teacher."""
from pathlib import Path

import pytest
import torch

from edgematte.edge.cli import main
from edgematte.edge.errors import InputError
from edgematte.train.checkpoint import load_checkpoint, save_checkpoint
from edgematte.train.models import create_model, deploy_module, sync_channels
from edgematte.train.trainer import TrainConfig, fit
from test_data_layouts import make_pairs_dataset

TINY = {"width": 0.35, "decoder_channels": [16, 16, 8, 8, 8], "input_size": [64, 64]}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return str(make_pairs_dataset(tmp_path_factory.mktemp("data") / "d", n=6, size=(48, 64)))


@pytest.fixture(scope="module")
def pruned_ckpt(tmp_path_factory) -> str:
    """A real Torch-Pruning result of a tiny saliency net, saved as a kit checkpoint."""
    tp = pytest.importorskip("torch_pruning")
    torch.manual_seed(0)
    model = create_model("mbv2_unet_sod", **TINY).eval()
    heads = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 1]
    pruner = tp.pruner.MagnitudePruner(deploy_module(model), torch.randn(1, 3, 64, 64),
                                       importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.5,
                                       ignored_layers=heads)
    pruner.step()
    assert sync_channels(model)
    path = str(tmp_path_factory.mktemp("pruned") / "pruned.pt")
    save_checkpoint(path, model)
    return path


def _config(data: str, out: Path, **kw) -> TrainConfig:
    base = dict(model="mbv2_unet_sod", data=[data], val=[data], out=str(out), size=64, epochs=1, batch=2,
                workers=0, lr=1e-3, log_every=1, ckpt_every=100)
    base.update(kw)
    return TrainConfig(**base)


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_init_from_pruned_checkpoint_trains_the_pruned_architecture(data, pruned_ckpt, tmp_path):
    pruned, _ = load_checkpoint(pruned_ckpt)
    fit(_config(data, tmp_path / "ft", init=pruned_ckpt, max_steps=2))
    tuned, _ = load_checkpoint(str(tmp_path / "ft" / "checkpoints" / "last.pt"))
    assert tuned.config.channels == pruned.config.channels
    assert _params(tuned) == _params(pruned) < _params(create_model("mbv2_unet_sod", **TINY))
    moved = [k for k, v in pruned.state_dict().items() if v.is_floating_point()
             and not torch.equal(v, tuned.state_dict()[k])]
    assert moved, "fine-tuning changed no weight"
    # the run's config.json carries the architecture: resume works with the init file gone
    Path(pruned_ckpt).rename(pruned_ckpt + ".moved")
    try:
        result = fit(_config(data, tmp_path / "ft", init=pruned_ckpt, max_steps=3), resume=True)
    finally:
        Path(pruned_ckpt + ".moved").rename(pruned_ckpt)
    assert result.step == 3


def test_from_scratch_takes_architecture_not_weights(data, pruned_ckpt, tmp_path, capsys):
    pruned, _ = load_checkpoint(pruned_ckpt)
    fit(_config(data, tmp_path / "fs", init=pruned_ckpt, from_scratch=True, max_steps=1, lr=1e-9))
    assert "init from" not in capsys.readouterr().out
    fresh, _ = load_checkpoint(str(tmp_path / "fs" / "checkpoints" / "last.pt"))
    assert fresh.config.channels == pruned.config.channels
    weight = "encoder.features.0.0.weight" if "encoder.features.0.0.weight" in fresh.state_dict() else None
    convs = [k for k, v in pruned.state_dict().items() if k.endswith("weight") and v.dim() == 4]
    key = weight or convs[0]
    assert not torch.allclose(fresh.state_dict()[key], pruned.state_dict()[key], atol=1e-4)
    with pytest.raises(InputError, match="--from-scratch needs --init"):
        fit(_config(data, tmp_path / "bad", from_scratch=True, max_steps=1))


def test_distillation_adds_the_teacher_term(data, pruned_ckpt, tmp_path):
    torch.manual_seed(1)
    teacher = create_model("mbv2_unet_sod", **TINY)
    teacher_path = str(tmp_path / "teacher.pt")
    save_checkpoint(teacher_path, teacher)
    losses = {}
    for name, kw in (("plain", {}), ("distill", {"distill": teacher_path, "distill_weight": 5.0})):
        seen = []
        fit(_config(data, tmp_path / name, init=pruned_ckpt, max_steps=1, **kw),
            on_step=lambda step, loss, seen=seen: seen.append(loss))
        losses[name] = seen[0]
    assert losses["distill"] > losses["plain"] + 1e-3  # same data, weights and seed: the difference is the teacher


def test_distill_rejects_a_teacher_of_another_task(data, pruned_ckpt, tmp_path, capsys):
    trimap_path = str(tmp_path / "trimap.pt")
    save_checkpoint(trimap_path, create_model("mbv2_unet", **TINY))
    code = main(["train", "mbv2_unet_sod", data, "-o", str(tmp_path / "r"), "--workers", "0", "--init",
                 pruned_ckpt, "--distill", trimap_path, "--max-steps", "1", "--size", "64"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and "teacher task" in err
