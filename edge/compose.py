"""Turn an image and its alpha into products: cutout (BGRA), bokeh blur, background replacement."""
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .errors import InputError, MissingExtraError
from .progress import echo

Colour = Tuple[int, int, int]
DEFAULT_BLUR_STRENGTH = 3.0  # Gaussian sigma as a percentage of the image's longer side

NAMED_COLOURS = {  # RGB
    "white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128),
    "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "greenscreen": (0, 177, 64),
}


def _alpha(alpha: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """Alpha as float32 HxWx1 in [0,1] matching the image; trimap probabilities become fg + unknown/2."""
    a = np.asarray(alpha, dtype=np.float32)
    if a.ndim == 3 and a.shape[2] == 3:  # trimap (background, unknown, foreground)
        a = a[:, :, 2] + 0.5 * a[:, :, 1]
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.shape != tuple(shape[:2]):
        raise InputError("alpha is {}x{} but the image is {}x{}".format(a.shape[1], a.shape[0], shape[1], shape[0]))
    return np.clip(a, 0.0, 1.0)[:, :, None]


def alpha_to_u8(alpha: np.ndarray) -> np.ndarray:
    """HxW uint8 mask (0..255) from an alpha in [0,1] (trimap probabilities as fg + unknown/2)."""
    a = _alpha(alpha, alpha.shape[:2])[:, :, 0]
    return (a * 255.0 + 0.5).astype(np.uint8)


def numba_cache_dir() -> Path:
    """Where numba keeps pymatting's compiled kernels: $NUMBA_CACHE_DIR, else ~/.cache/edgematte/numba."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgematte" / "numba"


def _warm_marker(cache: Path) -> Path:
    """The file that says pymatting's kernels for these versions were compiled into `cache` already."""
    from importlib import metadata

    versions = []
    for package in ("pymatting", "numba"):
        try:
            versions.append(metadata.version(package))
        except metadata.PackageNotFoundError:
            versions.append("none")
    return cache / ".edgematte-warm-pymatting{}-numba{}-py{}{}".format(versions[0], versions[1], *sys.version_info[:2])


def _installed(module: str) -> bool:
    """Whether `module` can be imported (without importing it)."""
    import importlib.util

    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def pymatting_installed() -> bool:
    """Whether pymatting (the cutout extra) can be imported, found without importing it."""
    return _installed("pymatting")


def load_pymatting(notify: Callable[[str], None] = echo, feature: str = "--fg-estimate") -> Any:
    """Import pymatting, its numba kernels cached in numba_cache_dir(); says so once when they must be compiled.

    pymatting compiles every kernel when it is imported (explicit numba signatures, cache=True): a minute or two
    the first time, a second or two once cached.
    """
    if sys.modules.get("pymatting") is not None:
        return sys.modules["pymatting"]
    if not _installed("pymatting"):
        raise MissingExtraError(feature, "pymatting", "cutout")
    cache = numba_cache_dir()
    if "numba" not in sys.modules:  # numba reads its cache folder once, when it is imported
        os.environ.setdefault("NUMBA_CACHE_DIR", str(cache))
    marker = _warm_marker(cache)
    if not marker.is_file():
        notify("edgematte: note: " + feature + " compiles pymatting's kernels on its first run (a minute or two, "
               "once); later runs load them from {}".format(cache))
    try:
        import pymatting  # type: ignore
    except ImportError:
        raise MissingExtraError(feature, "pymatting", "cutout") from None
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # a read-only cache: numba falls back to its own folders, and the note may show again
    return pymatting


def estimate_foreground(bgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colours unmixed from the background (pymatting's estimate_foreground_ml), BGR float32 in [0,1]."""
    estimate_foreground_ml = load_pymatting().estimate_foreground_ml
    a = _alpha(alpha, bgr.shape)[:, :, 0].astype(np.float64)
    fg = estimate_foreground_ml(bgr.astype(np.float64) / 255.0, a)
    return np.clip(fg, 0.0, 1.0).astype(np.float32)


def cutout(bgr: np.ndarray, alpha: np.ndarray, fg_estimate: bool = False) -> np.ndarray:
    """BGRA uint8 cutout: colour channels as stored (or unmixed with `fg_estimate`), alpha from the model."""
    a = _alpha(alpha, bgr.shape)
    if fg_estimate:
        colour = (estimate_foreground(bgr, a[:, :, 0]) * 255.0 + 0.5).astype(np.uint8)
    else:
        colour = bgr
    return np.dstack([colour, (a[:, :, 0] * 255.0 + 0.5).astype(np.uint8)])


def composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """foreground * alpha + background * (1 - alpha), as uint8."""
    a = _alpha(alpha, foreground.shape)
    out = foreground.astype(np.float32) * a + background.astype(np.float32) * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; large sigmas run on a downscaled copy (same look, a fraction of the cost)."""
    if sigma <= 0:
        return image
    h, w = image.shape[:2]
    # Downscale by sigma/8, but keep 8 pixels on the short side: a sigma near the image size then blurs a tiny copy
    # instead of running a kernel thousands of pixels wide at full size (minutes and gigabytes).
    factor = min(max(1, int(sigma // 8)), max(1, min(h, w) // 8))
    if factor > 1:
        small = cv2.resize(image, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma / factor, borderType=cv2.BORDER_REFLECT)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).reshape(image.shape)
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT).reshape(image.shape)


def blur_background(bgr: np.ndarray, alpha: np.ndarray, sigma: float) -> np.ndarray:
    """The background blurred with alpha normalisation, blur(bg*(1-a)) / blur(1-a), so the subject does not bleed
    into it; float32 BGR. Where no background is near (deep inside the subject) a plain blur fills in."""
    a = _alpha(alpha, bgr.shape)
    image = bgr.astype(np.float32)
    weight = 1.0 - a
    numerator = _gaussian(image * weight, sigma)
    denominator = _gaussian(weight, sigma)
    plain = _gaussian(image, sigma)
    return np.where(denominator > 1e-3, numerator / np.maximum(denominator, 1e-3), plain)


def blur(bgr: np.ndarray, alpha: np.ndarray, strength: float = DEFAULT_BLUR_STRENGTH) -> np.ndarray:
    """Bokeh: the subject sharp over its background blurred with sigma = strength% of the longer side; BGR uint8."""
    if not np.isfinite(strength) or strength < 0:
        raise InputError("blur strength must be a finite number >= 0, got {}".format(strength))
    sigma = strength / 100.0 * max(bgr.shape[:2])
    return composite(bgr, alpha, blur_background(bgr, alpha, sigma))


def parse_colour(text: str) -> Colour:
    """A BGR colour from '#RRGGBB', 'R,G,B' or a name (white, black, gray, red, green, blue, greenscreen)."""
    value = text.strip().lower()
    rgb = None  # type: Optional[Sequence[int]]
    if value in NAMED_COLOURS:
        rgb = NAMED_COLOURS[value]
    elif re.fullmatch(r"#?[0-9a-f]{6}", value):
        digits = value.lstrip("#")
        rgb = [int(digits[i:i + 2], 16) for i in (0, 2, 4)]
    elif re.fullmatch(r"\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}", value):
        rgb = [int(v) for v in value.split(",")]
        if max(rgb) > 255:
            rgb = None
    if rgb is None:
        raise InputError("not a colour: {!r} (use #RRGGBB, R,G,B or one of {})".format(
            text, ", ".join(sorted(NAMED_COLOURS))))
    return int(rgb[2]), int(rgb[1]), int(rgb[0])


def cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Cover (height, width) keeping the aspect ratio: centre-crop the part that shows, then resize only that, so a
    plate of any aspect (1x50000 behind 1080p) costs no more than the output itself."""
    h, w = image.shape[:2]
    scale = max(height / float(h), width / float(w))
    ch = min(h, max(1, int(round(height / scale))))
    cw = min(w, max(1, int(round(width / scale))))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = image[top:top + ch, left:left + cw]
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def replace(bgr: np.ndarray, alpha: np.ndarray, background: Union[Colour, np.ndarray]) -> np.ndarray:
    """The subject over a new background: a BGR colour tuple or a BGR image (resized to cover); BGR uint8."""
    h, w = bgr.shape[:2]
    if isinstance(background, np.ndarray):
        if background.ndim == 2:
            background = cv2.cvtColor(background, cv2.COLOR_GRAY2BGR)
        plate = cover(background[:, :, :3], h, w)
    else:
        plate = np.empty_like(bgr)
        plate[:] = np.asarray(background, dtype=np.uint8)[:3]
    return composite(bgr, alpha, plate)


__all__ = ["cutout", "blur", "replace", "composite", "blur_background", "estimate_foreground", "load_pymatting",
           "numba_cache_dir", "parse_colour", "cover", "alpha_to_u8", "DEFAULT_BLUR_STRENGTH"]
