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
    frames = sorted((out / "clip").glob("*.png"))
    assert len(frames) == 6 and cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED).shape == (48, 64, 4)
    assert not any(name.startswith(".") for name in os.listdir(out))  # no temp file or folder left


def test_default_zoo_model(tmp_path: Path, model: Path, inputs: Path, monkeypatch, capsys) -> None:
    from edgematte.edge import zoo

    empty = tmp_path / "empty_zoo"
    empty.mkdir()
    monkeypatch.setattr(zoo, "PACKAGE_DIR", empty)  # independent of what the package ships
    monkeypatch.setenv("EDGEMATTE_ZOO", str(tmp_path / "zoo"))
    from edgematte.edge.commands import DEFAULT_MODEL

    for verb in ("mask", "cutout"):  # the bare mask: the general model; pictures of people: the people model
        name = DEFAULT_MODEL[verb]
        if not (tmp_path / "zoo" / name).is_dir():
            assert main([verb, str(inputs), "-o", str(tmp_path / verb)]) == 1
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "'{}'".format(name) in err[0] and "-m" in err[0]
            build_ir(tmp_path / "zoo" / name, name="model", size=(32, 32))
        assert main([verb, str(inputs), "-o", str(tmp_path / verb)]) == 0
        assert _files(tmp_path / verb) == ["a.png", "b.png", "nested/c.png"]


def test_help_states_each_default_and_its_rule(capsys) -> None:
    from edgematte.edge.commands import DEFAULT_MODEL

    assert DEFAULT_MODEL == {"mask": "sod", "cutout": "portrait", "blur": "portrait", "replace": "portrait"}
    for verb, name, rule in (("mask", "sod", "any salient subject"), ("cutout", "portrait", "mostly of people"),
                             ("blur", "portrait", "mostly of people"), ("replace", "portrait", "mostly of people")):
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: zoo model '{}', ".format(name) in text and rule in text, verb
        assert "-ppm, --post-process" in text and "faint veil" in text and "leave it off" in text


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
    from edgematte.edge import progress

    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError: the plain counter is used
    monkeypatch.setattr(progress, "is_terminal", lambda stream: True)
    assert main(["mask", str(inputs), "-o", str(tmp_path / "o"), "-m", str(model)]) == 0
    assert "\rmask: 3/3 images" in capsys.readouterr().err


def test_progress_in_a_log_is_plain_lines(tmp_path: Path, model: Path, inputs: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("EDGEMATTE_PROGRESS_INTERVAL", "0")  # a line per image (default: one every 10 s)
    assert main(["blur", str(inputs), "-o", str(tmp_path / "o"), "-m", str(model)]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err and "it/s" not in err
    lines = err.splitlines()
    assert [line.split(",")[0] for line in lines] == ["blur: 1/3 images", "blur: 2/3 images", "blur: 3/3 images",
                                                      "blur: 3/3 images"]
    assert lines[-1].endswith(" s, done")
    monkeypatch.delenv("EDGEMATTE_PROGRESS_INTERVAL")
    assert main(["mask", str(inputs), "-o", str(tmp_path / "p"), "-m", str(model), "--progress"]) == 0
    assert capsys.readouterr().err.startswith("mask: 3/3 images, ")  # short and forced: the last line only


def _hazy_photo(path: Path) -> None:
    """A bright subject on a mid-gray background (the tiny model's haze, ~0.25) with a small bright speck."""
    image = np.full((192, 256, 3), 110, np.uint8)
    image[48:160, 80:200] = 230
    image[8:14, 8:14] = 230
    cv2.imwrite(str(path), image)


def test_post_process_cleans_the_haze(tmp_path: Path, model: Path, capsys) -> None:
    photo = tmp_path / "photo.png"
    _hazy_photo(photo)
    assert main(["mask", str(photo), "-o", str(tmp_path / "raw"), "-m", str(model)]) == 0
    assert main(["mask", str(photo), "-o", str(tmp_path / "ppm"), "-m", str(model), "-ppm"]) == 0
    assert main(["cutout", str(photo), "-o", str(tmp_path / "cut"), "-m", str(model), "--post-process"]) == 0
    assert capsys.readouterr().err == ""
    raw = cv2.imread(str(tmp_path / "raw" / "photo.png"), cv2.IMREAD_UNCHANGED)
    clean = cv2.imread(str(tmp_path / "ppm" / "photo.png"), cv2.IMREAD_UNCHANGED)
    assert 40 < raw[120:180, 10:60].mean() < 90 and raw[10:12, 10:12].min() > 128  # haze and the speck
    assert clean[120:180, 10:60].max() == 0 and clean[8:14, 8:14].max() == 0 and clean[80:120, 120:160].min() == 255
    haze = lambda m: np.mean((m > 5) & (m < 250))  # noqa: E731
    assert haze(clean) < haze(raw) / 4
    alpha = cv2.imread(str(tmp_path / "cut" / "photo.png"), cv2.IMREAD_UNCHANGED)[..., 3]
    assert np.array_equal(alpha, clean)


def test_fg_estimate_says_once_that_it_compiles(tmp_path: Path, model: Path, inputs: Path, monkeypatch,
                                                capsys) -> None:
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "pymatting.py").write_text("def estimate_foreground_ml(image, alpha):\n    return image\n")
    monkeypatch.syspath_prepend(str(fake))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    for run in range(2):
        monkeypatch.delitem(sys.modules, "pymatting", raising=False)
        assert main(["cutout", str(inputs / "b.png"), "-o", str(tmp_path / "o"), "-m", str(model),
                     "--fg-estimate"]) == 0
        err = capsys.readouterr().err
        if run == 0:
            assert err.count("\n") == 1 and "note: --fg-estimate compiles pymatting's kernels" in err
            assert str(tmp_path / "numba") in err
        else:
            assert err == ""  # the kernels are cached: no note
    monkeypatch.delitem(sys.modules, "pymatting", raising=False)
