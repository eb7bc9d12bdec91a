"""Decode once: every training pair stretched to side x side and kept as uint8 in two memory-mapped files, so epochs
after the first read pixels instead of decoding JPEG/PNG (the augmentation stretches to the training size without
keeping the aspect ratio anyway). A cache folder is keyed by the pairs (paths, sizes, mtimes) and the side; the kit
only ever writes and replaces folders it marked as its own."""
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from edgematte.edge.datasets import Pair, read_pair
from edgematte.edge.errors import InputError
from edgematte.edge.progress import Progress

MARKER = "edgematte-decoded-cache.json"
FORMAT = 1


def cache_side(size: Tuple[int, int], headroom: float = 1.3) -> int:
    """The cached square side for a training size: the augmentation's usual stretch (x1.0-1.3) fits in it."""
    return int(round(max(size) * headroom))


def _key(pairs: Sequence[Pair], side: int) -> str:
    digest = hashlib.sha256(json.dumps([FORMAT, side]).encode())
    for pair in pairs:
        for path in (pair.image, pair.mask):
            if path is None:
                digest.update(b"-")
                continue
            stat = os.stat(str(path))
            digest.update("{}|{}|{}|{}".format(path, stat.st_size, stat.st_mtime_ns, pair.alpha_in_image).encode())
    return digest.hexdigest()[:16]


class DecodedCache:
    """uint8 images [N, S, S, 3] and alphas [N, S, S] of `pairs`, built under `root` on first use."""

    def __init__(self, root: str, pairs: Sequence[Pair], side: int) -> None:
        self.side = int(side)
        self.count = len(pairs)
        self.folder = Path(root) / "decoded-{}-{}".format(self.side, _key(pairs, self.side))
        self._images = None  # type: Optional[np.ndarray]
        self._alphas = None  # type: Optional[np.ndarray]
        if not (self.folder / MARKER).is_file():
            self._build(pairs)

    def _build(self, pairs: Sequence[Pair]) -> None:
        root = self.folder.parent
        if root.exists() and not root.is_dir():
            raise InputError("{}: --cache must be a folder".format(root))
        root.mkdir(parents=True, exist_ok=True)
        temp = root / ".{}.partial-{}".format(self.folder.name, os.getpid())
        temp.mkdir()
        try:
            shape = (self.count, self.side, self.side)
            images = np.lib.format.open_memmap(str(temp / "images.npy"), "w+", np.uint8, shape + (3,))
            alphas = np.lib.format.open_memmap(str(temp / "alphas.npy"), "w+", np.uint8, shape)
            with Progress(total=self.count, desc="decoding into the cache", unit="pairs") as bar:
                for i, pair in enumerate(pairs):
                    image, alpha = read_pair(pair)
                    images[i] = cv2.resize(image, (self.side, self.side), interpolation=cv2.INTER_AREA)
                    small = cv2.resize(alpha, (self.side, self.side), interpolation=cv2.INTER_AREA)
                    alphas[i] = np.clip(small * 255.0 + 0.5, 0, 255).astype(np.uint8)
                    bar.update()
            images.flush()
            alphas.flush()
            del images, alphas
            (temp / MARKER).write_text(json.dumps({"format": FORMAT, "side": self.side, "pairs": self.count,
                                                   "first": str(pairs[0].image) if pairs else None}))
            os.replace(str(temp), str(self.folder))
        except BaseException:
            shutil.rmtree(str(temp), ignore_errors=True)  # only the partial folder this call created
            raise

    def _open(self) -> None:
        self._images = np.load(str(self.folder / "images.npy"), mmap_mode="r")
        self._alphas = np.load(str(self.folder / "alphas.npy"), mmap_mode="r")

    def read(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """(BGR uint8 SxSx3, alpha float32 SxS in [0,1]) of pair `index`."""
        if self._images is None:
            self._open()  # lazily, so loader workers open their own maps
        return np.array(self._images[index]), self._alphas[index].astype(np.float32) * np.float32(1.0 / 255.0)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_images"] = state["_alphas"] = None
        return state
