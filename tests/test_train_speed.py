"""The fast training step (bf16 autocast, channels_last) follows the plain FP32 step: same losses within a stated
tolerance over a few dozen steps, FP32 weights and BatchNorm statistics, and a policy that picks bf16 only where the
CPU computes it natively."""
import pytest
import torch

from edgematte.edge.cli import main
from edgematte.edge.errors import InputError
from edgematte.train import speed
from edgematte.train.benchmark import Stepper, synthetic_batch
from edgematte.train.models import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
STEPS = 30
# Per-step losses over 30 AdamW steps, relative to the plain FP32 step. Measured when written: bf16 + channels_last
# at most 1.4 %, FP32 channels_last at most 1.1 % (other conv algorithms round differently and Adam's normalised
# first steps amplify 1e-6 differences). Bounds: 5 % and 3 %.
BF16_REL_TOL = 0.05
FP32_REL_TOL = 0.03


def _losses(policy: speed.StepPolicy, name: str = "mbv2_unet_sod"):
    torch.manual_seed(0)
    model = create_model(name, width=0.35, decoder_channels=[16, 16, 8, 8, 8], input_size=[32, 32])
    stepper = Stepper(model, policy)
    batch = synthetic_batch(4, 32, list(model.config.mean), list(model.config.std))
    return [stepper.step(batch) for _ in range(STEPS)], stepper.core


@pytest.mark.parametrize("policy,tol", [(speed.StepPolicy("cpu", autocast="bf16", channels_last=True), BF16_REL_TOL),
                                        (speed.StepPolicy("cpu", channels_last=True), FP32_REL_TOL)])
def test_fast_step_losses_follow_the_fp32_step(policy, tol):
    reference, _ = _losses(speed.StepPolicy("cpu"))
    fast, core = _losses(policy)
    assert reference[-1] < 0.99 * reference[0]  # it learns, so the comparison covers real updates
    for step, (a, b) in enumerate(zip(reference, fast)):
        assert abs(a - b) <= tol * abs(a), (step, a, b)
    for name, tensor in list(core.state_dict().items()):
        if tensor.is_floating_point():
            assert tensor.dtype == torch.float32, name  # weights and BN statistics stay FP32


def test_policy_picks_bf16_only_on_native_bf16(monkeypatch):
    monkeypatch.setattr(speed, "cpu_has_native_bf16", lambda: True)
    assert speed.resolve_policy("cpu").autocast == "bf16"
    monkeypatch.setattr(speed, "cpu_has_native_bf16", lambda: False)
    assert speed.resolve_policy("cpu").autocast is None
    assert speed.resolve_policy("cpu", precision="bf16").autocast == "bf16"
    assert speed.resolve_policy("cuda").autocast == "fp16" and speed.resolve_policy("cuda", amp=False).autocast is None
    assert speed.resolve_policy("cpu", layout="contiguous").channels_last is False
    with pytest.raises(InputError, match="needs CUDA"):
        speed.resolve_policy("cpu", precision="fp16")


def test_train_benchmark_prints_every_lever_and_the_speed_up_last(capsys):
    code = main(["train", "mbv2_unet_sod", "--benchmark", "--size", "32", "--batch", "2", "--repeats", "1",
                 "--steps", "1", "--precision", "fp32", "--memory-format", "channels_last"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    text = "\n".join(lines)
    assert "fp32 plain" in text and "lever: cpu, bf16 autocast, contiguous" in text
    assert lines[-1].startswith("speed-up ") and lines[-1].endswith("x") and float(lines[-1][9:-1]) > 0


def test_train_benchmark_with_data_measures_the_loader_and_the_cache(tmp_path, capsys):
    from test_data_layouts import make_pairs_dataset

    data = make_pairs_dataset(tmp_path / "d", n=6, size=(48, 64))
    code = main(["train", "mbv2_unet_sod", str(data), "--benchmark", "--size", "32", "--batch", "2",
                 "--repeats", "1", "--steps", "1", "--precision", "fp32", "--workers", "0",
                 "--cache", str(tmp_path / "cache")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    text = "\n".join(lines)
    assert "fp32 plain + loader" in text and "default + loader" in text
    assert "loader alone, 1 process: decode + augment" in text and "loader alone, 1 process: cache + augment" in text
    assert lines[-1].startswith("speed-up ")
