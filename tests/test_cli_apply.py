"""The runtime verbs end to end: mask/cutout/blur/replace on images, folders and videos; bad inputs; defaults."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import make_scene
from edge_tiny import build_ir, expected_prob
from edgematte.edge import io
from edgematte.edge.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_ir(tmp_path_factory.mktemp("model"), size=(64, 48))


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    (folder / "nested").mkdir(parents=True)
    for i, (name, size) in enumerate([("a.jpg", (40, 60)), ("b.png", (50, 30)), ("nested/c.png", (33, 47))]):
        image, _ = make_scene(size[0], size[1], seed=i)
        cv2.imwrite(str(folder / name), image)
    (folder / "readme.txt").write_text("not an image, and not picked up from a folder")
    return folder


def _files(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_mask_files_and_folders(tmp_path: Path, model: Path, inputs: Path, capsys) -> None:
    out = tmp_path / "out"
    extra = tmp_path / "single.png"
    cv2.imwrite(str(extra), np.full((20, 25, 3), 200, np.uint8))
    assert main(["mask", str(inputs), str(extra), "-o", str(out), "-m", str(model), "--nireq", "2"]) == 0
    assert _files(out) == ["a.png", "b.png", "nested/c.png", "single.png"]
    for name, shape in [("a.png", (40, 60)), ("b.png", (50, 30)), ("nested/c.png", (33, 47))]:
        mask = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert mask.shape == shape and mask.dtype == np.uint8
    single = cv2.imread(str(out / "single.png"), cv2.IMREAD_UNCHANGED)
    assert single.shape == (20, 25) and abs(int(single.mean()) - round(255 * expected_prob(200))) <= 1
    assert capsys.readouterr().err == ""


def test_bad_input_among_good_ones(tmp_path: Path, model: Path, inputs: Path, capsys) -> None:
    bad = inputs / "broken.jpg"
    good = cv2.imencode(".jpg", np.zeros((30, 30, 3), np.uint8))[1].tobytes()
    bad.write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    code = main(["cutout", str(inputs), "-o", str(out), "-m", str(model)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "broken.jpg" in err[0], err
    assert _files(out) == ["a.png", "b.png", "nested/c.png"]  # the others are done, nothing half-written
    rgba = cv2.imread(str(out / "a.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (40, 60, 4)


def test_missing_input_and_name_clash(tmp_path: Path, model: Path, inputs: Path, capsys) -> None:
    shutil.copy(str(inputs / "b.png"), str(inputs / "a.png"))  # a.jpg and a.png both want a.png for a mask
    code = main(["mask", str(inputs), str(tmp_path / "nope.png"), "-o", str(tmp_path / "out"), "-m", str(model)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 2
    assert any("nope.png" in line for line in err) and any("already the output" in line for line in err)


def test_blur_and_replace_suffixes(tmp_path: Path, model: Path, inputs: Path) -> None:
    out = tmp_path / "out"
    assert main(["blur", str(inputs / "a.jpg"), str(inputs / "b.png"), "-o", str(out), "-m", str(model),
                 "--strength", "4"]) == 0
    assert _files(out) == ["a.jpg", "b.png"]
    assert io.read_image(out / "a.jpg").shape == (40, 60, 3)
    background = tmp_path / "bg.png"
    cv2.imwrite(str(background), np.full((10, 10, 3), (0, 0, 255), np.uint8))
    for value in ("#00ff00", str(background)):
        assert main(["replace", str(inputs / "b.png"), "-o", str(tmp_path / "r"), "-m", str(model),
                     "--background", value]) == 0
        assert io.read_image(tmp_path / "r" / "b.png").shape == (50, 30, 3)


def test_bad_background_and_device(tmp_path: Path, model: Path, inputs: Path, capsys) -> None:
    assert main(["replace", str(inputs), "-o", str(tmp_path / "o"), "-m", str(model), "--background", "mauve?"]) == 1
    assert main(["mask", str(inputs), "-o", str(tmp_path / "o"), "-m", str(model), "-d", "NOPE"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "mauve?" in err[0] and "NOPE" in err[1] and "CPU" in err[1]
    assert not (tmp_path / "o").exists() or _files(tmp_path / "o") == []


def test_large_images(tmp_path: Path, model: Path, capsys) -> None:
    cv2.imwrite(str(tmp_path / "big.png"), np.full((100, 200, 3), 200, np.uint8))
    assert main(["mask", str(tmp_path / "big.png"), "-o", str(tmp_path / "o"), "-m", str(model),
                 "--max-pixels", "5000"]) == 1
    assert "big.png" in capsys.readouterr().err
    assert main(["mask", str(tmp_path / "big.png"), "-o", str(tmp_path / "o"), "-m", str(model),
                 "--max-pixels", "5000", "--downscale-large"]) == 0
    mask = cv2.imread(str(tmp_path / "o" / "big.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape[0] * mask.shape[1] <= 5000


def _video(path: Path, frames: int = 6, size=(64, 48)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, size)
    for i in range(frames):
        image, _ = make_scene(size[1], size[0], seed=i)
        writer.write(image)
    writer.release()


def test_video_mask_and_cutout(tmp_path: Path, model: Path, capsys) -> None:
    src = tmp_path / "clip.mp4"
    _video(src)
    (tmp_path / "junk.avi").write_bytes(b"\x00" * 500)
    out = tmp_path / "out"
    assert main(["mask", str(src), str(tmp_path / "junk.avi"), "-o", str(out), "-m", str(model)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.avi" in err[0]
    assert _files(out) == ["clip.mp4"]
    info = io.probe_video(out / "clip.mp4")
    assert (info.width, info.height, info.frame_count) == (64, 48, 6) and abs(info.fps - 12.0) < 0.01
    assert main(["cutout", str(src), "-o", str(out), "-m", str(model)]) == 0
    frames = sorted((out / "clip").iterdir())
    assert len(frames) == 6 and cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED).shape == (48, 64, 4)
    assert not any(name.startswith(".") for name in os.listdir(out))  # no temp file or folder left


def test_default_zoo_model(tmp_path: Path, model: Path, inputs: Path, monkeypatch, capsys) -> None:
    from edgematte.edge import zoo

    empty = tmp_path / "empty_zoo"
    empty.mkdir()
    monkeypatch.setattr(zoo, "PACKAGE_DIR", empty)  # independent of what the package ships
    monkeypatch.setenv("EDGEMATTE_ZOO", str(tmp_path / "zoo"))
    assert main(["mask", str(inputs), "-o", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'sod'" in err[0] and "-m" in err[0]
    build_ir(tmp_path / "zoo" / "sod", name="model", size=(32, 32))
    assert main(["mask", str(inputs), "-o", str(tmp_path / "o")]) == 0
    assert _files(tmp_path / "o") == ["a.png", "b.png", "nested/c.png"]


def test_console_script(tmp_path: Path, model: Path, inputs: Path) -> None:
    exe = shutil.which("edgematte") or pytest.skip("console script not installed")
    result = subprocess.run([exe, "mask", str(inputs / "b.png"), str(inputs / "readme.txt"), "-o",
                             str(tmp_path / "o"), "-m", str(model)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("edgematte")]
    assert len(lines) == 1 and "readme.txt" in lines[0] and "Traceback" not in result.stderr
    assert _files(tmp_path / "o") == ["b.png"]
    help_text = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120).stdout
    assert all(verb in help_text for verb in ("mask", "cutout", "blur", "replace"))


def test_cli_startup_imports_no_heavy_framework() -> None:
    """Every installed package's register() runs at startup, so none may import torch/onnx/nncf at module level."""
    code = ("import sys; from edgematte.edge.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'nncf', 'torch_pruning') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", "startup imports " + result.stdout


def test_progress_counter_without_tqdm(tmp_path: Path, model: Path, inputs: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError: the plain counter is used
    assert main(["mask", str(inputs), "-o", str(tmp_path / "o"), "-m", str(model), "--progress"]) == 0
    assert "images: 3/3" in capsys.readouterr().err
