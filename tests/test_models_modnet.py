"""MODNet's IBNorm: split taken from the layers at run time, and an instance norm that survives FP16.

FP16 approach: SafeInstanceNorm2d centres first and divides by the per-channel max |x| before squaring, so no
intermediate exceeds 1 in magnitude; the naive E[x^2] - E[x]^2 overflows FP16 (max 65504) once |x| > 256.
"""
import pytest
import torch
import torch.nn.functional as F

from edgematte.train.models import create_model
from edgematte.train.models.modnet import IBNorm, SafeInstanceNorm2d


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_safe_instance_norm_equals_instance_norm_in_fp32():
    x = torch.randn(2, 5, 9, 7) * 3 + 1
    torch.testing.assert_close(SafeInstanceNorm2d(5)(x), F.instance_norm(x), atol=1e-5, rtol=1e-5)
    flat = torch.full((1, 2, 4, 4), 7.0)  # constant channel: zeros, like instance_norm
    torch.testing.assert_close(SafeInstanceNorm2d(2)(flat), F.instance_norm(flat), atol=1e-4, rtol=0)


def test_safe_instance_norm_does_not_overflow_in_fp16():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 16, 16) * 3000 + 500  # |x| up to ~1e4: x^2 ~ 1e8 > fp16 max
    half = x.half()
    assert torch.isinf((half * half).mean(dim=(2, 3))).any()  # the naive variance would overflow
    out = SafeInstanceNorm2d(4)(half)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), F.instance_norm(x), atol=1e-2, rtol=1e-2)


def test_ibnorm_split_follows_bnorm_num_features():
    norm = IBNorm(8).eval()
    norm.bnorm = torch.nn.BatchNorm2d(3).eval()  # as after pruning: 3 BN channels, 5 IN channels
    x = torch.randn(2, 8, 6, 6)
    out = norm(x)
    torch.testing.assert_close(out[:, :3], norm.bnorm(x[:, :3]))
    torch.testing.assert_close(out[:, 3:], F.instance_norm(x[:, 3:]), atol=1e-5, rtol=1e-5)


def test_ibnorm_matches_reference_split_for_even_channels():
    """Reference: BN on x[:, :C/2], IN on x[:, C/2:] (its `inorm_channels:` slice equals C/2 for even C)."""
    norm = IBNorm(16).eval()
    x = torch.randn(1, 16, 5, 5)
    torch.testing.assert_close(norm(x), torch.cat((norm.bnorm(x[:, :8]), F.instance_norm(x[:, 8:])), 1),
                               atol=1e-5, rtol=1e-5)


def test_modnet_fp16_matches_fp32():
    torch.manual_seed(0)
    model = create_model("modnet").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference = model.deploy_forward(x)
        half = model.half().deploy_forward(x.half())
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    diff = (half.float() - reference).abs()
    assert float(diff.max()) < 0.05 and float(diff.mean()) < 5e-3


@pytest.mark.parametrize("width,hr", [(0.5, 32), (1.0, 16), (0.75, 24)])
def test_modnet_builds_at_other_widths_and_detail_channels(width, hr):
    """The detail branch takes the semantic features at whatever width the backbone has (not 3*hr+3 hard-coded)."""
    model = create_model("modnet", width=width, hr_channels=hr, input_size=[64, 64]).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items() if k != "semantic"} == {
        "out": (1, 1, 64, 64), "matte": (1, 1, 64, 64), "detail": (1, 1, 64, 64)}
    assert model.hr_branch.conv_hr4x[0].layers[0].in_channels == 2 * hr + model.backbone.enc_channels[2] + 3
