"""The runtime verbs with stderr captured at the file descriptor (native OpenCV/FFmpeg/OpenVINO messages count as
extra lines), every verb's help, and the default zoo model independent of what the package ships."""
import argparse
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest

from edgematte.edge import cli, zoo
from edgematte.edge.commands import DEFAULT_MODEL
from edgematte.edge.errors import DeviceError
from edgematte.edge.runtime import load_model

from edge_tiny import build_ir, expected_prob

VERBS = ("mask", "cutout", "blur", "replace")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A tiny saliency IR: sigmoid((channel mean - 128) / 16) at 64x48."""
    return build_ir(tmp_path_factory.mktemp("model"), "tiny", (64, 48))


@pytest.fixture
def run(monkeypatch, capfd):
    """cli.main in-process (it imports only the named verb's module); (exit code, stdout, stderr at the fd level)."""

    def call(*argv):
        code = cli.main([str(a) for a in argv] + ["--no-progress"])
        out, err = capfd.readouterr()
        return code, out, err

    return call


def _image(path: Path, value: int, h: int = 30, w: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))
    return path


def _video(path: Path, frames: int = 10, size=(40, 30)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 25 * i, np.uint8))
    writer.release()
    return path


def _files(root: Path) -> List[str]:
    """Every file under root (hidden temp files included), relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _mask_value(value: int) -> int:
    return int(expected_prob(value) * 255 + 0.5)


def test_nested_folder_values_and_structure(tiny: Path, tmp_path: Path, run) -> None:
    root = tmp_path / "in"
    values = {"a.png": 40, "sub/b.jpg": 128, "sub/deeper/c.bmp": 220}
    for name, value in values.items():
        _image(root / name, value)
    code, _, err = run("mask", root, "-o", tmp_path / "out", "-m", tiny, "--nireq", "2")
    assert (code, err) == (0, "")
    assert _files(tmp_path / "out") == ["a.png", "sub/b.png", "sub/deeper/c.png"]
    for name, value in values.items():  # each mask belongs to its own input (order kept under async requests)
        mask = cv2.imread(str(tmp_path / "out" / Path(name).with_suffix(".png")), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (30, 40) and abs(int(mask[15, 20]) - _mask_value(value)) <= 2, name


def test_video_keeps_frame_count_and_order(tiny: Path, tmp_path: Path, run) -> None:
    src = _video(tmp_path / "clip.avi", frames=10)
    code, _, err = run("mask", src, "-o", tmp_path / "out", "-m", tiny)
    assert (code, err) == (0, "")
    assert _files(tmp_path / "out") == ["clip.avi"]
    capture = cv2.VideoCapture(str(tmp_path / "out" / "clip.avi"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 10 and frames[0].shape[:2] == (30, 40)
    levels = [int(f[:, :, 0].mean()) for f in frames]  # masks follow the frames' rising brightness
    assert levels == sorted(levels) and levels[0] < 60 and levels[-1] > 200


@pytest.mark.parametrize("bad_name,content", [("broken.jpg", "truncated"), ("empty.png", b""),
                                              ("header.png", b"\x89PNG\r\n\x1a\n broken"),
                                              ("noise.mp4", b"not a video" * 50)])
def test_bad_input_is_exactly_one_stderr_line(tiny: Path, tmp_path: Path, run, bad_name: str, content) -> None:
    root = tmp_path / "in"
    _image(root / "a.png", 50)
    _image(root / "z" / "b.png", 210)
    bad = root / "m" / bad_name
    bad.parent.mkdir(parents=True)
    if content == "truncated":
        data = cv2.imencode(".jpg", np.full((200, 300, 3), 99, np.uint8))[1].tobytes()
        content = data[: len(data) // 2]
    bad.write_bytes(content)
    code, _, err = run("mask", root, "-o", tmp_path / "out", "-m", tiny)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and bad_name in lines[0] and "Traceback" not in err, err
    assert _files(tmp_path / "out") == ["a.png", "z/b.png"]  # nothing, not even a temp file, for the bad one


def test_unknown_device_error_lists_available(tiny: Path, tmp_path: Path, run) -> None:
    with pytest.raises(DeviceError) as info:
        load_model(tiny, device="NOSUCHDEV")
    assert "NOSUCHDEV" in str(info.value) and "CPU" in str(info.value) and "\n" not in str(info.value)
    code, _, err = run("mask", _image(tmp_path / "a.png", 100), "-o", tmp_path / "out", "-m", tiny, "-d", "NOSUCHDEV")
    assert code == 1 and "available: " in err and "CPU" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_default_zoo_model_per_verb(tiny: Path, tmp_path: Path, run, monkeypatch) -> None:
    empty = tmp_path / "empty_zoo"
    empty.mkdir()
    monkeypatch.setattr(zoo, "PACKAGE_DIR", empty)  # independent of what the package ships
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "zoo"))
    src = _image(tmp_path / "a.png", 180)
    for verb in VERBS:
        code, _, err = run(verb, src, "-o", tmp_path / "out")
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert "'{}'".format(DEFAULT_MODEL[verb]) in err and "-m" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    build_ir(tmp_path / "zoo" / "sod", "model", (64, 48))
    (tmp_path / "sod").mkdir()  # a same-named folder in the working directory must not shadow the zoo model
    monkeypatch.chdir(tmp_path)
    code, _, err = run("mask", src, "-o", tmp_path / "out")
    assert (code, err) == (0, "")
    monkeypatch.setitem(DEFAULT_MODEL, "blur", "nobody")  # a verb whose default is not installed
    code, _, err = run("blur", src, "-o", tmp_path / "out2")
    assert code == 1 and "'nobody'" in err


def test_every_option_has_help() -> None:
    from edgematte.edge import commands

    parser = argparse.ArgumentParser(prog="edgematte")
    sub = parser.add_subparsers(dest="command")
    commands.register(sub)
    assert set(sub.choices) == set(VERBS)  # the effect verbs
    full = next(a for a in cli.build_parser()._actions if a.dest == "command").choices
    for verb, verb_parser in full.items():
        for action in verb_parser._actions:
            assert action.help, "{} {} has no help".format(verb, action.dest)


@pytest.mark.parametrize("verb", VERBS)
def test_verb_help_through_the_full_parser(verb: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([verb, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert all(opt in text for opt in ("--outdir", "--model", "--device", "--nireq"))
