"""Model zoo: registry, JSON configs, forward contract per family, tracing, channel overrides."""
import json
from dataclasses import asdict

import pytest
import torch

from edgematte.edge.errors import EdgematteError
from edgematte.train.models import (ModelConfigError, apply_channels, channel_record, config_from_dict, create_model,
                                    deploy_module, get_config_class, list_models, sync_channels)

NAMES = ["mbv2_unet", "mbv2_unet_sod", "modnet", "u2net", "u2netp"]
TASKS = {"modnet": "alpha", "u2net": "saliency", "u2netp": "saliency", "mbv2_unet": "trimap",
         "mbv2_unet_sod": "saliency"}
EXTRA_KEYS = {"modnet": {"semantic", "detail", "matte"}, "u2net": {"logits"}, "u2netp": {"logits"},
              "mbv2_unet": {"logits"}, "mbv2_unet_sod": {"logits"}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: create_model(name).eval() for name in NAMES}


LITE_NAMES = ["{}_{}".format(v, h) for v in ("lite0", "lite1", "lite2") for h in ("modnet", "unet", "unet_sod")]


def test_registry_lists_the_families():
    """The from-scratch families (tested in depth here) and the EfficientNet-Lite ones (test_models_lite.py)."""
    assert list_models() == sorted(NAMES + LITE_NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_model_attributes_and_defaults(models, name):
    model = models[name]
    assert model.arch == name and model.task == TASKS[name]
    assert isinstance(model.config, get_config_class(name))
    size = {"modnet": [512, 512]}.get(name, [320, 320])
    assert model.config.input_size == size
    if name == "modnet":
        assert model.config.mean == [127.5] * 3 and model.config.std == [127.5] * 3 and model.config.hr_channels == 32
    else:
        assert model.config.mean == [123.675, 116.28, 103.53] and model.config.std == [58.395, 57.12, 57.375]


@pytest.mark.parametrize("name", NAMES)
def test_config_json_round_trip(name):
    config = create_model(name, input_size=(256, 192)).config if name == "u2netp" else get_config_class(name)()
    text = json.dumps(asdict(config))
    again = config_from_dict(name, json.loads(text))
    assert again == config and json.dumps(asdict(again)) == text


def test_overrides_unknown_names_and_fields_are_user_errors():
    assert create_model("mbv2_unet", width=0.5, input_size=[256, 256]).config.width == 0.5
    with pytest.raises(ModelConfigError, match="unknown model 'nope'"):
        create_model("nope")
    with pytest.raises(ModelConfigError, match="unknown field"):
        create_model("u2netp", hr_channels=8)
    with pytest.raises(EdgematteError, match="input_size"):
        config_from_dict("u2netp", {"input_size": [320]})


@pytest.mark.parametrize("name", NAMES)
def test_forward_contract(models, name):
    model = models[name]
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        out = model(x)
    assert set(out) == {"out"} | EXTRA_KEYS[name]
    channels = 3 if name == "mbv2_unet" else 1
    assert out["out"].shape == (2, channels, 64, 96)
    assert out["out"].dtype == torch.float32
    assert 0.0 <= float(out["out"].min()) and float(out["out"].max()) <= 1.0
    if name == "modnet":
        assert out["semantic"].shape == (2, 1, 4, 6) and out["detail"].shape == (2, 1, 64, 96)
        assert torch.equal(out["matte"], out["out"])
        assert 0.0 <= float(out["detail"].min()) and float(out["semantic"].max()) <= 1.0
    elif name == "mbv2_unet":
        assert out["logits"].shape == (2, 3, 64, 96)
        torch.testing.assert_close(out["out"].sum(1), torch.ones(2, 64, 96))
    elif name == "mbv2_unet_sod":
        assert out["logits"].shape == (2, 1, 64, 96)
        torch.testing.assert_close(out["out"], torch.sigmoid(out["logits"]))
    else:
        assert out["logits"].shape == (2, 7, 64, 96)
        torch.testing.assert_close(out["out"], torch.sigmoid(out["logits"][:, :1]))


@pytest.mark.parametrize("name", NAMES)
def test_deploy_forward_matches_out(models, name):
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(models[name].deploy_forward(x), models[name](x)["out"])


@pytest.mark.parametrize("name", ["mbv2_unet", "modnet", "u2netp"])  # u2net shares u2netp's code
def test_deploy_forward_traces(models, name):
    model = models[name]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        traced = torch.jit.trace(deploy_module(model), x, check_trace=False)
        torch.testing.assert_close(traced(x), model.deploy_forward(x))
        y = torch.randn(1, 3, 64, 32)  # sizes are traced from the input, not baked in
        torch.testing.assert_close(traced(y), model.deploy_forward(y))


def test_odd_input_sizes_keep_the_input_size(models):
    x = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        for name in ("modnet", "u2netp", "mbv2_unet"):
            assert models[name].deploy_forward(x).shape[2:] == (70, 90), name


def test_train_mode_backward_reaches_every_parameter():
    model = create_model("u2netp").train()
    out = model(torch.randn(2, 3, 32, 32))
    out["logits"].mean().backward()
    assert all(p.grad is not None for p in model.parameters())


# -- channel records -----------------------------------------------------------------------------------
def _halved_record(model, convs):
    """Record with the given convs' outputs halved, plus their norms and the convs that read them."""
    record = {}
    for conv, norms, readers in convs:
        cin, cout, groups = channel_record(model)[conv]
        record[conv] = [cin, cout // 2, groups]
        for norm, size in norms:
            record[norm] = [size]
        for reader in readers:
            rin, rout, rgroups = channel_record(model)[reader]
            record[reader] = [rin - cout // 2, rout, rgroups]
    return record


CUTS = {
    "u2netp": [("stage1.rebnconv1.conv_s1", [("stage1.rebnconv1.bn_s1", 8)],
                ["stage1.rebnconv2.conv_s1", "stage1.rebnconv1d.conv_s1"])],
    "modnet": [("f_branch.conv_f.0.layers.0", [("f_branch.conv_f.0.layers.1.bnorm", 4),
                                               ("f_branch.conv_f.0.layers.1.inorm", 4)],
                ["f_branch.conv_f.1.layers.0"]),
               ("hr_branch.conv_hr2x.3.layers.0", [("hr_branch.conv_hr2x.3.layers.1.bnorm", 8),
                                                   ("hr_branch.conv_hr2x.3.layers.1.inorm", 8)],
                ["f_branch.conv_f2x.layers.0", "hr_branch.conv_hr.0.layers.0"])],
    "mbv2_unet": [("blocks.3.pw.0", [("blocks.3.pw.1", 8)], ["head"])],
}


@pytest.mark.parametrize("name", sorted(CUTS))
def test_channels_override_rebuilds_and_loads_strict(models, name):
    record = _halved_record(models[name], CUTS[name])
    pruned = create_model(name, channels=record).eval()
    assert pruned.config.channels == record
    for path, counts in record.items():
        assert channel_record(pruned)[path] == counts
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = pruned(x)["out"]
    assert out.shape[2:] == (64, 64)
    rebuilt = create_model(name, **asdict(pruned.config)).eval()
    rebuilt.load_state_dict(pruned.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x)["out"], out)
    with pytest.raises(RuntimeError):
        models[name].load_state_dict(pruned.state_dict(), strict=True)


def test_sync_channels_finds_in_place_changes():
    model = create_model("u2netp")
    assert sync_channels(model) is None
    record = _halved_record(model, CUTS["u2netp"])
    apply_channels(model, record)
    assert sync_channels(model) == record


def test_bad_channel_record_is_a_user_error():
    with pytest.raises(ModelConfigError, match="no such layer"):
        create_model("u2netp", channels={"stage9.conv": [3, 8, 1]})
    with pytest.raises(ModelConfigError, match="do not form a conv"):
        create_model("u2netp", channels={"stage1.rebnconvin.conv_s1": [3, 10, 4]})


def test_torch_pruning_result_round_trips_through_the_record():
    tp = pytest.importorskip("torch_pruning")
    model = create_model("mbv2_unet", width=0.5).eval()
    x = torch.randn(1, 3, 64, 64)
    keep = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 3]
    pruner = tp.pruner.MagnitudePruner(deploy_module(model), x, importance=tp.importance.MagnitudeImportance(p=1),
                                       pruning_ratio=0.25, ignored_layers=keep)
    pruner.step()
    record = sync_channels(model)
    assert record
    rebuilt = create_model("mbv2_unet", **asdict(model.config)).eval()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.deploy_forward(x), model.deploy_forward(x))
