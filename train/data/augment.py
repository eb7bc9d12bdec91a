"""Training augmentation on numpy arrays: random scale/crop to the training size, flip, colour jitter; image and alpha move together."""
from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np


@dataclass
class AugmentConfig:
    """How strongly to augment; defaults suit both saliency and portrait training."""

    scale: Tuple[float, float] = (1.0, 1.3)  # stretch to size*scale before the random crop (>= 1: no padding)
    aspect: float = 0.15  # log-uniform aspect jitter of the stretch, +-15 %
    flip: float = 0.5  # probability of a horizontal flip
    brightness: float = 0.2  # +- fraction
    contrast: float = 0.2  # +- fraction
    saturation: float = 0.2  # +- fraction
    hue: float = 6.0  # +- degrees (OpenCV hue units are 2 degrees)
    jitter_prob: float = 0.8  # probability of applying the colour jitter


def resize_pair(image: np.ndarray, alpha: np.ndarray, size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """Stretch image and alpha to (H, W) = size, as the predictors do at inference time."""
    h, w = size
    interp = cv2.INTER_AREA if image.shape[0] > h and image.shape[1] > w else cv2.INTER_LINEAR
    return (cv2.resize(image, (w, h), interpolation=interp),
            cv2.resize(alpha, (w, h), interpolation=interp))


def colour_jitter(image: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Brightness, contrast, saturation and hue jitter of a BGR uint8 image (alpha is untouched)."""
    out = image.astype(np.float32)
    out *= 1.0 + rng.uniform(-cfg.brightness, cfg.brightness)
    mean = out.mean()
    out = (out - mean) * (1.0 + rng.uniform(-cfg.contrast, cfg.contrast)) + mean
    hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-cfg.hue, cfg.hue) / 2.0) % 180.0
    hsv[..., 1] *= 1.0 + rng.uniform(-cfg.saturation, cfg.saturation)
    hsv = np.clip(hsv, 0, [179, 255, 255]).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def augment(image: np.ndarray, alpha: np.ndarray, size: Tuple[int, int], rng: np.random.Generator,
            cfg: AugmentConfig = AugmentConfig()) -> Tuple[np.ndarray, np.ndarray]:
    """Random stretch + crop to `size` (H, W), horizontal flip and colour jitter, alpha aligned with the image."""
    h, w = size
    scale = rng.uniform(cfg.scale[0], cfg.scale[1])
    aspect = float(np.exp(rng.uniform(-cfg.aspect, cfg.aspect)))
    sh = max(h, int(round(h * scale * aspect)))
    sw = max(w, int(round(w * scale / aspect)))
    image, alpha = resize_pair(image, alpha, (sh, sw))
    top = int(rng.integers(0, sh - h + 1))
    left = int(rng.integers(0, sw - w + 1))
    image = image[top:top + h, left:left + w]
    alpha = alpha[top:top + h, left:left + w]
    if rng.random() < cfg.flip:
        image, alpha = image[:, ::-1], alpha[:, ::-1]
    if rng.random() < cfg.jitter_prob:
        image = colour_jitter(image, rng, cfg)
    return np.ascontiguousarray(image), np.ascontiguousarray(alpha, dtype=np.float32)
