"""Fast per-frame renderers for blur and replace: the alpha-normalised bokeh computed on a downscaled copy and
blended back at full size with OpenCV, and the replacement plate prepared once per frame size, so that effects keep
up with video (edge.compose keeps the exact, full-resolution versions)."""
from __future__ import annotations

import math
from typing import Any, Dict, Tuple, Union

import cv2
import numpy as np

from . import compose
from .errors import InputError

SMALL_SIGMA = 2.5  # the Gaussian sigma, in pixels of the downscaled copy, at which the bokeh is computed
MIN_SMALL_SIDE = 16  # never downscale a frame's shorter side below this


def _plain_alpha(alpha: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """Alpha as contiguous float32 HxW in [0,1] (trimaps as fg + unknown/2), checked against the frame size."""
    return np.ascontiguousarray(compose._alpha(alpha, shape)[:, :, 0])


def downscale_factor(sigma: float, height: int, width: int) -> float:
    """How much the bokeh can be downscaled so that sigma stays SMALL_SIGMA pixels there (1 = not at all)."""
    factor = max(1.0, sigma / SMALL_SIGMA)
    return max(1.0, min(factor, min(height, width) / float(MIN_SMALL_SIDE)))


def blur_background(bgr: np.ndarray, alpha: np.ndarray, sigma: float) -> np.ndarray:
    """blur(bg*(1-a)) / blur(1-a) (plain blur where no background is near), computed downscaled; BGR uint8 at the
    frame size. The box-filter of INTER_AREA adds f^2/12 of variance, taken off the small Gaussian's sigma."""
    h, w = bgr.shape[:2]
    a = _plain_alpha(alpha, bgr.shape)
    if sigma <= 0:
        return bgr.copy()
    factor = downscale_factor(sigma, h, w)
    size = (max(1, int(round(w / factor))), max(1, int(round(h / factor))))
    scale = w / float(size[0])
    small_sigma = math.sqrt(max((sigma / scale) ** 2 - 1.0 / 12.0, 0.25))
    if size != (w, h):
        image = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        weight = 1.0 - cv2.resize(a, size, interpolation=cv2.INTER_AREA)
    else:
        image, weight = bgr.astype(np.float32), 1.0 - a
    numerator = cv2.GaussianBlur(image * weight[:, :, None], (0, 0), small_sigma, borderType=cv2.BORDER_REFLECT)
    denominator = cv2.GaussianBlur(weight, (0, 0), small_sigma, borderType=cv2.BORDER_REFLECT)[:, :, None]
    plain = cv2.GaussianBlur(image, (0, 0), small_sigma, borderType=cv2.BORDER_REFLECT)
    background = np.where(denominator > 1e-3, numerator / np.maximum(denominator, 1e-3), plain)
    background = np.clip(background + 0.5, 0, 255).astype(np.uint8)
    if size != (w, h):
        background = cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR)
    return background


def composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """foreground * a + background * (1 - a) as uint8, by cv2.blendLinear (threaded, no float copies)."""
    a = _plain_alpha(alpha, foreground.shape)
    return cv2.blendLinear(np.ascontiguousarray(foreground), np.ascontiguousarray(background), a, 1.0 - a)


def blur(bgr: np.ndarray, alpha: np.ndarray, strength: float = compose.DEFAULT_BLUR_STRENGTH) -> np.ndarray:
    """Bokeh as compose.blur (sigma = strength% of the longer side, alpha-normalised), at a fraction of the cost."""
    if strength < 0:
        raise InputError("blur strength must be >= 0, got {}".format(strength))
    sigma = strength / 100.0 * max(bgr.shape[:2])
    return composite(bgr, alpha, blur_background(bgr, alpha, sigma))


class Replacer:
    """compose.replace with the plate (a colour or an image resized to cover) built once per frame size."""

    def __init__(self, background: Union[Tuple[int, int, int], np.ndarray]) -> None:
        self.background = background
        self._plates = {}  # type: Dict[Tuple[int, int], np.ndarray]

    def plate(self, height: int, width: int) -> np.ndarray:
        """The BGR uint8 plate for a frame of this size."""
        key = (height, width)
        if key not in self._plates:
            background = self.background  # type: Any
            if isinstance(background, np.ndarray):
                if background.ndim == 2:
                    background = cv2.cvtColor(background, cv2.COLOR_GRAY2BGR)
                plate = np.ascontiguousarray(compose.cover(background[:, :, :3], height, width))
            else:
                plate = np.empty((height, width, 3), np.uint8)
                plate[:] = np.asarray(background, dtype=np.uint8)[:3]
            if len(self._plates) > 8:  # frame sizes of a stream rarely change; keep the cache small
                self._plates.clear()
            self._plates[key] = plate
        return self._plates[key]

    def __call__(self, bgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """The subject over the plate; BGR uint8."""
        return composite(bgr, alpha, self.plate(*bgr.shape[:2]))


__all__ = ["blur", "blur_background", "composite", "Replacer", "downscale_factor", "SMALL_SIGMA"]
