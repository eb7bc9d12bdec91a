"""Mask post-processing: haze and small blobs go, small holes close, the edge band stays soft."""
import numpy as np

from conftest import make_scene
from edgematte.edge.postprocess import PostProcess, edge_band, post_process


def hazy(h: int = 96, w: int = 128) -> tuple:
    """A soft ellipse (the subject) over a 0.2 haze, plus a small 0.9 speck far from it; and the clean alpha."""
    _, alpha = make_scene(h, w, seed=1)
    noisy = np.maximum(alpha, 0.2)
    noisy[2:5, 2:5] = 0.9
    return noisy.astype(np.float32), alpha


def test_haze_and_blobs_go_and_the_edge_stays_soft():
    noisy, clean = hazy()
    out = post_process(noisy)
    assert out.dtype == np.float32 and out.shape == noisy.shape and 0.0 <= out.min() and out.max() <= 1.0
    assert out[2:5, 2:5].max() == 0.0  # the speck
    far = ~edge_band((clean >= 0.5).astype(np.uint8), 10)
    assert set(np.unique(out[far])) <= {0.0, 1.0}  # hard outside the band
    soft = (out > 0.02) & (out < 0.98)
    assert soft.any() and np.allclose(out[soft], noisy[soft])  # the band keeps the model's own values
    assert np.abs(out - clean).mean() < np.abs(noisy - clean).mean() / 3


def test_holes_fill_and_the_largest_blob_always_stays():
    alpha = np.zeros((100, 100), np.float32)
    alpha[20:80, 20:80] = 1.0
    alpha[48:52, 48:52] = 0.0  # a pinhole in the subject
    out = post_process(alpha, PostProcess(band=0.005))
    assert out[48:52, 48:52].min() == 1.0
    tiny = np.zeros((100, 100), np.float32)
    tiny[10:12, 10:12] = 1.0  # smaller than min_blob, but the only subject there is
    assert post_process(tiny)[10:12, 10:12].min() == 1.0
    assert not post_process(np.full((8, 8), 0.3, np.float32)).any()  # haze only: nothing left


def test_trimap_probabilities_are_read_as_alpha():
    _, clean = make_scene(64, 80, seed=2)
    trimap = np.stack([1.0 - clean, np.zeros_like(clean), clean], axis=2)
    assert np.allclose(post_process(trimap), post_process(clean))
