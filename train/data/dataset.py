"""Torch datasets over (image, alpha) pairs of one or more dataset folders, with deterministic per-sample augmentation."""
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from edgematte.edge.datasets import Pair, filter_pairs, find_pairs, read_pair

from .augment import AugmentConfig, augment, resize_pair
from .cache import DecodedCache
from .composite import Compositor
from .trimap import classes_to_unit, trimap_classes


def gather_pairs(roots: Sequence[str], split: Optional[str] = None, include: Sequence[str] = (),
                 exclude: Sequence[str] = ()) -> List[Pair]:
    """The pairs of several dataset folders, concatenated in the order given, filtered by include/exclude globs
    on the image file name or stem (see edgematte.edge.datasets.filter_pairs)."""
    pairs = []  # type: List[Pair]
    for root in roots:
        pairs.extend(find_pairs(root, split))
    return filter_pairs(pairs, include, exclude, source=", ".join(str(r) for r in roots))


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample: a function of (seed, epoch, index) only, so order and workers don't matter."""
    return np.random.default_rng([seed, epoch, index])


class PairDataset(Dataset):
    """Samples of normalised RGB image, alpha and trimap at the training size; augmented when `train` is set."""

    def __init__(self, pairs: Sequence[Pair], size: Tuple[int, int], mean: Sequence[float], std: Sequence[float],
                 train: bool = True, seed: int = 0, augment_config: Optional[AugmentConfig] = None,
                 compositor: Optional[Compositor] = None, trimap_ratio: float = 0.03,
                 cache: Optional[DecodedCache] = None) -> None:
        self.pairs = list(pairs)
        self.size = (int(size[0]), int(size[1]))
        self.mean = np.asarray(mean, np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(3, 1, 1)
        self.train = train
        self.seed = seed
        self.augment_config = augment_config or AugmentConfig()
        self.compositor = compositor
        self.trimap_ratio = trimap_ratio
        self.cache = cache
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation draws come next (call before building the loader iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(BGR uint8, alpha float32, trimap classes uint8) of sample `index` at the training size."""
        pair = self.pairs[index]
        image, alpha = self.cache.read(index) if self.cache is not None else read_pair(pair)
        if self.train:
            rng = sample_rng(self.seed, self.epoch, index)
            image, alpha = augment(image, alpha, self.size, rng, self.augment_config)
            if self.compositor is not None:
                image, alpha = self.compositor(image, alpha, rng, exclude=pair.image)
            classes = trimap_classes(alpha, self.trimap_ratio, rng)
        else:
            image, alpha = resize_pair(image, alpha, self.size)
            classes = trimap_classes(alpha, self.trimap_ratio)
        # resampling can overshoot by an ulp (1.0000001): BCE targets must lie in [0, 1]
        return image, np.clip(alpha, 0.0, 1.0, out=alpha), classes

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        image, alpha, classes = self.load(index)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).transpose(2, 0, 1).astype(np.float32)
        rgb = (rgb - self.mean) / self.std
        return {
            "image": torch.from_numpy(np.ascontiguousarray(rgb)),
            "alpha": torch.from_numpy(alpha[None].copy()),
            "trimap": torch.from_numpy(classes_to_unit(classes)[None]),
            "trimap_cls": torch.from_numpy(classes.astype(np.int64)),
            "index": torch.tensor(index),
        }


class ResumableSampler(DistributedSampler):
    """DistributedSampler (seeded shuffle per epoch, one shard per rank) that can skip the samples already
    consumed in the current epoch, so a resumed run sees exactly the batches an uninterrupted run would."""

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = True) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first `start` samples of this rank's shard in the next iteration (resume mid-epoch)."""
        self.start = start

    def __iter__(self):
        indices = list(super().__iter__())
        start, self.start = self.start, 0
        return iter(indices[start:])

    def __len__(self) -> int:
        return self.num_samples - self.start
