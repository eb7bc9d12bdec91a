"""Edge refinement: the trimap from a predicted alpha, alpha matting inside its band, and the cutout's foreground
colour estimate (on by default where pymatting is installed)."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_tiny import build_ir
from edgematte.edge.cli import main
from edgematte.edge.errors import InputError
from edgematte.edge.refine import Refine, refine_alpha, trimap_from_alpha

pytest.importorskip("pymatting")


def disk_scene(h: int = 96, w: int = 128):
    """A textured red disk with a soft (2 px) rim on a textured blue background: image and its true alpha."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot(yy - h / 2, xx - w / 2)
    alpha = np.clip((30.0 - dist) / 2.0 + 0.5, 0.0, 1.0)
    fg = np.array([30, 40, 220], np.float64) + rng.normal(0, 8, (h, w, 3))
    bg = np.array([200, 80, 20], np.float64) + rng.normal(0, 8, (h, w, 3))
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return np.clip(image, 0, 255).astype(np.uint8), alpha.astype(np.float32)


def test_trimap_has_sure_parts_and_a_band_around_the_edge():
    _, alpha = disk_scene()
    trimap = trimap_from_alpha(alpha, Refine(band=0.05))
    assert set(np.unique(trimap)) == {0.0, 0.5, 1.0}
    assert trimap[48, 64] == 1.0 and trimap[0, 0] == 0.0
    edge = (alpha > 0.05) & (alpha < 0.95)
    assert (trimap[edge] == 0.5).all()  # the whole soft rim is to be solved


@pytest.mark.parametrize("method", ["cf", "knn"])
def test_alpha_matting_pulls_a_blurred_prediction_back_to_the_edge(method):
    image, truth = disk_scene()
    blurred = cv2.GaussianBlur(truth, (0, 0), 3.0)  # what a low-resolution network gives at the edge
    refined = refine_alpha(image, blurred, Refine(method=method, band=0.05))
    assert refined.shape == truth.shape and refined.dtype == np.float32
    before, after = np.abs(blurred - truth).mean(), np.abs(refined - truth).mean()
    assert after < 0.5 * before, (before, after)


def test_an_alpha_without_an_edge_comes_back_unchanged():
    image, _ = disk_scene()
    for flat in (np.zeros((96, 128), np.float32), np.ones((96, 128), np.float32)):
        np.testing.assert_array_equal(refine_alpha(image, flat), flat)


def test_unknown_method_is_an_input_error():
    image, alpha = disk_scene()
    with pytest.raises(InputError, match="refine method"):
        refine_alpha(image, alpha, Refine(method="guess"))


def bright_disk():
    """A near-white disk on a dark ground: the tiny IR (sigmoid of the brightness) sees a sure inside and outside."""
    image, alpha = disk_scene()
    grey = (alpha * 235 + (1 - alpha) * 25)[..., None] + np.random.default_rng(1).normal(0, 6, image.shape)
    return np.clip(grey, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_ir(tmp_path_factory.mktemp("m"), "tiny", (96, 128))


def test_cutout_estimates_edge_colours_by_default_and_not_when_asked(tmp_path, model, capsys):
    image, _ = disk_scene()
    src = tmp_path / "disk.png"
    cv2.imwrite(str(src), image)
    assert main(["cutout", str(src), "-o", str(tmp_path / "auto"), "-m", str(model), "--no-progress"]) == 0
    assert main(["cutout", str(src), "-o", str(tmp_path / "raw"), "-m", str(model), "--no-progress",
                 "--no-fg-estimate"]) == 0
    auto = cv2.imread(str(tmp_path / "auto" / "disk.png"), cv2.IMREAD_UNCHANGED)
    raw = cv2.imread(str(tmp_path / "raw" / "disk.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(raw[:, :, :3], image)  # the photo's own colours
    np.testing.assert_array_equal(auto[:, :, 3], raw[:, :, 3])  # the same alpha either way
    soft = (raw[:, :, 3] > 20) & (raw[:, :, 3] < 235)
    assert soft.any() and np.abs(auto[:, :, :3].astype(int) - image).max() > 0  # unmixed where it is soft


def test_cutout_refine_writes_the_refined_alpha(tmp_path, model):
    image = bright_disk()
    src = tmp_path / "disk.png"
    cv2.imwrite(str(src), image)
    for name, extra in (("plain", []), ("cf", ["--refine", "cf"])):
        assert main(["mask", str(src), "-o", str(tmp_path / name), "-m", str(model), "--no-progress"] + extra) == 0
    plain = cv2.imread(str(tmp_path / "plain" / "disk.png"), cv2.IMREAD_GRAYSCALE)
    refined = cv2.imread(str(tmp_path / "cf" / "disk.png"), cv2.IMREAD_GRAYSCALE)
    assert plain.shape == refined.shape and not np.array_equal(plain, refined)


def test_refine_choice_is_checked_by_the_parser(tmp_path, model, capsys):
    with pytest.raises(SystemExit) as info:
        main(["mask", "x.png", "-o", str(tmp_path / "o"), "-m", str(model), "--refine", "guess"])
    assert info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
