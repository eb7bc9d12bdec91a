"""Each registered loss is finite, differentiable, zero-ish at the truth and found by arch/task."""
import pytest
import torch

from edgematte.train.losses import LOSSES, loss_for


def _batch(n=2, h=32, w=32):
    g = torch.Generator().manual_seed(0)
    alpha = torch.zeros(n, 1, h, w)
    alpha[:, :, 8:24, 8:24] = 1.0
    alpha[:, :, 8:24, 7] = 0.5
    trimap = torch.where(alpha > 0.99, torch.ones_like(alpha), torch.zeros_like(alpha))
    trimap[:, :, 6:26, 6:10] = 0.5
    cls = (trimap[:, 0] * 2).long()
    return {"image": torch.randn(n, 3, h, w, generator=g), "alpha": alpha, "trimap": trimap, "trimap_cls": cls}


def _outputs(arch, batch, requires_grad=True):
    n, _, h, w = batch["alpha"].shape
    g = torch.Generator().manual_seed(1)
    if arch == "modnet":
        raw = {"semantic": torch.randn(n, 1, h // 16, w // 16, generator=g),
               "detail": torch.randn(n, 1, h, w, generator=g), "matte": torch.randn(n, 1, h, w, generator=g)}
    elif arch in ("u2net", "u2netp"):
        raw = {"logits": torch.randn(n, 7, h, w, generator=g)}
    elif arch == "mbv2_unet_sod":
        raw = {"logits": torch.randn(n, 1, h, w, generator=g)}
    else:
        raw = {"logits": torch.randn(n, 3, h, w, generator=g)}
    leaves = {k: v.requires_grad_(requires_grad) for k, v in raw.items()}
    out = {k: (v if k == "logits" else torch.sigmoid(v)) for k, v in leaves.items()}
    if arch == "modnet":
        out["out"] = out["matte"]
    elif arch in ("u2net", "u2netp", "mbv2_unet_sod"):
        out["out"] = torch.sigmoid(out["logits"][:, :1])
    else:
        out["out"] = torch.softmax(out["logits"], 1)
    return leaves, out


@pytest.mark.parametrize("arch,task", [("modnet", "alpha"), ("u2net", "saliency"), ("u2netp", "saliency"),
                                       ("mbv2_unet", "trimap"), ("mbv2_unet_sod", "saliency")])
def test_loss_finite_and_differentiable(arch, task):
    batch = _batch()
    leaves, out = _outputs(arch, batch)
    loss, parts = loss_for(arch, task)(out, batch)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.item() > 0
    assert all(isinstance(v, float) for v in parts.values())
    loss.backward()
    for leaf in leaves.values():
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0


def test_registry_lookup_arch_then_task():
    assert loss_for("modnet", "alpha") is LOSSES["modnet"]
    assert loss_for("some_new_saliency_net", "saliency") is LOSSES["saliency"]
    assert loss_for("mbv2_unet", "trimap") is LOSSES["trimap"]
    assert loss_for("mbv2_unet_sod", "saliency") is LOSSES["u2netp"]  # BCE on logits, not on probabilities
    with pytest.raises(KeyError):
        loss_for("nope", "nope")


def test_modnet_loss_small_at_the_truth():
    batch = _batch()
    alpha = batch["alpha"]
    semantic = torch.nn.functional.interpolate(alpha, scale_factor=1 / 16, mode="bilinear")
    from edgematte.train.losses import _gaussian_blur3

    truth = {"semantic": _gaussian_blur3(semantic), "detail": alpha, "matte": alpha, "out": alpha}
    loss, _ = loss_for("modnet", "alpha")(truth, batch)
    assert loss.item() < 1e-6
    _, noisy = _outputs("modnet", batch, requires_grad=False)
    assert loss_for("modnet", "alpha")(noisy, batch)[0].item() > 0.5


def test_trimap_and_saliency_losses_prefer_truth():
    batch = _batch()
    logits = torch.nn.functional.one_hot(batch["trimap_cls"], 3).permute(0, 3, 1, 2).float() * 20
    good, _ = LOSSES["trimap"]({"logits": logits}, batch)
    bad, _ = LOSSES["trimap"]({"logits": -logits}, batch)
    assert good < 1e-3 < bad
    sal_good, _ = LOSSES["saliency"]({"out": batch["alpha"]}, batch)
    sal_bad, _ = LOSSES["saliency"]({"out": 1 - batch["alpha"]}, batch)
    assert sal_good < sal_bad
