"""model_stats: parameter count and FLOPs of deploy_forward."""
import pytest
import torch

from edgematte.train.models import create_model
from edgematte.train.models.stats import model_stats


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", ["u2netp", "mbv2_unet", "modnet"])
def test_params_and_flops_scale_with_area(name):
    model = create_model(name).train()
    small = model_stats(model, [32, 32])
    large = model_stats(model, [64, 64])
    assert model.training  # restored
    assert small["params"] == sum(p.numel() for p in model.parameters()) == large["params"]
    assert small["flops"] > 0
    assert 3.5 < large["flops"] / small["flops"] < 4.5


def test_u2netp_stats_match_the_paper():
    stats = model_stats(create_model("u2netp"), [80, 80])
    assert stats["params"] == 1131181  # U^2-NetP: 1.13M parameters (upstream code)
    assert 35e9 < stats["flops"] * 16 < 45e9  # ~19.7 GMACs at 320x320


def test_flops_count_a_single_conv_exactly():
    class One(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)

        def deploy_forward(self, x):
            return self.conv(x)

    assert model_stats(One(), [10, 10]) == {"params": 216, "flops": 2 * 216 * 100}
