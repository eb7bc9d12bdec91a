"""Metrics on hand-made arrays with known answers, the DIM reference for Grad/Conn, and the pysodmetrics wrapper."""
import sys

import numpy as np
import pytest

from conftest import make_scene
from edgematte.edge import metrics as M
from edgematte.edge.errors import InputError, MissingExtraError


def _square(h: int, w: int, top: int, left: int, size: int) -> np.ndarray:
    mask = np.zeros((h, w), dtype=np.float32)
    mask[top:top + size, left:left + size] = 1.0
    return mask


def test_iou_of_two_squares() -> None:
    a = _square(40, 40, 10, 10, 10)
    b = _square(40, 40, 10, 15, 10)  # shifted by half: overlap 50, union 150
    assert M.iou(a, b) == pytest.approx(1.0 / 3.0)
    assert M.iou(a, a) == 1.0
    assert M.iou(a, np.zeros_like(a)) == 0.0
    assert M.iou(np.zeros_like(a), np.zeros_like(a)) == 1.0


def test_iou_threshold_and_uint8() -> None:
    gt = _square(20, 20, 0, 0, 10)
    pred = gt * 0.6
    assert M.iou(pred, gt) == 1.0
    assert M.iou(pred, gt, thr=0.7) == 0.0
    assert M.iou((gt * 255).astype(np.uint8), gt) == 1.0


def test_boundary_iou_identical_and_shifted() -> None:
    a = _square(100, 100, 20, 20, 50)
    assert M.boundary_iou(a, a) == 1.0
    shifted = M.boundary_iou(_square(100, 100, 20, 24, 50), a)
    assert 0.0 < shifted < 1.0
    # a finer band makes the same shift cost more
    assert M.boundary_iou(_square(100, 100, 20, 24, 50), a, dilation_ratio=0.01) < shifted


def test_boundary_band_width() -> None:
    """d = round(0.02 * diagonal) = 3 for 100x100: a 50-px square keeps a 3-px inner band."""
    a = _square(100, 100, 20, 20, 50)
    band = M._inner_boundary(a.astype(np.uint8), 0.02)
    assert band.sum() == 50 * 50 - 44 * 44


def test_boundary_iou_empty_masks() -> None:
    empty = np.zeros((30, 30), np.float32)
    assert M.boundary_iou(empty, empty) == 1.0
    assert M.boundary_iou(_square(30, 30, 5, 5, 10), empty) == 0.0


def test_matting_errors_on_constant_offset() -> None:
    gt = np.full((20, 30), 0.5, dtype=np.float32)
    pred = gt + 0.1
    assert M.mse(pred, gt) == pytest.approx(0.01)
    assert M.mad(pred, gt) == pytest.approx(0.1)
    assert M.sad(pred, gt) == pytest.approx(0.1 * 600 / 1000)
    assert M.mae(pred, gt) == pytest.approx(0.1)


def test_matting_errors_in_trimap_unknown_band() -> None:
    gt = np.zeros((10, 10), np.float32)
    pred = gt.copy()
    pred[:, :5] = 0.2
    trimap = np.zeros((10, 10), np.uint8)
    trimap[:, 5:] = 128  # the error lies outside the unknown band
    assert M.sad(pred, gt, trimap) == 0.0
    trimap[:, :] = 128
    assert M.sad(pred, gt, trimap) == pytest.approx(0.2 * 50 / 1000)
    assert M.mse(pred, gt, trimap) == pytest.approx(0.04 * 50 / 100)


def test_grad_and_conn_zero_for_identical_positive_otherwise() -> None:
    _, alpha = make_scene(64, 80, seed=1)
    assert M.grad(alpha, alpha) == 0.0
    assert M.conn(alpha, alpha) == 0.0
    blurred = np.clip(alpha * 0.8 + 0.1, 0, 1)
    holes = alpha.copy()
    holes[::7, ::7] = 0.0
    assert M.grad(blurred, alpha) > 0.0
    assert M.conn(blurred, alpha) > 0.0
    assert M.conn(holes, alpha) > 0.0


def test_shape_mismatch_is_an_input_error() -> None:
    with pytest.raises(InputError):
        M.iou(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(InputError):
        M.mse(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)))


# -- DIM reference (Xu et al. 2017 evaluation code, Python port with scipy/skimage) --------------
def _ref_gaussgradient(im, sigma):
    from scipy import ndimage

    def gauss(x):
        return np.exp(-x ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi))

    half = int(np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * 1e-2))))
    size = 2 * half + 1
    hx = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            hx[i, j] = gauss(i - half) * (-(j - half) * gauss(j - half) / sigma ** 2)
    hx = hx / np.sqrt(np.sum(np.abs(hx) * np.abs(hx)))
    return ndimage.convolve(im, hx, mode="nearest"), ndimage.convolve(im, hx.T, mode="nearest")


def _ref_grad(pred, target):
    px, py = _ref_gaussgradient(pred, 1.4)
    tx, ty = _ref_gaussgradient(target, 1.4)
    return np.sum((np.sqrt(px ** 2 + py ** 2) - np.sqrt(tx ** 2 + ty ** 2)) ** 2) / 1000.0


def _ref_conn(pred, target, step=0.1):
    from skimage.measure import label

    def largest(seg):
        labels = label(seg, connectivity=1)
        if labels.max() == 0:
            return np.zeros_like(seg, dtype=bool)
        return labels == np.argmax(np.bincount(labels.flat)[1:]) + 1

    steps = list(np.arange(0, 1 + step, step))
    l_map = -np.ones_like(pred, dtype=float)
    for i in range(1, len(steps)):
        omega = largest((pred >= steps[i]).astype(int) * (target >= steps[i]).astype(int)).astype(int)
        l_map[((l_map == -1) & (omega == 0))] = steps[i - 1]
    l_map[l_map == -1] = 1
    pd, td = pred - l_map, target - l_map
    return np.sum(np.abs((1 - pd * (pd >= 0.15)) - (1 - td * (td >= 0.15)))) / 1000.0


@pytest.mark.parametrize("seed", [0, 3])
def test_grad_and_conn_match_dim_reference(seed: int) -> None:
    pytest.importorskip("scipy")
    pytest.importorskip("skimage")
    _, gt = make_scene(64, 80, seed=seed)
    rng = np.random.default_rng(seed)
    pred = np.clip(np.roll(gt, 3, axis=1) * 0.9 + 0.15 * rng.random(gt.shape), 0, 1)
    pred[5:12, 5:20] = 1.0
    gt8, pred8 = np.round(gt * 255) / 255, np.round(pred * 255) / 255
    assert M.grad(pred8, gt8) == pytest.approx(_ref_grad(pred8, gt8), rel=1e-6)
    assert M.conn(pred8, gt8) == pytest.approx(_ref_conn(pred8, gt8), rel=1e-9)


# -- SOD metrics ---------------------------------------------------------------------------------
def _sod_fixture():
    pairs = []
    for seed in range(4):
        _, alpha = make_scene(48, 64, seed=seed)
        rng = np.random.default_rng(seed)
        pred = np.clip(np.roll(alpha, seed, axis=0) + 0.2 * rng.standard_normal(alpha.shape), 0, 1)
        pairs.append((M.to_uint8(pred), M.to_uint8(alpha)))
    return pairs


@pytest.mark.filterwarnings("ignore:This class will be removed")
def test_sod_metrics_agree_with_pysodmetrics() -> None:
    sod = pytest.importorskip("py_sod_metrics")
    pairs = _sod_fixture()
    acc = M.SODMetrics()
    mae, fm, sm, em = sod.MAE(), sod.Fmeasure(), sod.Smeasure(), sod.Emeasure()
    for pred, gt in pairs:
        acc.step(pred, gt)
        for metric in (mae, fm, sm, em):
            metric.step(pred, gt)
    got = acc.results()
    assert got["mae"] == pytest.approx(float(mae.get_results()["mae"]), abs=1e-9)
    assert got["maxF"] == pytest.approx(float(fm.get_results()["fm"]["curve"].max()), abs=1e-9)
    assert got["meanF"] == pytest.approx(float(fm.get_results()["fm"]["curve"].mean()), abs=1e-9)
    assert got["S"] == pytest.approx(float(sm.get_results()["sm"]), abs=1e-9)
    pixels = pairs[0][1].size  # E-measure as the mean of the alignment matrix: pysodmetrics divides by H*W - 1
    assert got["maxE"] == pytest.approx(float(em.get_results()["em"]["curve"].max()) * (pixels - 1) / pixels,
                                        abs=1e-9)
    assert acc.count == len(pairs)


def test_sod_metrics_take_float_maps() -> None:
    pytest.importorskip("py_sod_metrics")
    a, b = M.SODMetrics(), M.SODMetrics()
    for pred, gt in _sod_fixture():
        a.step(pred, gt)
        b.step(pred / 255.0, gt.astype(np.float32) / 255.0)
    assert a.results() == b.results()
    assert M.SODMetrics().results() == {}


def test_sod_metrics_without_pysodmetrics(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "py_sod_metrics", None)  # import now raises ImportError
    with pytest.raises(MissingExtraError, match=r"edgematte\[eval\]"):
        M.SODMetrics()
