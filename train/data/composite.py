"""Composite foregrounds onto other backgrounds with their alpha: grows a small portrait set with new scenes."""
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from edgematte.edge.datasets import find_pairs, list_images, read_bgr
from edgematte.edge.errors import InputError


def background_files(roots: Sequence[str]) -> List[Path]:
    """Background image files from dataset folders (their images, any layout) or plain folders of images."""
    files = []  # type: List[Path]
    for root in roots:
        path = Path(root)
        try:
            files.extend(pair.image for pair in find_pairs(path))
            continue
        except InputError:
            pass
        if not path.is_dir():
            raise InputError("{}: background folder not found".format(path))
        found = list_images(path)
        if not found:
            raise InputError("{}: no background images found".format(path))
        files.extend(found)
    return files


def random_crop_to(image: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Scale `image` to cover (h, w) keeping its aspect, then crop a random h x w window."""
    ih, iw = image.shape[:2]
    scale = max(h / ih, w / iw) * rng.uniform(1.0, 1.5)
    nh, nw = max(h, int(np.ceil(ih * scale))), max(w, int(np.ceil(iw * scale)))
    image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top = int(rng.integers(0, nh - h + 1))
    left = int(rng.integers(0, nw - w + 1))
    return image[top:top + h, left:left + w]


def composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """alpha * foreground + (1 - alpha) * background, BGR uint8 (background already at the foreground's size)."""
    a = alpha[..., None].astype(np.float32)
    out = foreground.astype(np.float32) * a + background.astype(np.float32) * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def shrink_into(image: np.ndarray, alpha: np.ndarray, scale: float,
                rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, Tuple[int, int]]:
    """The sample scaled by `scale` (< 1) and its top-left corner in the full frame: a foreground cut by the
    bottom edge (a bust) stays on the bottom edge, any other lands anywhere; the horizontal place is random."""
    h, w = alpha.shape[:2]
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    small_alpha = cv2.resize(alpha, (nw, nh), interpolation=cv2.INTER_AREA)
    cut_at_bottom = bool((alpha[-1] > 0.5).any())
    top = h - nh if cut_at_bottom else int(rng.integers(0, h - nh + 1))
    left = int(rng.integers(0, w - nw + 1))
    return small, small_alpha, (top, left)


class Compositor:
    """Replaces a sample's background by a random background image with probability `prob`; with `zoom` < 1 the
    foreground is also shrunk to a random scale in [zoom, 1], so close-ups teach the framing of wider shots."""

    def __init__(self, backgrounds: Sequence[Path], prob: float = 0.5, zoom: float = 1.0) -> None:
        if not backgrounds:
            raise InputError("compositing needs at least one background image")
        if not 0.0 < zoom <= 1.0:
            raise InputError("composite zoom must lie in (0, 1], got {}".format(zoom))
        self.backgrounds = list(backgrounds)
        self.prob = prob
        self.zoom = zoom

    @classmethod
    def from_roots(cls, roots: Sequence[str], prob: float = 0.5, zoom: float = 1.0) -> "Compositor":
        """A compositor over every image found under `roots`."""
        return cls(background_files(roots), prob, zoom)

    def __call__(self, image: np.ndarray, alpha: np.ndarray, rng: np.random.Generator,
                 exclude: Optional[Path] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(image, alpha), or (with probability `prob`) the foreground over another background and its alpha."""
        if rng.random() >= self.prob:
            return image, alpha
        path = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        if exclude is not None and path == exclude and len(self.backgrounds) > 1:
            path = self.backgrounds[(self.backgrounds.index(path) + 1) % len(self.backgrounds)]
        background = random_crop_to(read_bgr(path), image.shape[0], image.shape[1], rng)
        # The image itself stands in for the foreground colour: exact where alpha is 1, a little of the old
        # background bleeds in at soft edges.
        if self.zoom < 1.0:
            scale = float(rng.uniform(self.zoom, 1.0))
            small, small_alpha, (top, left) = shrink_into(image, alpha, scale, rng)
            out = background.copy()
            nh, nw = small_alpha.shape[:2]
            window = out[top:top + nh, left:left + nw]
            out[top:top + nh, left:left + nw] = composite(small, small_alpha, window)
            full = np.zeros_like(alpha)
            full[top:top + nh, left:left + nw] = small_alpha
            return out, full
        return composite(image, alpha, background), alpha
