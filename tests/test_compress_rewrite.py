"""Conv rewrites: grouped/dwsep initialisation formulas, eligibility, rebuild from config (also pruned), export, CLI."""
import json
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgematte.compress.rewrite import (CHECKPOINT_NAME, REPORT_NAME, RewriteInputError, eligible_layers,
                                        rewrite_checkpoint, rewrite_model)
from edgematte.edge.card import ModelCard
from edgematte.train.checkpoint import card_for, load_checkpoint, save_checkpoint
from edgematte.train.models import ModelConfigError, apply_channels, channel_record, create_model, sync_channels
from edgematte.train.models.rewrites import (DWSepConv2d, RewriteError, dwsep_from_dense, grouped_from_dense,
                                             parse_kind)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _dense(cin, cout, kernel=3, **kwargs):
    torch.manual_seed(0)
    return nn.Conv2d(cin, cout, kernel, **kwargs).eval()


# -- initialisation formulas on a single conv ------------------------------------------------------------------------
@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_weights_average_runs_of_adjacent_input_channels(groups):
    conv = _dense(8, 12, padding=1)
    grouped = grouped_from_dense(conv, groups)
    assert (grouped.groups, grouped.in_channels, grouped.out_channels) == (groups, 8, 12)
    assert grouped.weight.shape == (12, 8 // groups, 3, 3)
    for j in range(8 // groups):
        expected = sum(conv.weight[:, groups * j + r] for r in range(groups)) / groups
        torch.testing.assert_close(grouped.weight[:, j], expected)
    assert torch.equal(grouped.bias, conv.bias)


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_on_channel_constant_input_is_the_dense_response_over_groups(groups):
    """Exact for any dense kernel: with every input channel equal, each group sees in/G channels of the averaged
    kernel, so grouped(x) - bias == (dense(x) - bias) / G."""
    conv = _dense(8, 12, padding=1, stride=2)
    grouped = grouped_from_dense(conv, groups)
    x = torch.randn(2, 1, 9, 11).expand(2, 8, 9, 11)
    with torch.no_grad():
        dense_part = conv(x) - conv.bias[:, None, None]
        grouped_part = grouped(x) - conv.bias[:, None, None]
    torch.testing.assert_close(grouped_part, dense_part / groups)


def test_dwsep_weights_stride_padding_dilation_and_bias():
    conv = _dense(6, 10, kernel=3, stride=2, padding=2, dilation=2)
    sep = dwsep_from_dense(conv)
    assert isinstance(sep, DWSepConv2d)
    dw, pw = sep.depthwise, sep.pointwise
    assert (dw.in_channels, dw.out_channels, dw.groups, dw.bias) == (6, 6, 6, None)
    assert (dw.stride, dw.padding, dw.dilation, dw.kernel_size) == ((2, 2), (2, 2), (2, 2), (3, 3))
    assert (pw.in_channels, pw.out_channels, pw.kernel_size, pw.stride) == (6, 10, (1, 1), (1, 1))
    torch.testing.assert_close(dw.weight[:, 0], conv.weight.mean(dim=0))
    torch.testing.assert_close(pw.weight[:, :, 0, 0], conv.weight.mean(dim=(2, 3)))
    assert torch.equal(pw.bias, conv.bias)
    x = torch.randn(1, 6, 13, 15)
    with torch.no_grad():
        assert sep(x).shape == conv(x).shape


def _rank_one(a, b, kernel):
    return a[:, None, None, None] * b[None, :, None, None] * kernel[None, None]


def test_dwsep_of_a_rank_one_kernel_is_exact():
    """W[o,i] = a[o] b[i] K gives depthwise mean(a) b[i] K and pointwise a[o] b[i] mean(K), i.e. the dense conv with
    kernel a[o] b[i]^2 mean(a) mean(K) K; with b = 1 and mean(a) mean(K) = 1 the rewrite is the dense conv itself."""
    torch.manual_seed(1)
    a, b, kernel = torch.rand(7) + 0.5, torch.randn(5), torch.rand(3, 3) + 0.1
    conv = nn.Conv2d(5, 7, 3, padding=1)
    conv.weight.data.copy_(_rank_one(a, b, kernel))
    sep = dwsep_from_dense(conv)
    x = torch.randn(2, 5, 8, 9)
    equivalent = _rank_one(a, b * b * a.mean() * kernel.mean(), kernel)
    with torch.no_grad():
        torch.testing.assert_close(sep(x), F.conv2d(x, equivalent, conv.bias, padding=1), rtol=1e-4, atol=1e-5)
        kernel = kernel / (a.mean() * kernel.mean())  # now mean(a) * mean(K) == 1
        conv.weight.data.copy_(_rank_one(a, torch.ones(5), kernel))
        torch.testing.assert_close(dwsep_from_dense(conv)(x), conv(x), rtol=1e-4, atol=1e-5)


def test_kinds_and_refusals():
    assert parse_kind("grouped:2") == ("grouped", 2) and parse_kind("DWSEP") == ("dwsep", 0)
    for bad in ("grouped", "grouped:1", "grouped:x", "dw", ""):
        with pytest.raises(RewriteError, match="unknown rewrite kind"):
            parse_kind(bad)
    with pytest.raises(RewriteError, match="not divisible by 2 groups"):
        grouped_from_dense(_dense(3, 8), 2)
    with pytest.raises(RewriteError, match="not a dense Conv2d"):
        dwsep_from_dense(nn.Conv2d(8, 8, 3, groups=8))


# -- whole models -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def u2netp():
    torch.manual_seed(0)
    return create_model("u2netp", input_size=[64, 64]).eval()


def _fresh(model):
    """A copy of `model` built from its config, with its weights."""
    copy = create_model(model.arch, **asdict(model.config)).eval()
    copy.load_state_dict(model.state_dict(), strict=True)
    return copy


def test_eligibility_skips_input_conv_heads_and_globs(u2netp):
    paths = eligible_layers(u2netp, "grouped:2")
    assert "stage1.rebnconvin.conv_s1" not in paths  # reads the 3-channel image
    assert not any(p.startswith("side") or p == "outconv" for p in paths)  # 1-channel heads
    assert "stage2.rebnconv1.conv_s1" in paths and len(paths) == 111
    stage1 = eligible_layers(u2netp, "dwsep", include=["stage1.*"], exclude=["*.rebnconv1d.*"])
    assert stage1 and all(p.startswith("stage1.") and "rebnconv1d" not in p for p in stage1)
    sod = create_model("mbv2_unet_sod", width=0.35)
    assert eligible_layers(sod, "grouped:2") == []  # its 3x3 convs are depthwise already
    ones = eligible_layers(sod, "grouped:2", min_kernel=1)
    assert ones and "head" not in ones and eligible_layers(sod, "dwsep", min_kernel=1) == []


@pytest.mark.parametrize("kind", ["grouped:2", "dwsep"])
def test_parameter_count_falls_by_the_rewritten_kernels(u2netp, kind):
    model = _fresh(u2netp)
    convs = dict(model.named_modules())
    record = rewrite_model(model, kind)
    saved = 0
    for path in record.layers:
        cout, cin, kh, kw = convs[path].weight.shape
        dense = cout * cin * kh * kw
        saved += dense - (dense // 2 if kind == "grouped:2" else cin * kh * kw + cin * cout)
    assert record.params_before == sum(p.numel() for p in u2netp.parameters())
    assert record.params_after == sum(p.numel() for p in model.parameters()) == record.params_before - saved
    assert record.params_after < record.params_before / (1.9 if kind == "grouped:2" else 5)
    assert record.to_dict()["fp32_bytes_after"] == 4 * record.params_after
    assert model.config.rewrites == {path: kind for path in record.layers}
    assert model.config.channels is None  # a rewrite is not a channel change


def test_rewritten_model_rebuilds_from_its_config_and_loads_strict(u2netp):
    model = _fresh(u2netp)
    rewrite_model(model, "dwsep", include=["stage1.*", "stage2.*"])
    rewrite_model(model, "grouped:2")  # the rest; the record merges
    kinds = set(model.config.rewrites.values())
    assert kinds == {"dwsep", "grouped:2"}
    again = _fresh(model)
    assert isinstance(again.stage1.rebnconv1.conv_s1, DWSepConv2d)
    assert again.stage3.rebnconv1.conv_s1.groups == 2
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(again.deploy_forward(x), model.deploy_forward(x))
    with pytest.raises(RuntimeError):
        u2netp.load_state_dict(model.state_dict(), strict=True)


def test_modnet_shared_backbone_rewrite_round_trips():
    torch.manual_seed(0)
    model = create_model("modnet", input_size=[64, 64], hr_channels=8, width=0.35).eval()
    record = rewrite_model(model, "grouped:2", min_kernel=1)
    assert any(p.startswith("backbone.") for p in record.layers)
    assert model.lr_branch.backbone is model.backbone  # still one shared module
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(_fresh(model).deploy_forward(x), model.deploy_forward(x))


def test_rewritten_then_pruned_record_round_trips(u2netp):
    model = _fresh(u2netp)
    rewrite_model(model, "dwsep", include=["stage1.*"])
    # prune stage1.rebnconv1's output 16 -> 8: its pointwise, its norm, and the layers that read it
    record = {"stage1.rebnconv1.conv_s1.pointwise": [64, 8, 1], "stage1.rebnconv1.bn_s1": [8],
              "stage1.rebnconv2.conv_s1.depthwise": [8, 8, 8], "stage1.rebnconv2.conv_s1.pointwise": [8, 16, 1],
              "stage1.rebnconv1d.conv_s1.depthwise": [24, 24, 24],
              "stage1.rebnconv1d.conv_s1.pointwise": [24, 64, 1]}
    apply_channels(model, record)
    assert sync_channels(model) == record
    x = torch.randn(1, 3, 64, 64)
    again = _fresh(model)
    assert again.config.channels == record and channel_record(again) == channel_record(model)
    with torch.no_grad():
        torch.testing.assert_close(again.deploy_forward(x), model.deploy_forward(x))


def test_pruned_then_grouped_layer_whose_design_is_odd_round_trips():
    """modnet's conv_f.0 reads hr + 3 = 35 channels (odd: not groupable); pruned to 34 it is, and the rebuild
    must size it from the channel record before grouping."""
    torch.manual_seed(0)
    model = create_model("modnet", input_size=[64, 64], hr_channels=32, width=0.35).eval()
    path = "f_branch.conv_f.0.layers.0"
    assert path not in eligible_layers(model, "grouped:2")
    apply_channels(model, {"f_branch.conv_f2x.layers.0": [64, 31, 1], "f_branch.conv_f2x.layers.1.bnorm": [15],
                           "f_branch.conv_f2x.layers.1.inorm": [16], path: [34, 16, 1]})
    record = rewrite_model(model, "grouped:2", include=["f_branch.*"])
    assert path in record.layers and model.config.channels[path] == [34, 16, 2]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(_fresh(model).deploy_forward(x), model.deploy_forward(x))


@pytest.mark.parametrize("rewrites, message", [
    ({"stage9.conv": "dwsep"}, "no such layer"),
    ({"stage1.rebnconv1.conv_s1": "grouped:1"}, "unknown rewrite kind"),
    ({"stage1.rebnconvin.conv_s1": "grouped:2"}, "not divisible by 2 groups"),
    ({"stage1.rebnconv1": "dwsep"}, "not a dense Conv2d"),
    (["stage1"], "must map module path"),
])
def test_bad_rewrite_records_are_one_line_config_errors(rewrites, message):
    with pytest.raises(ModelConfigError, match=message) as caught:
        create_model("u2netp", rewrites=rewrites)
    assert "\n" not in str(caught.value)


# -- checkpoints, export, CLI -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, u2netp):
    path = tmp_path_factory.mktemp("rewrite") / "tiny.pt"
    card = card_for(u2netp, name="tiny")
    card.prune = {"ratio": 0.25}  # an earlier prune record the rewrite must keep
    card.metrics = {"mae": 0.1}
    save_checkpoint(str(path), u2netp, card, extra={"metrics": {"mae": 0.1}})
    return path


def test_rewrite_checkpoint_files_record_and_card(tiny_ckpt, tmp_path):
    result = rewrite_checkpoint(str(tiny_ckpt), str(tmp_path / "out"), "dwsep", include=["stage1.*"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([CHECKPOINT_NAME, REPORT_NAME])
    model, ckpt = load_checkpoint(result.checkpoint)
    assert ckpt["rewrite"]["kind"] == "dwsep" and ckpt["rewrite"]["layers"] == result.record.layers
    assert ckpt["rewrite"]["params_after"] == sum(p.numel() for p in model.parameters())
    assert "metrics" not in ckpt
    card = ModelCard.from_dict(ckpt["card"])
    assert card.name == "tiny_dwsep" and card.prune["ratio"] == 0.25 and card.prune["rewrite"]["kind"] == "dwsep"
    assert card.config["rewrites"] == model.config.rewrites and card.metrics == {} and "dwsep" in card.notes
    report = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert report["rewrite"]["params_before"] == result.record.params_before
    assert report["file_bytes_after"] == result.file_bytes_after < result.file_bytes_before


def test_rewritten_checkpoint_exports_to_ir(tmp_path):
    from edgematte.edge._ov import Core
    from edgematte.export import api, parity

    torch.manual_seed(0)
    model = create_model("mbv2_unet_sod", input_size=[64, 64], width=0.35).eval()
    assert rewrite_model(model, "dwsep", min_channels=3).layers == ["encoder.model.features.0.0"]  # the RGB conv
    assert rewrite_model(model, "grouped:2", min_kernel=1, include=["blocks.*", "skips.*"]).layers
    with torch.no_grad():  # untrained logits are ~1e-4: spread them so IoU@0.5 parity is not decided by rounding
        model.head.weight.mul_(1000.0)
    save_checkpoint(str(tmp_path / "tiny.pt"), model, card_for(model, name="tiny"))
    report = api.export_model(str(tmp_path / "tiny.pt"), str(tmp_path / "ir"), precisions=("fp32",), size=(64, 64),
                              images=parity.SYNTHETIC, image_count=1)
    assert report.ok and (tmp_path / "ir" / "model_fp32.xml").is_file()
    card = ModelCard.read_rt_info(Core().read_model(str(tmp_path / "ir" / "model_fp32.xml")))
    assert card.config["rewrites"] == model.config.rewrites


def test_cli_end_to_end_and_one_line_errors(tiny_ckpt, tmp_path, capsys):
    from edgematte.edge.cli import main

    out = tmp_path / "g2"
    assert main(["rewrite", str(tiny_ckpt), "--conv", "grouped:2", "-o", str(out), "--exclude", "stage6.*"]) == 0
    printed = capsys.readouterr().out
    assert "FP32 params" in printed and "->" in printed and "checkpoint" in printed
    model, _ = load_checkpoint(str(out / CHECKPOINT_NAME))
    assert model.config.rewrites and not any(p.startswith("stage6.") for p in model.config.rewrites)
    for argv, message in ((["--conv", "grouped:3"], "no convolution"), (["--conv", "sparse"], "unknown rewrite kind"),
                          (["--conv", "dwsep", "--include", "nothing.*"], "no convolution")):
        capsys.readouterr()
        assert main(["rewrite", str(tiny_ckpt), "-o", str(tmp_path / "bad")] + argv) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and message in err, err
    assert not (tmp_path / "bad").exists()
    with pytest.raises(RewriteInputError):
        rewrite_model(create_model("u2netp"), "grouped:7")


def test_verb_defaults_match_the_engine():
    from edgematte.compress import _rewrite, rewrite

    assert (rewrite.DEFAULT_MIN_CHANNELS, rewrite.DEFAULT_MIN_KERNEL) == (_rewrite.DEFAULT_MIN_CHANNELS,
                                                                          _rewrite.DEFAULT_MIN_KERNEL)
