"""Alpha-matting refinement of a predicted alpha: a trimap from the alpha (sure foreground by erosion, sure
background outside a dilation), then pymatting's closed-form or KNN matting solves the band between them against
the photo's colours, as rembg's alpha_matting option does. Opt-in: it costs seconds where the network costs ms."""
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import cv2
import numpy as np

from .errors import InputError

METHODS = ("cf", "knn")  # pymatting's estimate_alpha_cf (closed-form, Levin et al.) and estimate_alpha_knn
HELP = ("refine the alpha's edge band with alpha matting against the photo's colours (pymatting; cf: "
        "closed-form, knn: KNN matting); seconds per image, for stills")


@dataclass(frozen=True)
class Refine:
    """Trimap settings: `fg_threshold`/`bg_threshold` split the alpha, `band` (a fraction of the image's mean
    side, at least 3 px) is how far the unknown band reaches to each side of the predicted edge."""

    method: str = "cf"
    fg_threshold: float = 0.9
    bg_threshold: float = 0.1
    band: float = 0.01


def trimap_from_alpha(alpha: np.ndarray, settings: Refine = Refine()) -> np.ndarray:
    """float64 HxW trimap in pymatting's values: 1 sure foreground, 0 sure background, 0.5 to be solved."""
    h, w = alpha.shape[:2]
    radius = max(3, int(round(settings.band * (h + w) / 2.0)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    fg = cv2.erode((alpha >= settings.fg_threshold).astype(np.uint8), kernel).astype(bool)
    maybe = cv2.dilate((alpha > settings.bg_threshold).astype(np.uint8), kernel).astype(bool)
    trimap = np.full((h, w), 0.5)
    trimap[~maybe] = 0.0
    trimap[fg] = 1.0
    return trimap


def _box(unknown: np.ndarray, margin: int) -> Tuple[slice, slice]:
    """The bounding box of the unknown pixels, grown by `margin` (the solver needs known pixels around them)."""
    rows, cols = np.nonzero(unknown)
    h, w = unknown.shape
    return (slice(max(0, rows.min() - margin), min(h, rows.max() + margin + 1)),
            slice(max(0, cols.min() - margin), min(w, cols.max() + margin + 1)))


def refiner(method: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """refine_alpha with `method` bound, checked and pymatting loaded now (once), not on the first image."""
    from .compose import load_pymatting

    settings = Refine(method=method)
    _solver(settings)
    load_pymatting(feature="--refine")
    return lambda bgr, alpha: refine_alpha(bgr, alpha, settings)


def _solver(settings: Refine) -> Callable[..., np.ndarray]:
    """pymatting's solver for the settings' method; InputError for a method it does not have."""
    if settings.method not in METHODS:
        raise InputError("refine method must be one of {}, got {!r}".format(", ".join(METHODS), settings.method))
    from .compose import load_pymatting

    solvers = {"cf": "estimate_alpha_cf", "knn": "estimate_alpha_knn"}  # type: Dict[str, str]
    return getattr(load_pymatting(feature="--refine"), solvers[settings.method])


def refine_alpha(bgr: np.ndarray, alpha: np.ndarray, settings: Refine = Refine()) -> np.ndarray:
    """The alpha with its edge band re-solved by alpha matting (HxW float32 in [0,1]); sure pixels keep 0 or 1
    and an alpha with no edge (all foreground or all background) comes back unchanged."""
    solve = _solver(settings)
    alpha = np.clip(np.asarray(alpha, np.float32), 0.0, 1.0)
    trimap = trimap_from_alpha(alpha, settings)
    unknown = trimap == 0.5
    if not unknown.any() or unknown.all() or not (trimap == 1.0).any():
        return alpha  # nothing to solve, or nothing known to solve it from
    rows, cols = _box(unknown, margin=8)
    rgb = bgr[rows, cols, ::-1].astype(np.float64) / 255.0
    solved = np.clip(solve(rgb, trimap[rows, cols]), 0.0, 1.0).astype(np.float32)
    out = np.where(trimap == 1.0, 1.0, np.where(trimap == 0.0, 0.0, alpha)).astype(np.float32)
    region = out[rows, cols]
    region[unknown[rows, cols]] = solved[unknown[rows, cols]]
    return out


__all__ = ["Refine", "METHODS", "HELP", "trimap_from_alpha", "refine_alpha", "refiner"]
