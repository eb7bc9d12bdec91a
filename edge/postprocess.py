"""Mask post-processing (`--post-process` / `-ppm`): drop the low-confidence haze and small blobs a model leaves
in the background, fill small holes in the subject, and keep a soft band along the subject's edge; numpy + OpenCV."""
from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np

HELP = ("clean the mask: drop background haze and small specks, fill small holes, keep a soft band along the "
        "outline; use it when masks show a faint veil over the background or stray specks, as on portraits and "
        "product shots (held-out portraits: MAE 0.109 -> 0.094, boundary IoU 0.370 -> 0.373); leave it off for "
        "semi-transparent detail away from the outline (loose hair, smoke, glass) or many tiny subjects")


@dataclass(frozen=True)
class PostProcess:
    """The knobs: fractions of the image so that results do not depend on its resolution."""

    threshold: float = 0.5  # what counts as subject when finding blobs and holes
    band: float = 0.005  # half-width of the soft edge band, fraction of the image diagonal
    min_blob: float = 0.005  # subject blobs smaller than this fraction of the image go (the largest always stays)
    max_hole: float = 0.005  # holes in the subject smaller than this fraction of the image are filled


DEFAULT = PostProcess()


def _as_alpha(alpha: np.ndarray) -> np.ndarray:
    """HxW float32 in [0,1]; trimap probabilities (HxWx3) as P(fg) + P(unknown)/2, HxWx1 squeezed."""
    a = np.asarray(alpha, dtype=np.float32)
    if a.ndim == 3 and a.shape[2] == 3:
        a = a[..., 2] + 0.5 * a[..., 1]
    elif a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    return np.clip(a, 0.0, 1.0)


def _components(binary: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """8-connected labels of a uint8 0/1 map and the area of each label (label 0 is the background)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    return labels, stats[:count, cv2.CC_STAT_AREA]


def remove_blobs(core: np.ndarray, min_area: float) -> np.ndarray:
    """Keep the subject blobs of at least `min_area` pixels, and always the largest one; uint8 0/1."""
    labels, areas = _components(core)
    if len(areas) <= 1:
        return core
    keep = areas >= min_area
    keep[0] = False
    keep[1 + int(np.argmax(areas[1:]))] = True
    return keep[labels].astype(np.uint8)


def fill_holes(core: np.ndarray, max_area: float) -> np.ndarray:
    """Fill background pockets smaller than `max_area` pixels that do not touch the image border; uint8 0/1."""
    labels, areas = _components((1 - core).astype(np.uint8))
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    small = areas < max_area
    small[0] = False
    small[border] = False
    return np.where(small[labels], 1, core).astype(np.uint8)


def edge_band(core: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within `radius` of the subject's outline (dilated minus eroded), as a bool map."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(core, kernel) != cv2.erode(core, kernel, borderType=cv2.BORDER_REPLICATE)


def post_process(alpha: np.ndarray, settings: PostProcess = DEFAULT) -> np.ndarray:
    """The cleaned alpha (HxW float32 in [0,1]): hard 0/1 outside the edge band of the kept subject, soft inside."""
    a = _as_alpha(alpha)
    h, w = a.shape
    area = float(h * w)
    raw = (a >= settings.threshold).astype(np.uint8)
    if not raw.any():
        return np.zeros_like(a)
    core = fill_holes(remove_blobs(raw, settings.min_blob * area), settings.max_hole * area)
    radius = max(1, int(round(settings.band * np.hypot(h, w))))
    soft = edge_band(core, radius) & (raw == core)  # removed blobs and filled holes stay hard even in the band
    return np.where(soft, a, core.astype(np.float32)).astype(np.float32)


__all__ = ["PostProcess", "DEFAULT", "HELP", "post_process", "remove_blobs", "fill_holes", "edge_band"]
