"""Numpy metrics for masks and mattes: IoU, boundary IoU, the DIM matting errors, and SOD metrics via pysodmetrics."""
import warnings
from typing import Any, Dict, Optional

import cv2
import numpy as np

from .errors import InputError, MissingExtraError

GRAD_SIGMA = 1.4  # Gaussian sigma of the DIM gradient error
CONN_STEP = 0.1  # threshold step of the DIM connectivity error
CONN_THETA = 0.15  # the DIM connectivity error ignores distances below this


def _pair(pred: np.ndarray, gt: np.ndarray) -> "tuple":
    """Both maps as float64 HxW arrays in [0,1]; uint8 input is read as 0..255."""
    maps = []
    for arr in (pred, gt):
        arr = np.asarray(arr)
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[..., 0]
        if arr.ndim != 2:
            raise InputError("metrics: expected an HxW map, got shape {}".format(arr.shape))
        arr = arr.astype(np.float64) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)
        maps.append(arr)
    if maps[0].shape != maps[1].shape:
        raise InputError("metrics: prediction {} and ground truth {} differ in size".format(maps[0].shape, maps[1].shape))
    return maps[0], maps[1]


def _region(shape: "tuple", trimap: Optional[np.ndarray]) -> np.ndarray:
    """Boolean mask of the pixels a matting error counts: the trimap's unknown band (128) or the whole image."""
    if trimap is None:
        return np.ones(shape, dtype=bool)
    trimap = np.asarray(trimap)
    if trimap.shape != shape:
        raise InputError("metrics: trimap {} and maps {} differ in size".format(trimap.shape, shape))
    return trimap == 128


# -- segmentation ------------------------------------------------------------------------------
def iou(pred: np.ndarray, gt: np.ndarray, thr: float = 0.5) -> float:
    """Foreground IoU of the two maps binarised at `thr` (1.0 when both are empty)."""
    p, g = _pair(pred, gt)
    p, g = p >= thr, g >= thr
    union = np.count_nonzero(p | g)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(p & g)) / union


def _inner_boundary(mask: np.ndarray, dilation_ratio: float) -> np.ndarray:
    """Inner boundary band of a binary mask, d = round(ratio * diagonal) pixels wide (Cheng et al. 2021 reference code)."""
    h, w = mask.shape
    dilation = max(1, int(round(dilation_ratio * np.sqrt(h * h + w * w))))
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), dtype=np.uint8), iterations=dilation)[1:h + 1, 1:w + 1]
    return (mask > 0) & (eroded == 0)


def boundary_iou(pred: np.ndarray, gt: np.ndarray, dilation_ratio: float = 0.02, thr: float = 0.5) -> float:
    """Boundary IoU (Cheng et al., CVPR 2021): IoU of the inner boundary bands, width d = ratio * image diagonal.

    Follows the authors' reference `mask_to_boundary` (3x3 erosion `d` times, image border counts as outside);
    1.0 when both masks are empty.
    """
    p, g = _pair(pred, gt)
    pb = _inner_boundary((p >= thr).astype(np.uint8), dilation_ratio)
    gb = _inner_boundary((g >= thr).astype(np.uint8), dilation_ratio)
    union = np.count_nonzero(pb | gb)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(pb & gb)) / union


def mae(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error over the image, maps in [0,1] (the per-image SOD MAE, without min-max rescaling)."""
    p, g = _pair(pred, gt)
    return float(np.mean(np.abs(p - g)))


# -- matting (Xu et al. 2017, Deep Image Matting benchmark definitions) --------------------------
def mse(pred: np.ndarray, gt: np.ndarray, trimap: Optional[np.ndarray] = None) -> float:
    """Mean squared error of the mattes in [0,1], over the trimap's unknown band (128) or the whole image."""
    p, g = _pair(pred, gt)
    region = _region(p.shape, trimap)
    n = np.count_nonzero(region)
    return float(np.sum((p - g)[region] ** 2) / n) if n else 0.0


def mad(pred: np.ndarray, gt: np.ndarray, trimap: Optional[np.ndarray] = None) -> float:
    """Mean absolute difference of the mattes in [0,1], over the trimap's unknown band (128) or the whole image."""
    p, g = _pair(pred, gt)
    region = _region(p.shape, trimap)
    n = np.count_nonzero(region)
    return float(np.sum(np.abs(p - g)[region]) / n) if n else 0.0


def sad(pred: np.ndarray, gt: np.ndarray, trimap: Optional[np.ndarray] = None) -> float:
    """Sum of absolute differences of the mattes in [0,1], divided by 1000 (the DIM benchmark's reporting scale)."""
    p, g = _pair(pred, gt)
    region = _region(p.shape, trimap)
    return float(np.sum(np.abs(p - g)[region]) / 1000.0)


def _gauss_derivative_kernels(sigma: float) -> "tuple":
    """The DIM `gaussgradient` kernels: G(y)*dG(x) on a (2*half+1)^2 support (epsilon 1e-2), unit L2 norm."""
    epsilon = 1e-2
    half = int(np.ceil(sigma * np.sqrt(-2.0 * np.log(np.sqrt(2.0 * np.pi) * sigma * epsilon))))
    u = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-u ** 2 / (2.0 * sigma ** 2)) / (sigma * np.sqrt(2.0 * np.pi))
    dgauss = -u * gauss / sigma ** 2
    hx = np.outer(gauss, dgauss)  # hx[i, j] = gauss(i - half) * dgauss(j - half)
    hx /= np.sqrt(np.sum(hx * hx))
    return hx, hx.T


def _gradient_magnitude(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-derivative gradient magnitude; convolution with replicated borders (scipy's mode='nearest')."""
    hx, hy = _gauss_derivative_kernels(sigma)
    # filter2D correlates: flip the kernels to convolve, as the reference does.
    gx = cv2.filter2D(image, cv2.CV_64F, cv2.flip(hx, -1), borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(image, cv2.CV_64F, cv2.flip(hy, -1), borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx ** 2 + gy ** 2)


def grad(pred: np.ndarray, gt: np.ndarray, trimap: Optional[np.ndarray] = None, sigma: float = GRAD_SIGMA) -> float:
    """Gradient error (DIM benchmark, Rhemann et al. 2009 as implemented by Xu et al. 2017), divided by 1000.

    Both mattes in [0,1] are differentiated with first-order Gaussian-derivative filters (sigma 1.4, support where
    the Gaussian exceeds 1e-2, kernels normalised to unit L2 norm, replicated borders); the error is the sum of
    squared differences of the gradient magnitudes over the trimap's unknown band (128) or the whole image.
    """
    p, g = _pair(pred, gt)
    region = _region(p.shape, trimap)
    diff = (_gradient_magnitude(p, sigma) - _gradient_magnitude(g, sigma)) ** 2
    return float(np.sum(diff[region]) / 1000.0)


def _largest_component(binary: np.ndarray) -> np.ndarray:
    """The largest 4-connected foreground component of a binary map (all False when there is none)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=4)
    if count <= 1:
        return np.zeros(binary.shape, dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == largest


def conn(pred: np.ndarray, gt: np.ndarray, trimap: Optional[np.ndarray] = None, step: float = CONN_STEP) -> float:
    """Connectivity error (DIM benchmark, Rhemann et al. 2009 as implemented by Xu et al. 2017), divided by 1000.

    For thresholds 0, step, ..., 1 each pixel gets the last threshold at which it still belongs to the largest
    4-connected component of (pred >= t) & (gt >= t); phi = 1 - (alpha - l) where that gap is >= 0.15, else 1;
    the error sums |phi_pred - phi_gt| over the trimap's unknown band (128) or the whole image.
    """
    p, g = _pair(pred, gt)
    region = _region(p.shape, trimap)
    steps = list(np.arange(0, 1 + step, step))
    level = -np.ones(p.shape, dtype=np.float64)
    for i in range(1, len(steps)):
        omega = _largest_component((p >= steps[i]) & (g >= steps[i]))
        level[(level == -1) & ~omega] = steps[i - 1]
    level[level == -1] = 1.0
    pd, gd = p - level, g - level
    p_phi = 1.0 - pd * (pd >= CONN_THETA)
    g_phi = 1.0 - gd * (gd >= CONN_THETA)
    return float(np.sum(np.abs(p_phi - g_phi)[region]) / 1000.0)


# -- salient object detection -------------------------------------------------------------------
def to_uint8(arr: np.ndarray) -> np.ndarray:
    """A map in [0,1] (or already uint8) as uint8 0..255, the form pysodmetrics reads (like cv2.imread gray)."""
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr
    return np.clip(np.round(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


class SODMetrics:
    """Accumulates the salient-object metrics over a set with pysodmetrics: MAE, max/mean F, S-measure, max/mean E."""

    def __init__(self) -> None:
        try:
            import py_sod_metrics as sod  # type: ignore
        except ImportError:
            raise MissingExtraError("SOD metrics", "pysodmetrics", "eval") from None
        self._mae = sod.MAE()
        with warnings.catch_warnings():  # pysodmetrics >= 1.4 flags the classic Fmeasure as legacy; it is the reference
            warnings.simplefilter("ignore")
            self._fm = sod.Fmeasure()
        self._sm = sod.Smeasure()
        self._sod = sod
        self._em_curves = []  # type: list
        self._em_adaptive = []  # type: list
        self.count = 0

    def step(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: pred and gt HxW, float in [0,1] or uint8 0..255 (converted to uint8, gt binarised at 128 by pysodmetrics)."""
        p, g = to_uint8(pred), to_uint8(gt)
        if p.ndim != 2 or p.shape != g.shape:
            raise InputError("SOD metrics: prediction {} and ground truth {} must be HxW of the same size".format(
                p.shape, g.shape))
        for metric in (self._mae, self._fm, self._sm):
            metric.step(p, g)
        curve, adaptive = self._emeasure(p, g)
        self._em_curves.append(curve)
        self._em_adaptive.append(adaptive)
        self.count += 1

    def _emeasure(self, pred: np.ndarray, gt: np.ndarray) -> "tuple":
        """One image's E-measure curve and adaptive value, as the mean of the enhanced-alignment matrix (in [0,1]).

        pysodmetrics, like the authors' MATLAB code, divides the matrix's sum by H*W - 1 (+ eps): scores then pass 1
        for good predictions and reach 4.5e15 on a 1x1 image. Rescaling by (H*W - 1 + eps) / (H*W) gives the mean.
        """
        em = self._sod.Emeasure()
        em.step(pred, gt)
        result = em.get_results()["em"]
        pixels = float(gt.shape[0] * gt.shape[1])
        scale = (pixels - 1.0 + np.spacing(1)) / pixels
        curve = np.clip(np.asarray(result["curve"], dtype=np.float64) * scale, 0.0, 1.0)
        return curve, float(np.clip(float(result["adp"]) * scale, 0.0, 1.0))

    def results(self) -> Dict[str, Any]:
        """The set's metrics: mae, maxF, meanF (over the 256 thresholds), adpF, S, maxE, meanE, adpE."""
        if not self.count:
            return {}
        fm = self._fm.get_results()["fm"]
        em = {"curve": np.mean(np.stack(self._em_curves), axis=0), "adp": float(np.mean(self._em_adaptive))}
        return {
            "mae": float(self._mae.get_results()["mae"]),
            "maxF": float(np.max(fm["curve"])),
            "meanF": float(np.mean(fm["curve"])),
            "adpF": float(fm["adp"]),
            "S": float(self._sm.get_results()["sm"]),
            "maxE": float(np.max(em["curve"])),
            "meanE": float(np.mean(em["curve"])),
            "adpE": float(em["adp"]),
        }


__all__ = ["iou", "boundary_iou", "mae", "mse", "mad", "sad", "grad", "conn", "SODMetrics", "to_uint8"]
