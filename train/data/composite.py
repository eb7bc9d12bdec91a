"""Composite foregrounds onto other backgrounds with their alpha: grows a small portrait set with new scenes."""
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np

from edgematte.edge.datasets import IMAGE_EXTS, find_pairs, read_bgr
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
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
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


class Compositor:
    """Replaces a sample's background by a random background image with probability `prob`."""

    def __init__(self, backgrounds: Sequence[Path], prob: float = 0.5) -> None:
        if not backgrounds:
            raise InputError("compositing needs at least one background image")
        self.backgrounds = list(backgrounds)
        self.prob = prob

    @classmethod
    def from_roots(cls, roots: Sequence[str], prob: float = 0.5) -> "Compositor":
        """A compositor over every image found under `roots`."""
        return cls(background_files(roots), prob)

    def __call__(self, image: np.ndarray, alpha: np.ndarray, rng: np.random.Generator,
                 exclude: Optional[Path] = None) -> np.ndarray:
        """The image, or (with probability `prob`) its foreground over another background."""
        if rng.random() >= self.prob:
            return image
        path = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        if exclude is not None and path == exclude and len(self.backgrounds) > 1:
            path = self.backgrounds[(self.backgrounds.index(path) + 1) % len(self.backgrounds)]
        background = random_crop_to(read_bgr(path), image.shape[0], image.shape[1], rng)
        # The image itself stands in for the foreground colour: exact where alpha is 1, a little of the old
        # background bleeds in at soft edges.
        return composite(image, alpha, background)
