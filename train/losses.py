"""Training losses per model family, looked up in a registry by architecture, then by task."""
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

Outputs = Dict[str, torch.Tensor]
Batch = Dict[str, torch.Tensor]
LossFn = Callable[[Outputs, Batch], Tuple[torch.Tensor, Dict[str, float]]]

LOSSES = {}  # type: Dict[str, LossFn]


def register_loss(*keys: str) -> Callable[[LossFn], LossFn]:
    """Register a loss under architecture names and/or task names."""
    def wrap(fn: LossFn) -> LossFn:
        for key in keys:
            LOSSES[key] = fn
        return fn
    return wrap


def loss_for(arch: str, task: str, name: Optional[str] = None) -> LossFn:
    """The loss called `name` if given, else the loss of the architecture, else the loss of its task."""
    if name is not None:
        if name not in LOSSES:
            raise KeyError("unknown loss {!r}; known: {}".format(name, ", ".join(sorted(LOSSES))))
        return LOSSES[name]
    if arch in LOSSES:
        return LOSSES[arch]
    if task in LOSSES:
        return LOSSES[task]
    raise KeyError("no loss registered for arch {!r} or task {!r}".format(arch, task))


def _gaussian_blur3(x: torch.Tensor) -> torch.Tensor:
    """3x3 Gaussian blur (sigma 0.8, reflection padding), MODNet's GaussianBlurLayer(1, 3)."""
    g = torch.exp(-torch.arange(-1, 2, dtype=x.dtype, device=x.device) ** 2 / (2 * 0.8 ** 2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=x.shape[1])


@register_loss("modnet", "lite0_modnet", "lite1_modnet", "lite2_modnet")
def modnet_loss(out: Outputs, batch: Batch, semantic_scale: float = 10.0, detail_scale: float = 10.0,
                matte_scale: float = 1.0) -> Tuple[torch.Tensor, Dict[str, float]]:
    """MODNet supervised loss (ZHKKKe/MODNet src/trainer.py): 10 * semantic MSE vs the blurred 1/16 matte,
    10 * detail L1 in the trimap's unknown band, 1 * matte L1 + compositional L1 (4x weight in the band)."""
    image, alpha, trimap = batch["image"], batch["alpha"], batch["trimap"]
    semantic, detail, matte = out["semantic"].float(), out["detail"].float(), out["matte"].float()
    known = (trimap < 0.5) | (trimap > 0.5)
    gt_semantic = _gaussian_blur3(F.interpolate(alpha, size=semantic.shape[-2:], mode="bilinear",
                                                align_corners=False))
    semantic_loss = semantic_scale * F.mse_loss(semantic, gt_semantic)
    detail_loss = detail_scale * F.l1_loss(torch.where(known, trimap, detail), torch.where(known, trimap, alpha))
    band_matte = torch.where(known, trimap, matte)
    matte_l1 = F.l1_loss(matte, alpha) + 4.0 * F.l1_loss(band_matte, alpha)
    matte_comp = F.l1_loss(image * matte, image * alpha) + 4.0 * F.l1_loss(image * band_matte, image * alpha)
    matte_loss = matte_scale * (matte_l1 + matte_comp)
    total = semantic_loss + detail_loss + matte_loss
    return total, {"semantic": float(semantic_loss.detach()), "detail": float(detail_loss.detach()),
                   "matte": float(matte_loss.detach())}


@register_loss("u2net", "u2netp", "mbv2_unet_sod")
def u2net_loss(out: Outputs, batch: Batch) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Sum of BCE over every logits channel: U2Net's deep supervision (fused + six side outputs); plain BCE for
    one-channel saliency nets (mbv2_unet_sod)."""
    logits = out["logits"].float()
    target = batch["alpha"].expand_as(logits)
    per_output = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(0, 2, 3))
    return per_output.sum(), {"fused": float(per_output[0].detach())}


@register_loss("bce_iou", "lite0_unet_sod", "lite1_unet_sod", "lite2_unet_sod")
def bce_iou_loss(out: Outputs, batch: Batch) -> Tuple[torch.Tensor, Dict[str, float]]:
    """BCE + soft IoU per logits channel (BASNet's hybrid loss without SSIM): BCE trains every pixel, the IoU term
    weighs the whole object's overlap, which sharpens maps and fights the blurry all-grey optimum of BCE alone."""
    logits = out["logits"].float()
    target = batch["alpha"].expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(0, 2, 3))
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(dim=(2, 3))
    union = (prob + target - prob * target).sum(dim=(2, 3))
    iou = (1.0 - (inter + 1.0) / (union + 1.0)).mean(dim=0)
    total = (bce + iou).sum()
    return total, {"bce": float(bce[0].detach()), "iou": float(iou[0].detach())}


@register_loss("trimap")
def trimap_loss(out: Outputs, batch: Batch) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Cross-entropy of the trimap logits against the trimap classes (bg, unknown, fg)."""
    loss = F.cross_entropy(out["logits"].float(), batch["trimap_cls"])
    return loss, {"ce": float(loss.detach())}


@register_loss("saliency")
def saliency_loss(out: Outputs, batch: Batch) -> Tuple[torch.Tensor, Dict[str, float]]:
    """BCE of a saliency probability map (for saliency models without deep-supervision logits)."""
    prob = out["out"].float().clamp(1e-6, 1 - 1e-6)
    loss = F.binary_cross_entropy(prob, batch["alpha"])
    return loss, {"bce": float(loss.detach())}


@register_loss("alpha")
def alpha_loss(out: Outputs, batch: Batch) -> Tuple[torch.Tensor, Dict[str, float]]:
    """L1 matte + compositional L1, for alpha models without MODNet's branch outputs."""
    matte, alpha, image = out["out"].float(), batch["alpha"], batch["image"]
    l1 = F.l1_loss(matte, alpha)
    comp = F.l1_loss(image * matte, image * alpha)
    return l1 + comp, {"l1": float(l1.detach()), "comp": float(comp.detach())}
