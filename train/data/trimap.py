"""Trimaps from alpha by erosion and dilation: the unknown band the matting losses and the trimap net work on."""
from typing import Optional

import cv2
import numpy as np

BG, UNKNOWN, FG = 0, 1, 2  # trimap classes
TRIMAP_VALUES = (0, 128, 255)  # the same classes as 8-bit trimap pixel values


def band_kernel_size(h: int, w: int, ratio: float = 0.03) -> int:
    """Odd kernel side proportional to the image size: `ratio` of the mean side, at least 3 pixels."""
    side = max(3, int(round(ratio * (h + w) / 2.0)))
    return side if side % 2 == 1 else side + 1


def trimap_classes(alpha: np.ndarray, ratio: float = 0.03, rng: Optional[np.random.Generator] = None,
                   jitter: float = 0.5, low: float = 0.01, high: float = 0.99) -> np.ndarray:
    """uint8 HxW classes 0=bg, 1=unknown, 2=fg: the unknown band is dilate(alpha>low) minus erode(alpha>=high).

    With `rng`, the band width varies by up to +-`jitter` of the nominal width (training augmentation).
    """
    h, w = alpha.shape[:2]
    if rng is not None and jitter > 0:
        ratio = ratio * float(rng.uniform(1.0 - jitter, 1.0 + jitter))
    size = band_kernel_size(h, w, ratio)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    fg = cv2.erode((alpha >= high).astype(np.uint8), kernel)
    maybe_fg = cv2.dilate((alpha > low).astype(np.uint8), kernel)
    classes = np.full((h, w), UNKNOWN, np.uint8)
    classes[maybe_fg == 0] = BG
    classes[fg == 1] = FG
    return classes


def trimap_image(alpha: np.ndarray, ratio: float = 0.03) -> np.ndarray:
    """uint8 HxW trimap with pixel values 0 (bg), 128 (unknown), 255 (fg)."""
    return np.asarray(TRIMAP_VALUES, np.uint8)[trimap_classes(alpha, ratio)]


def classes_to_unit(classes: np.ndarray) -> np.ndarray:
    """Trimap classes as float32 0 / 0.5 / 1, the form MODNet's losses use."""
    return classes.astype(np.float32) * 0.5
