"""Our parameter names and shapes equal the upstream implementations', so released weights load with strict=True.

tests/fixtures/<arch>_keys.json list every state_dict key and shape of the upstream code (ZHKKKe/MODNet,
xuebinqin/U-2-Net), written from the upstream constructors; see each file's "source".
"""
import json
from pathlib import Path

import pytest
import torch

from edgematte.edge.errors import ModelFileError
from edgematte.train.checkpoint import load_state_dict_into, load_upstream_weights
from edgematte.train.models import create_model

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _upstream(name):
    return json.loads((FIXTURES / "{}_keys.json".format(name)).read_text())["keys"]


@pytest.mark.parametrize("name", ["modnet", "u2net", "u2netp"])
def test_state_dict_keys_and_shapes_equal_upstream(name):
    ours = {k: list(v.shape) for k, v in create_model(name).state_dict().items()}
    upstream = _upstream(name)
    assert sorted(set(upstream) - set(ours)) == [], "missing upstream keys"
    assert sorted(set(ours) - set(upstream)) == [], "keys upstream lacks"
    assert {k: ours[k] for k in upstream if ours[k] != upstream[k]} == {}


@pytest.mark.parametrize("key, shape", [
    ("backbone.model.features.0.0.weight", [32, 3, 3, 3]),
    ("lr_branch.backbone.model.features.18.1.running_var", [1280]),
    ("lr_branch.se_block.fc.0.weight", [320, 1280]),
    ("lr_branch.conv_lr16x.layers.0.weight", [96, 1280, 5, 5]),
    ("lr_branch.conv_lr16x.layers.1.bnorm.weight", [48]),
    ("hr_branch.conv_hr4x.0.layers.0.weight", [64, 99, 3, 3]),
    ("f_branch.conv_f.1.layers.0.weight", [1, 16, 1, 1]),
])
def test_representative_modnet_keys(key, shape):
    """Spot checks read directly off the upstream code, independent of the fixture."""
    assert list(create_model("modnet").state_dict()[key].shape) == shape


def test_released_modnet_layout_loads_strict_after_prefix_strip(tmp_path):
    """The released MODNet .ckpt is a DataParallel state dict: every key starts with `module.`."""
    torch.manual_seed(0)
    fake = {"module." + k: torch.randn(shape) if shape else torch.tensor(3)
            for k, shape in _upstream("modnet").items()}
    path = tmp_path / "modnet_photographic_portrait_matting.ckpt"
    torch.save(fake, str(path))
    model = load_upstream_weights(create_model("modnet"), str(path))
    key = "hr_branch.conv_enc2x.layers.0.weight"
    assert torch.equal(model.state_dict()[key], fake["module." + key])


def test_u2netp_layout_loads_and_mismatch_is_one_line(tmp_path):
    fake = {k: torch.zeros(shape) if shape else torch.tensor(0) for k, shape in _upstream("u2netp").items()}
    load_state_dict_into(create_model("u2netp"), fake, "u2netp.pth")
    with pytest.raises(ModelFileError) as info:
        load_state_dict_into(create_model("u2net"), fake, "u2netp.pth")
    assert "u2netp.pth" in str(info.value) and "\n" not in str(info.value)
