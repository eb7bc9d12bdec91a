"""Augmentation, trimaps, compositing and the torch dataset (edgematte.train.data)."""
import numpy as np
import pytest
import torch

from conftest import make_scene
from edgematte.edge.datasets import find_pairs
from edgematte.edge.errors import InputError
from edgematte.train.data.augment import AugmentConfig, augment
from edgematte.train.data.composite import Compositor, composite
from edgematte.train.data.dataset import PairDataset, ResumableSampler
from edgematte.train.data.trimap import BG, FG, UNKNOWN, band_kernel_size, trimap_classes, trimap_image
from test_data_layouts import make_pairs_dataset


@pytest.mark.parametrize("seed", range(6))
def test_augment_keeps_image_and_alpha_aligned(seed):
    _, alpha = make_scene(90, 120, seed=seed)
    image = np.repeat(np.round(alpha * 255).astype(np.uint8)[..., None], 3, axis=2)  # the image *is* the alpha
    cfg = AugmentConfig(jitter_prob=0.0, flip=0.5)
    out_image, out_alpha = augment(image, alpha, (64, 64), np.random.default_rng(seed), cfg)
    assert out_image.shape == (64, 64, 3) and out_alpha.shape == (64, 64) and out_alpha.dtype == np.float32
    assert np.abs(out_image[..., 0] / 255.0 - out_alpha).max() < 3.0 / 255


def test_augment_flips_both_and_jitters_only_colour():
    bgr, alpha = make_scene(64, 64, seed=1)
    cfg = AugmentConfig(scale=(1.0, 1.0), aspect=0.0, flip=1.0, jitter_prob=1.0)
    out_image, out_alpha = augment(bgr, alpha, (64, 64), np.random.default_rng(0), cfg)
    assert np.allclose(out_alpha, alpha[:, ::-1], atol=1e-6)
    assert not np.array_equal(out_image, bgr[:, ::-1])


def test_trimap_classes_and_values():
    _, alpha = make_scene(96, 128, seed=2)
    classes = trimap_classes(alpha)
    assert set(np.unique(classes)) == {BG, UNKNOWN, FG}
    assert np.all(alpha[classes == FG] >= 0.99)
    assert np.all(alpha[classes == BG] <= 0.01)
    soft = (alpha > 0.01) & (alpha < 0.99)
    assert np.all(classes[soft] == UNKNOWN), "every soft pixel lies in the unknown band"
    assert set(np.unique(trimap_image(alpha))) == {0, 128, 255}
    assert band_kernel_size(1000, 1000) > band_kernel_size(100, 100) >= 3
    wide = trimap_classes(alpha, ratio=0.1)
    assert (wide == UNKNOWN).sum() > (classes == UNKNOWN).sum()


def test_composite_formula_and_compositor(tmp_path):
    fg = np.full((8, 8, 3), 200, np.uint8)
    bg = np.full((8, 8, 3), 0, np.uint8)
    alpha = np.zeros((8, 8), np.float32)
    alpha[:, 4:] = 1.0
    alpha[:, 3] = 0.5
    out = composite(fg, alpha, bg)
    assert out[0, 0, 0] == 0 and out[0, 7, 0] == 200 and out[0, 3, 0] == 100
    backgrounds = make_pairs_dataset(tmp_path / "bg", n=2, size=(30, 20))
    comp = Compositor.from_roots([str(backgrounds)], prob=1.0)
    assert len(comp.backgrounds) == 2
    image, alpha = make_scene(40, 40, seed=3)
    new, same_alpha = comp(image, alpha, np.random.default_rng(0))
    assert new.shape == image.shape and same_alpha is alpha
    inside = alpha >= 0.999
    assert np.abs(new[inside].astype(int) - image[inside].astype(int)).max() <= 1
    assert not np.array_equal(new[alpha == 0], image[alpha == 0])


def test_compositor_zoom_shrinks_foreground_and_keeps_busts_on_the_bottom_edge(tmp_path):
    backgrounds = make_pairs_dataset(tmp_path / "bg", n=2, size=(30, 20))
    comp = Compositor.from_roots([str(backgrounds)], prob=1.0, zoom=0.4)
    bust = np.zeros((60, 40), np.float32)
    bust[20:, 10:30] = 1.0  # cut by the bottom edge
    floating = np.zeros((60, 40), np.float32)
    floating[10:30, 10:30] = 1.0
    image = np.full((60, 40, 3), 250, np.uint8)
    for seed in range(20):
        out, a = comp(image, bust, np.random.default_rng(seed))
        assert out.shape == image.shape and a.shape == bust.shape
        assert 0.4 ** 2 * bust.sum() * 0.8 <= a.sum() <= bust.sum() * 1.01
        assert (a[-1] > 0.5).any(), "a bust stays on the bottom edge"
        assert np.abs(out[a >= 0.999].astype(int) - 250).max() <= 1, "the foreground colour moves with its alpha"
        out, a = comp(image, floating, np.random.default_rng(seed))
        assert a.sum() <= floating.sum() * 1.01
    tops = {int(np.argmax(comp(image, floating, np.random.default_rng(s))[1].max(axis=1) > 0.5)) for s in range(20)}
    assert len(tops) > 3, "a floating foreground lands at varied heights"
    with pytest.raises(InputError):
        Compositor.from_roots([str(backgrounds)], zoom=0.0)


def test_dataset_is_deterministic_per_epoch_and_index(tmp_path):
    pairs = find_pairs(make_pairs_dataset(tmp_path / "d", n=4))
    ds = PairDataset(pairs, (32, 32), [127.5] * 3, [127.5] * 3, train=True, seed=5)
    a, b = ds[2], ds[2]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["alpha"], b["alpha"])
    assert a["image"].shape == (3, 32, 32) and a["alpha"].shape == (1, 32, 32)
    assert a["trimap_cls"].dtype == torch.int64 and set(a["trimap"].unique().tolist()) <= {0.0, 0.5, 1.0}
    ds.set_epoch(1)
    assert not torch.equal(ds[2]["image"], a["image"])
    val = PairDataset(pairs, (32, 32), [127.5] * 3, [127.5] * 3, train=False)
    assert torch.equal(val[0]["image"], val[0]["image"])


def test_resumable_sampler_skips_consumed_samples():
    data = list(range(10))
    full = ResumableSampler(data, num_replicas=2, rank=1, seed=3)
    full.set_epoch(4)
    order = list(full)
    assert len(order) == 5
    part = ResumableSampler(data, num_replicas=2, rank=1, seed=3)
    part.set_epoch(4)
    part.set_start(2)
    assert list(part) == order[2:]
    assert list(part) == order, "the skip applies to one iteration only"
