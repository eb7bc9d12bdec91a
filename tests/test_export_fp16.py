"""The PyTorch FP16-activation check: both modes (emulated rounding, real model.half()) catch FP16 overflow."""
import pytest

torch = pytest.importorskip("torch")

from edgematte.edge.card import ModelCard  # noqa: E402
from edgematte.export import parity  # noqa: E402


class _Overflowing(torch.nn.Module):
    """A contract-following toy whose conv activations exceed the FP16 range (65504) before an instance norm."""

    arch, task = "toy", "saliency"

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.norm = torch.nn.InstanceNorm2d(4)
        self.head = torch.nn.Conv2d(4, 1, 1)
        with torch.no_grad():
            self.conv.weight.mul_(3000.0)  # raw 0..255 pixels in: |activations| reach ~1e5

    def forward(self, x):
        return {"out": torch.sigmoid(self.head(self.norm(self.conv(x))))}

    def deploy_forward(self, x):
        return self.forward(x)["out"]


CARD = ModelCard(name="toy", task="saliency", arch="toy", input_size=[32, 32],
                 normalisation={"color": "RGB", "mean": [0.0] * 3, "std": [1.0] * 3})


@pytest.mark.parametrize("mode", parity.TORCH_FP16_MODES)
def test_torch_fp16_check_catches_overflow(mode):
    torch.manual_seed(0)
    model = _Overflowing().eval()
    images = parity.synthetic_images(1, size=(32, 32))
    result = parity.torch_fp16_parity(model, CARD, images, mode=mode)
    assert not result["ok"] and result["max_abs_diff"] == float("inf") and result["mode"] == mode
    with pytest.raises(parity.ParityError, match="toy"):
        parity.check(result, "toy")
    with torch.no_grad():
        model.conv.weight.div_(3000.0)  # back in range: the same check passes
    assert parity.torch_fp16_parity(model, CARD, images, mode=mode)["ok"]


def test_emulated_fp16_tracks_real_half():
    """Emulated FP16 storage lands as close to FP32 as real FP16 kernels do (same order of error)."""
    torch.manual_seed(1)
    toy = _Overflowing().eval()
    with torch.no_grad():
        toy.conv.weight.div_(3000.0 * 20.0)  # small activations: rounding error only, no overflow
    images = parity.synthetic_images(2, size=(32, 32))
    emulated = parity.torch_fp16_parity(toy, CARD, images, mode="emulate")
    half = parity.torch_fp16_parity(toy, CARD, images, mode="half")
    assert 0 < emulated["max_abs_diff"] < 0.01 and 0 < half["max_abs_diff"] < 0.01
    assert emulated["max_abs_diff"] / half["max_abs_diff"] < 10 and half["max_abs_diff"] / emulated["max_abs_diff"] < 10


def test_fp16_limit_reaches_every_fp16_check(tmp_path):
    """`--fp16-max-diff` is the limit the FP16 IR and FP16-activation checks apply (and ship.json records)."""
    import json

    from edgematte.edge.errors import InputError
    from edgematte.export.api import REPORT_NAME, export_model

    common = dict(formats=("ir",), precisions=("fp32", "fp16"), size=(64, 64), untrained=True, images="synthetic",
                  image_count=2)
    with pytest.raises(parity.ParityError, match="ir_fp16_vs_fp32|torch_fp16_activations"):
        export_model("mbv2_unet_sod", str(tmp_path / "strict"), fp16_max_diff=1e-12, **common)
    strict = json.loads((tmp_path / "strict" / REPORT_NAME).read_text())["parity"]
    assert strict["ir_fp16_vs_fp32"]["tolerance"]["max_abs_diff"] == 1e-12
    assert strict["torch_fp16_activations"]["tolerance"]["max_abs_diff"] == 1e-12
    report = export_model("mbv2_unet_sod", str(tmp_path / "default"), **common)
    assert report.parity["ir_fp16_vs_fp32"]["tolerance"]["max_abs_diff"] == parity.FP16_MAX_ABS_DIFF
    with pytest.raises(InputError, match="fp16-max-diff"):
        export_model("mbv2_unet_sod", str(tmp_path / "bad"), fp16_max_diff=0, **common)
