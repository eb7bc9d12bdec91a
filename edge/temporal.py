"""Temporal stability for video: flow-guided, motion-adaptive exponential smoothing of alpha.

The previous smoothed alpha is warped onto the current frame by dense optical flow (OpenCV's DIS, on a small gray
copy), then blended with the new alpha. Where the warp explains the new frame (still or rigidly moving content) the
blend keeps most of the history, which removes flicker; where it does not (new content, occlusions, fast motion) or
where the model's alpha changed by a lot, the new alpha wins, so moving edges do not lag.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import cv2
import numpy as np

DEFAULT_STRENGTH = 0.9  # the share of history kept where the frame is fully explained by the warp
FLOW_SIDE = 160  # longer side of the gray copy the flow is computed on
WORK_SIDE = 640  # larger alphas are smoothed at this longer side (models predict at 224-512) and scaled back
RESIDUAL_SCALE = 16.0  # gray levels of unexplained change at which the new alpha takes over completely
CHANGE_START, CHANGE_FULL = 0.6, 1.0  # |alpha - warped history| from which the new alpha starts to / fully wins


class AlphaSmoother:
    """Call with (frame, alpha) for each frame in order; returns the smoothed alpha (same shape and dtype)."""

    def __init__(self, strength: float = DEFAULT_STRENGTH, flow_side: int = FLOW_SIDE) -> None:
        if not 0.0 <= strength < 1.0:
            raise ValueError("smoothing strength must be in [0, 1), got {}".format(strength))
        self.strength = float(strength)
        self.flow_side = int(flow_side)
        self._flow = _dis()
        self.reset()

    def reset(self) -> None:
        """Forget the history (a new scene, a reconnected stream)."""
        self._gray = None  # type: Optional[np.ndarray]
        self._alpha = None  # type: Optional[np.ndarray]

    def _small_gray(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        scale = min(1.0, self.flow_side / float(max(h, w)))
        size = (max(8, int(round(w * scale))), max(8, int(round(h * scale))))
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)

    def __call__(self, frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        gray = self._small_gray(frame)
        current = np.asarray(alpha, dtype=np.float32)
        h, w = current.shape[:2]
        if max(h, w) > WORK_SIDE:  # the blend costs ~10 full-size passes: run it on a smaller copy
            scale = WORK_SIDE / float(max(h, w))
            small = cv2.resize(current, (max(1, int(round(w * scale))), max(1, int(round(h * scale)))),
                               interpolation=cv2.INTER_AREA)
            smoothed = self._smooth(gray, small)
            if smoothed is small:
                return alpha
            out = cv2.resize(smoothed, (w, h), interpolation=cv2.INTER_LINEAR).reshape(current.shape)
            return out.astype(np.asarray(alpha).dtype, copy=False)
        smoothed = self._smooth(gray, current)
        if smoothed is current:
            return alpha
        return smoothed.astype(np.asarray(alpha).dtype, copy=False)

    def _smooth(self, gray: np.ndarray, current: np.ndarray) -> np.ndarray:
        """The smoothed alpha at `current`'s size (`current` itself on a first or resized frame)."""
        if (self._alpha is None or self._alpha.shape != current.shape or self._gray is None
                or self._gray.shape != gray.shape):
            self._gray, self._alpha = gray, current.copy()
            return current
        warped, weight = self._warp_and_weight(gray, current)
        out = cv2.blendLinear(current, warped, weight, 1.0 - weight)  # per-pixel mix, threaded, no temporaries
        self._gray, self._alpha = gray, out
        return out

    def _warp_and_weight(self, gray: np.ndarray, current: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The history warped onto this frame and, per pixel, how much of the new alpha to take (0..1)."""
        sh, sw = gray.shape
        h, w = current.shape[:2]
        flow = self._flow.calc(gray, self._gray, None)  # for each pixel now, where it was in the previous frame
        prev_gray = cv2.remap(self._gray, cv2.add(_grid(sh, sw), flow), None, cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        residual = cv2.GaussianBlur(cv2.absdiff(gray, prev_gray).astype(np.float32), (0, 0), 1.0)
        base = 1.0 - self.strength
        small_weight = cv2.min(residual * (1.0 / RESIDUAL_SCALE) + base, 1.0)
        flow = flow * np.array([w / float(sw), h / float(sh)], np.float32)  # in full-size pixels
        coords = cv2.add(_grid(h, w), cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR))
        warped = cv2.remap(self._alpha, coords, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        weight = cv2.resize(small_weight, (w, h), interpolation=cv2.INTER_LINEAR)
        change = cv2.absdiff(current, warped)
        if change.ndim == 3:
            change = change.max(axis=2)
        confident = cv2.min(cv2.max((change - CHANGE_START) * (1.0 / (CHANGE_FULL - CHANGE_START)), 0.0), 1.0)
        return warped, cv2.max(weight, confident)


_GRIDS = {}  # type: dict


def _grid(h: int, w: int) -> np.ndarray:
    """HxWx2 float32 pixel coordinates (x, y), cached per size (a flow added to it is a remap map)."""
    if (h, w) not in _GRIDS:
        if len(_GRIDS) > 4:
            _GRIDS.clear()
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        _GRIDS[(h, w)] = np.dstack([xs, ys])
    return _GRIDS[(h, w)]


def _dis() -> Any:
    """OpenCV's DIS optical flow at its fastest preset (present in OpenCV >= 4.1 main modules)."""
    create = getattr(cv2, "DISOpticalFlow_create", None)
    if create is None:  # pragma: no cover - very old OpenCV
        raise RuntimeError("this OpenCV has no DIS optical flow; run with --no-smooth")
    return create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)


__all__ = ["AlphaSmoother", "DEFAULT_STRENGTH"]
