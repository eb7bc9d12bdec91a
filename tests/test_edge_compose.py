"""edge.compose: cutout, alpha-normalised bokeh (no subject bleed), background replace, colours."""
import numpy as np
import pytest

from conftest import make_scene
from edgematte.edge import compose
from edgematte.edge.errors import InputError, MissingExtraError


def _disc(h: int = 120, w: int = 160, radius: int = 30):
    """A bright disc (the subject) on a dark flat background, with its hard alpha and distance from the edge."""
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.sqrt((yy - h / 2) ** 2 + (xx - w / 2) ** 2) - radius
    alpha = (dist <= 0).astype(np.float32)
    image = np.full((h, w, 3), 20, np.uint8)
    image[alpha > 0] = 250
    return image, alpha, dist


def test_blur_does_not_bleed_subject_into_background() -> None:
    import cv2

    image, alpha, dist = _disc()
    strength = 5.0  # sigma = 5% of 160 px = 8 px
    out = compose.blur(image, alpha, strength)
    sigma = strength / 100 * 160
    ring = (dist > 3) & (dist < 2 * sigma)  # background near the subject, within the blur's reach
    assert ring.sum() > 100
    assert np.abs(out[ring].astype(int) - 20).max() <= 2  # stays the dark background
    naive = cv2.GaussianBlur(image, (0, 0), sigma)  # what a plain blur does: the bright subject leaks out
    plain = compose.composite(image, alpha, naive)
    assert plain[ring].astype(int).mean() - 20 > 20
    assert np.array_equal(out[alpha > 0], image[alpha > 0])  # the subject stays sharp


def test_blur_blurs_texture_and_large_sigma_path() -> None:
    image, alpha = make_scene(96, 128, seed=1)
    background = alpha < 0.01
    for strength in (2.0, 30.0):  # 30% uses the downscaled blur path
        out = compose.blur(image, alpha, strength)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert out[background].astype(float).std() < image[background].astype(float).std() * 0.6
    assert np.array_equal(compose.blur(image, alpha, 0.0), image)
    with pytest.raises(InputError):
        compose.blur(image, alpha, -1)


def test_cutout_rgba_and_fg_estimate() -> None:
    image, alpha = make_scene(48, 64)
    out = compose.cutout(image, alpha)
    assert out.shape == (48, 64, 4) and out.dtype == np.uint8
    assert np.array_equal(out[:, :, :3], image)
    assert np.abs(out[:, :, 3].astype(int) - np.round(alpha * 255)).max() <= 1
    pytest.importorskip("pymatting")
    est = compose.cutout(image, alpha, fg_estimate=True)
    assert est.shape == (48, 64, 4) and np.array_equal(est[:, :, 3], out[:, :, 3])
    core = alpha > 0.99
    assert np.abs(est[core][:, :3].astype(int) - image[core].astype(int)).mean() < 3


def test_fg_estimate_without_pymatting(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pymatting", None)  # import pymatting -> ImportError
    image, alpha = make_scene(16, 16)
    with pytest.raises(MissingExtraError, match="pymatting"):
        compose.cutout(image, alpha, fg_estimate=True)


def test_replace_colour_and_image() -> None:
    image, alpha = make_scene(40, 60)
    green = compose.replace(image, alpha, compose.parse_colour("#00ff00"))
    assert tuple(green[alpha == 0][0]) == (0, 255, 0)
    assert np.array_equal(green[alpha == 1], image[alpha == 1])
    plate = np.zeros((10, 30, 3), np.uint8)
    plate[:, :15] = (255, 0, 0)
    plate[:, 15:] = (0, 0, 255)
    out = compose.replace(image, alpha, plate)  # 10x30 covers 40x60 by scaling x4 then cropping the middle
    assert out.shape == image.shape
    assert tuple(out[0, 0]) == (255, 0, 0) and tuple(out[0, -1]) == (0, 0, 255)
    covered = compose.cover(plate, 40, 60)
    assert covered.shape == (40, 60, 3)


def test_trimap_alpha_accepted() -> None:
    image, alpha = make_scene(20, 30)
    trimap = np.stack([1 - alpha, np.zeros_like(alpha), alpha], axis=-1)
    assert np.array_equal(compose.cutout(image, trimap), compose.cutout(image, alpha))
    with pytest.raises(InputError):
        compose.cutout(image, alpha[:10])


@pytest.mark.parametrize("text,bgr", [("white", (255, 255, 255)), ("#FF8000", (0, 128, 255)),
                                      ("10, 20,30", (30, 20, 10)), ("greenscreen", (64, 177, 0))])
def test_parse_colour(text: str, bgr) -> None:
    assert compose.parse_colour(text) == bgr


@pytest.mark.parametrize("text", ["", "#12345", "300,0,0", "chartreuse-ish"])
def test_parse_colour_rejects(text: str) -> None:
    with pytest.raises(InputError):
        compose.parse_colour(text)
