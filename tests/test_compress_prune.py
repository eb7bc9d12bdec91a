"""L1 filter pruning (compress.prune): every zoo model, strategies, the record, checkpoints, IR export, the CLI.

The central check is dead-channel equivalence: in a copy of the model, the channels the pruner will remove are
silenced (their filters, biases and norm scales set to zero, so they carry exact zeros); the pruned model must then
compute what that copy computes, on every output. A channel cut in the wrong place (a concatenation offset, one
IBNorm half for the other, the image channels of MODNet's HR branch) breaks the equality.
"""
import copy
import json
from dataclasses import asdict

import pytest
import torch
from torch import nn

from edgematte.compress._prune_engine import _OUT_FNS, plan_pruning
from edgematte.compress._prune_plan import keep_for_ratio, keep_for_threshold, round_keep
from edgematte.compress.prune import (PruneConfig, PruneConfigError, PruneRecord, known_targets, prune_checkpoint,
                                      prune_model, prune_target, read_record)
from edgematte.edge.errors import InputError, ModelFileError
from edgematte.train.checkpoint import card_for, load_checkpoint, save_checkpoint
from edgematte.train.models import create_model, list_models
from edgematte.train.models.stats import count_params

SIZE = 64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(name, seed=0, **overrides):
    """An untrained zoo model at 64x64 with random norm statistics and biases (so nothing is trivially zero)."""
    torch.manual_seed(seed)
    model = create_model(name, input_size=[SIZE, SIZE], **overrides).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            elif isinstance(m, nn.Conv2d) and m.bias is not None:
                m.bias.copy_(torch.randn(m.out_channels, generator=g) * 0.1)
    return model


def _silence(model, config, x):
    """Zero every producer (conv/linear filter + bias, batch-norm scale + shift) of the channels the plan removes."""
    plan = plan_pruning(model, config, x)
    with torch.no_grad():
        for _, group in plan.cuts():
            for dep, idxs in group:
                layer = dep.layer
                if isinstance(layer, (nn.Conv2d, nn.Linear)) and dep.pruning_fn in _OUT_FNS:
                    layer.weight[idxs] = 0
                    if layer.bias is not None:
                        layer.bias[idxs] = 0
                elif isinstance(layer, nn.BatchNorm2d):
                    layer.weight[idxs] = 0
                    layer.bias[idxs] = 0
    return plan


HEADS = {name: prune_target(name).heads for name in list_models()}
CASES = [
    ("mbv2_unet_sod", {"width": 0.35}, PruneConfig(ratio=0.3)),
    ("mbv2_unet", {}, PruneConfig(ratio=0.5)),
    ("mbv2_unet", {}, PruneConfig(strategy="adaptive", backbone_threshold=0.8)),
    ("modnet", {}, PruneConfig()),  # default: adaptive backbone, ratio 0.5 elsewhere
    ("modnet", {}, PruneConfig(strategy="global", ratio=0.4)),
    ("u2netp", {}, PruneConfig(ratio=0.5)),  # u2net has the same blocks, wider: test_u2net_prunes_and_rebuilds
    # EfficientNet-Lite families: adaptive encoder + fixed-ratio decoder/branches by default, and global L1
    ("lite0_unet_sod", {}, PruneConfig()),
    ("lite0_modnet", {}, PruneConfig()),
    ("lite1_unet", {}, PruneConfig(strategy="global", ratio=0.4)),
]


@pytest.mark.parametrize("name,overrides,config", CASES,
                         ids=["{}-{}-{}".format(n, c.strategy or "default", c.ratio) for n, _, c in CASES])
def test_pruned_model_computes_what_the_silenced_original_computes(name, overrides, config):
    model = _model(name, **overrides)
    silenced = copy.deepcopy(model)
    original = copy.deepcopy(model)
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    plan = _silence(silenced, config, x)
    assert any(g.kept < g.original for g in plan.groups)

    record = prune_model(model, config)

    with torch.no_grad():
        want, got = silenced(x), model(x)
    assert set(got) == set(want)
    for key in want:
        assert got[key].shape == want[key].shape
        torch.testing.assert_close(got[key], want[key], atol=2e-5, rtol=1e-4)
    # the record tells the truth about sizes and the kept channels
    assert record.params_after == count_params(model) < record.params_before == count_params(original)
    assert record.flops_after < record.flops_before
    assert record.strategy == (config.strategy or prune_target(name).default_strategy)
    assert all(g["kept"] % config.round_to == 0 or g["kept"] == g["original"] for g in record.groups)
    assert all(min(config.round_to, g["original"]) <= g["kept"] <= g["original"] for g in record.groups)
    # heads and the network input are untouched
    for path in HEADS[name]:  # (their inputs may shrink: they read pruned features)
        head, was = model.get_submodule(path), original.get_submodule(path)
        assert head.out_channels == was.out_channels and torch.equal(head.bias, was.bias)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == 3
    # the checkpoint contract: config.channels rebuilds the pruned network, which loads strict and agrees
    rebuilt = create_model(name, **asdict(model.config)).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.deploy_forward(x), model.deploy_forward(x))
    assert record.channels == model.config.channels
    for path, m in model.named_modules():  # MODNet: both IBNorm halves together cover their conv's channels
        if type(m).__name__ == "IBNorm":
            conv = model.get_submodule(path.rsplit(".", 1)[0] + ".0")
            assert m.bnorm.num_features + m.inorm.num_features == conv.out_channels, path


def test_u2net_prunes_and_rebuilds_in_training_mode():
    model = _model("u2net").train()
    x = torch.randn(1, 3, SIZE, SIZE)
    record = prune_model(model, PruneConfig(strategy="fixed", ratio=0.5))
    assert model.training  # the mode is restored (tracing ran in eval mode: batch-norm statistics did not move)
    assert record.params_after == count_params(model) < 0.3 * record.params_before
    model.eval()
    rebuilt = create_model("u2net", **asdict(model.config)).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(rebuilt.deploy_forward(x), out["out"])
    assert out["logits"].shape == (1, 7, SIZE, SIZE)


def test_adaptive_keeps_the_fewest_filters_reaching_the_threshold():
    model = _model("mbv2_unet_sod")
    conv = model.get_submodule("encoder.model.features.18.0")  # 1280 filters, one producer in its group
    with torch.no_grad():  # spread the filter norms, as training does, so the threshold keeps well under all
        conv.weight.mul_(torch.linspace(0.01, 3.0, conv.out_channels).pow(3).view(-1, 1, 1, 1))
    before = conv.weight.detach().clone()
    scales = model.get_submodule("encoder.model.features.18.1").weight.detach().clone()  # distinct per channel
    norms = before.abs().flatten(1).sum(1).double()
    ranked = torch.sort(norms, descending=True)
    share = torch.cumsum(ranked.values, 0) / norms.sum()
    needed = int((share < 0.9).sum()) + 1  # fewest filters whose cumulative L1 reaches 90 %
    expected = -(-needed // 8) * 8
    assert needed % 8 and expected < conv.out_channels  # rounding matters and the layer really shrinks

    record = prune_model(model, PruneConfig(strategy="adaptive", backbone_threshold=0.9, ratio=0.5))
    assert model.get_submodule("encoder.model.features.18.0").out_channels == expected
    kept = sorted(ranked.indices[:expected].tolist())  # the highest-L1 filters, in their original order
    assert torch.equal(model.get_submodule("encoder.model.features.18.1").weight.detach(), scales[kept])
    group = next(g for g in record.groups if g["layer"] == "encoder.model.features.18.0")
    assert group == {"layer": "encoder.model.features.18.0", "branch": "backbone", "original": 1280,
                     "kept": expected}
    decoder = [g for g in record.groups if g["branch"] != "backbone"]
    assert decoder and all(g["kept"] == keep_for_ratio(g["original"], 0.5, 8) for g in decoder)


def test_keep_count_arithmetic():
    assert keep_for_ratio(64, 0.5, 8) == 32 and keep_for_ratio(24, 0.5, 8) == 16  # rounded up, never down
    assert keep_for_ratio(16, 0.9, 8) == 8 and keep_for_ratio(4, 0.5, 8) == 4  # floor of round_to (or the layer)
    assert round_keep(0, 40, 8) == 8 and round_keep(39, 40, 8) == 40
    importance = torch.tensor([10.0] * 4 + [1.0] * 28)  # total 68: 90 % = 61.2 needs 4 tens + 22 ones = 26
    assert keep_for_threshold(importance, 0.9, 1) == 26
    assert keep_for_threshold(importance, 0.9, 8) == 32
    assert keep_for_threshold(importance[torch.randperm(32)], 0.5, 1) == 4  # order of channels does not matter
    assert keep_for_threshold(importance, 1.0, 1) == 32
    assert keep_for_threshold(torch.zeros(16), 0.9, 8) == 8


def test_config_and_record_round_trip_and_reject_bad_values():
    config = PruneConfig(strategy="global", ratio=0.25, backbone_threshold=0.95, round_to=4)
    assert PruneConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    for bad in ({"ratio": 0.0}, {"ratio": 1.0}, {"ratio": 1.5}, {"ratio": True}, {"backbone_threshold": 0.0},
                {"backbone_threshold": 1.2}, {"round_to": 0}, {"round_to": 2.5}, {"strategy": "magic"}):
        with pytest.raises(PruneConfigError):
            PruneConfig(**bad)
    with pytest.raises(InputError, match="unknown field"):
        PruneConfig.from_dict({"ratio": 0.5, "sparsity": 0.5})
    assert issubclass(PruneConfigError, InputError)
    with pytest.raises(InputError, match="no backbone"):
        PruneConfig(strategy="adaptive").resolve("u2netp")
    with pytest.raises(InputError, match="no prune target"):
        prune_target("resnet50")
    assert set(list_models()) <= set(known_targets())
    record = PruneRecord(arch="u2netp", strategy="fixed", ratio=0.5, backbone_threshold=None, round_to=8,
                         input_size=[64, 64], params_before=10, params_after=5, flops_before=20, flops_after=9,
                         groups=[{"layer": "a.conv", "branch": "a", "original": 16, "kept": 8},
                                 {"layer": "a.b", "branch": "a", "original": 32, "kept": 16}])
    assert PruneRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record
    assert record.branches() == {"a": (2, 48, 24)}
    with pytest.raises(InputError, match="unknown field"):
        PruneRecord.from_dict(dict(record.to_dict(), extra=1))


def test_every_head_exists_and_produces_an_output_channel():
    for name in list_models():
        model = create_model(name, input_size=[SIZE, SIZE])
        for path in HEADS[name]:
            head = model.get_submodule(path)
            assert isinstance(head, nn.Conv2d) and head.out_channels in (1, 3), (name, path)
        backbone = prune_target(name).backbone
        if backbone:
            model.get_submodule(backbone)


@pytest.fixture
def tiny_ckpt(tmp_path):
    model = _model("mbv2_unet_sod", width=0.35)
    path = tmp_path / "tiny.pt"
    save_checkpoint(str(path), model, card_for(model, name="tiny"))
    return path


def test_prune_checkpoint_writes_a_reloadable_checkpoint_and_record(tiny_ckpt, tmp_path):
    out = tmp_path / "pruned"
    result = prune_checkpoint(str(tiny_ckpt), str(out), PruneConfig(ratio=0.5))
    assert sorted(p.name for p in out.iterdir()) == ["prune.json", "pruned.pt"]  # no temp files left
    model, ckpt = load_checkpoint(result.checkpoint)
    record = read_record(result.record_path)
    assert record == result.record and record.source == str(tiny_ckpt.resolve())
    assert ckpt["prune"] == record.to_dict() == ckpt["card"]["prune"]
    assert ckpt["card"]["name"] == "tiny" and ckpt["card"]["config"]["channels"] == record.channels
    assert ckpt["config"]["channels"] == record.channels and record.channels
    assert count_params(model) == record.params_after < record.params_before
    assert ckpt["card"]["tools"]["torch_pruning"] == record.tools["torch_pruning"]
    # pruning a pruned checkpoint works too (its record lists the already-pruned counts as original)
    again = prune_checkpoint(result.checkpoint, str(tmp_path / "again"), PruneConfig(ratio=0.3))
    assert again.record.params_before == record.params_after > again.record.params_after
    with pytest.raises(ModelFileError, match="no such checkpoint"):
        prune_checkpoint(str(tmp_path / "missing.pt"), str(tmp_path / "o"), PruneConfig())
    (tmp_path / "foreign.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError):
        prune_checkpoint(str(tmp_path / "foreign.pt"), str(tmp_path / "o"), PruneConfig())
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        prune_checkpoint(str(tiny_ckpt), str(tmp_path / "afile"), PruneConfig())


@pytest.mark.slow
def test_pruned_checkpoint_exports_to_ir_with_its_record(tiny_ckpt, tmp_path):
    from edgematte.edge._ov import Core
    from edgematte.edge.card import ModelCard
    from edgematte.export import api, parity

    result = prune_checkpoint(str(tiny_ckpt), str(tmp_path / "pruned"), PruneConfig(ratio=0.5))
    report = api.export_model(result.checkpoint, str(tmp_path / "ir"), precisions=("fp32",), size=(SIZE, SIZE),
                              images=parity.SYNTHETIC, image_count=1)
    assert (tmp_path / "ir" / "model_fp32.xml").is_file()
    card = ModelCard.read_rt_info(Core().read_model(str(tmp_path / "ir" / "model_fp32.xml")))
    assert card.prune["strategy"] == "fixed" and card.prune["params_after"] == result.record.params_after
    assert card.config["channels"] == result.record.channels
    assert report.name == "tiny"


def test_cli_end_to_end_and_one_line_errors(tiny_ckpt, tmp_path, capsys):
    from edgematte.edge.cli import main

    out = tmp_path / "cli"
    assert main(["prune", str(tiny_ckpt), "-o", str(out), "--ratio", "0.4", "--round-to", "8"]) == 0
    printed = capsys.readouterr().out
    assert "params" in printed and "GFLOPs" in printed and "backbone" in printed and "prune.json" in printed
    assert (out / "pruned.pt").is_file() and json.loads((out / "prune.json").read_text())["ratio"] == 0.4
    load_checkpoint(str(out / "pruned.pt"))
    for argv, message in ((["--ratio", "1.5"], "ratio"), (["--ratio", "0"], "ratio"),
                          (["--backbone-threshold", "2"], "threshold"), (["--round-to", "0"], "round_to")):
        assert main(["prune", str(tiny_ckpt), "-o", str(tmp_path / "bad")] + argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert main(["prune", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.pt" in err[0]
    assert not (tmp_path / "bad").exists()
