"""Dataset layout detection and pair reading (edgematte.edge.datasets) on tiny synthetic folders."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import make_scene
from edgematte.edge.datasets import LAYOUTS, Pair, detect_layout, find_pairs, read_pair, scan_pairs
from edgematte.edge.errors import InputError


def write_pairs(images: Path, masks: Path, n: int = 3, size=(48, 64), mask_ext: str = ".png",
                image_ext: str = ".jpg", seed: int = 0):
    """Write n synthetic (image, mask) files with matching stems; returns the alphas by stem."""
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    alphas = {}
    for i in range(n):
        bgr, alpha = make_scene(size[0], size[1], seed=seed + i)
        stem = "s{:03d}".format(i)
        cv2.imwrite(str(images / (stem + image_ext)), bgr)
        cv2.imwrite(str(masks / (stem + mask_ext)), np.round(alpha * 255).astype(np.uint8))
        alphas[stem] = alpha
    return alphas


def make_pairs_dataset(root: Path, n: int = 3, size=(48, 64), seed: int = 0) -> Path:
    """A "pairs" layout dataset (images/ + masks/) under root."""
    write_pairs(root / "images", root / "masks", n, size, seed=seed)
    return root


def test_pairs_layout_reads_soft_masks(tmp_path):
    root = make_pairs_dataset(tmp_path / "d", n=3)
    assert detect_layout(root) == "pairs"
    pairs = find_pairs(root)
    assert [p.stem for p in pairs] == ["s000", "s001", "s002"]
    image, alpha = read_pair(pairs[0])
    assert image.dtype == np.uint8 and image.shape == (48, 64, 3)
    assert alpha.dtype == np.float32 and alpha.shape == (48, 64)
    soft = ((alpha > 0.05) & (alpha < 0.95)).mean()
    assert soft > 0.01, "soft mask values must stay soft"
    _, expected = make_scene(48, 64, seed=0)
    assert np.abs(alpha - expected).max() < 1.0 / 255 + 1e-6


def test_unmatched_stems_counted_not_fatal(tmp_path):
    root = make_pairs_dataset(tmp_path / "d", n=3)
    cv2.imwrite(str(root / "images" / "orphan.jpg"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(root / "masks" / "lonely.png"), np.zeros((8, 8), np.uint8))
    scan = scan_pairs(root)
    assert len(scan.pairs) == 3
    assert [Path(p).stem for p in scan.unmatched_images] == ["orphan"]
    assert [Path(p).stem for p in scan.unmatched_masks] == ["lonely"]


def test_duts_layout_and_splits(tmp_path):
    root = tmp_path / "DUTS"
    write_pairs(root / "DUTS-TR" / "DUTS-TR-Image", root / "DUTS-TR" / "DUTS-TR-Mask", n=2)
    write_pairs(root / "DUTS-TE" / "DUTS-TE-Image", root / "DUTS-TE" / "DUTS-TE-Mask", n=3, seed=10)
    assert detect_layout(root) == "duts"
    assert len(find_pairs(root)) == 5
    assert len(find_pairs(root, "train")) == 2
    assert len(find_pairs(root, "test")) == 3
    flat = tmp_path / "DUTS-TR"  # the DUTS-TR folder itself
    write_pairs(flat / "DUTS-TR-Image", flat / "DUTS-TR-Mask", n=2)
    assert detect_layout(flat) == "duts" and len(find_pairs(flat)) == 2


def test_p3m_layout_splits(tmp_path):
    root = tmp_path / "P3M-10k"
    write_pairs(root / "train" / "blurred_image", root / "train" / "mask", n=4)
    write_pairs(root / "validation" / "P3M-500-P" / "blurred_image", root / "validation" / "P3M-500-P" / "mask", n=2)
    write_pairs(root / "validation" / "P3M-500-NP" / "original_image", root / "validation" / "P3M-500-NP" / "mask",
                n=3)
    assert detect_layout(root) == "p3m"
    assert len(find_pairs(root)) == 4
    assert len(find_pairs(root, "val-p")) == 2
    assert len(find_pairs(root, "val-np")) == 3
    assert len(find_pairs(root, "val")) == 5
    with pytest.raises(InputError, match="split"):
        find_pairs(root, "nonsense")


def test_ppm_layout(tmp_path):
    root = tmp_path / "PPM-100"
    write_pairs(root / "image", root / "matte", n=2)
    assert detect_layout(root) == "ppm"
    image, alpha = read_pair(find_pairs(root)[1])
    assert image.shape[:2] == alpha.shape


def _write_cutouts(folder: Path, n: int = 2):
    folder.mkdir(parents=True, exist_ok=True)
    alphas = []
    for i in range(n):
        bgr, alpha = make_scene(40, 56, seed=i)
        rgba = np.dstack([bgr, np.round(alpha * 255).astype(np.uint8)])
        cv2.imwrite(str(folder / "cut{}.png".format(i)), rgba)
        alphas.append(alpha)
    return alphas


def test_aisegment_cutouts_alpha_is_the_matte(tmp_path):
    root = tmp_path / "aiseg"
    alphas = _write_cutouts(root / "matting" / "1803" / "matting_0000")
    assert detect_layout(root) == "aisegment"
    pairs = find_pairs(root)
    assert len(pairs) == 2 and all(p.alpha_in_image and p.mask is None for p in pairs)
    image, alpha = read_pair(pairs[0])
    assert image.shape == (40, 56, 3)
    assert np.abs(alpha - alphas[0]).max() < 1.0 / 255 + 1e-6


def test_aisegment_prefers_original_photos(tmp_path):
    root = tmp_path / "aiseg"
    _write_cutouts(root / "matting" / "a")
    clip = root / "clip_img" / "a"
    clip.mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(clip / "cut{}.jpg".format(i)), make_scene(40, 56, seed=i)[0])
    pairs = find_pairs(root)
    assert all(p.image.suffix == ".jpg" and p.mask.suffix == ".png" and p.alpha_in_image for p in pairs)
    image, alpha = read_pair(pairs[1])
    assert image.shape[:2] == alpha.shape


def test_unknown_layout_error_lists_layouts(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("hi")
    with pytest.raises(InputError) as info:
        detect_layout(tmp_path / "junk")
    message = str(info.value)
    assert "junk" in message and "\n" not in message
    for name in ("images/", "DUTS", "P3M", "PPM", "AISegment"):
        assert name in message
    with pytest.raises(InputError):
        detect_layout(tmp_path / "missing")
    assert set(LAYOUTS) == {"pairs", "duts", "p3m", "ppm", "aisegment"}


def test_size_mismatch_is_input_error(tmp_path):
    root = make_pairs_dataset(tmp_path / "d", n=1)
    cv2.imwrite(str(root / "masks" / "s000.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match="differs"):
        read_pair(Pair(root / "images" / "s000.jpg", root / "masks" / "s000.png"))


@pytest.mark.shared
@pytest.mark.parametrize("name,count", [("duts-tr", 10553), ("duts-te-val", 500), ("portraits", 505)])
def test_shared_datasets_are_pairs(shared_dir, name, count):
    root = shared_dir / "data" / name
    assert detect_layout(root) == "pairs"
    pairs = find_pairs(root)
    assert len(pairs) == count
    image, alpha = read_pair(pairs[0])
    assert image.shape[:2] == alpha.shape and 0.0 <= alpha.min() <= alpha.max() <= 1.0
