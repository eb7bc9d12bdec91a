"""Videos with damaged frames, cut files and long runs through `edgematte mask`: broken frames are skipped with one
warning line each and a count, a truncated file is said to be one, an unreadable video is one error line, the output
is all or nothing (temp name, then rename), and memory stays flat over thousands of frames."""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest

from edge_tiny import build_ir
from edgematte.edge import io
from edgematte.edge.cli import main

FRAMES = 30


def _write_clip(path: Path, frames: int, size=(64, 48)) -> None:
    """An MJPG .avi whose frames differ (brightness ramp, a moving bar), so a skipped one shows."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    assert writer.isOpened()
    w, h = size
    for i in range(frames):
        frame = np.full((h, w, 3), (i * 7) % 256, np.uint8)
        frame[:, (i * 3) % w: (i * 3) % w + 8] = 255
        writer.write(frame)
    writer.release()


def _frame_spans(data: bytes) -> List[tuple]:
    """(start, end) of each JPEG frame (SOI .. EOI) inside an MJPG .avi."""
    spans, pos = [], 0
    while True:
        start = data.find(b"\xff\xd8\xff", pos)
        if start < 0:
            return spans
        end = data.index(b"\xff\xd9", start) + 2
        spans.append((start, end))
        pos = end


def _damage(src: Path, dst: Path, frames: List[int], seed: int = 1) -> None:
    """Overwrite the named frames' JPEG bytes (after SOI) with noise: the container is intact, the frames are not."""
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(seed)
    spans = _frame_spans(bytes(data))
    for index in frames:
        start, end = spans[index]
        data[start + 2:end] = rng.integers(0, 256, end - start - 2, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_ir(tmp_path_factory.mktemp("ir"), size=(48, 64))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.avi"
    _write_clip(path, FRAMES)
    return path


def _run(args: List[str], capfd) -> tuple:
    capfd.readouterr()
    code = main(args + ["--no-progress"])
    err = capfd.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line.strip()]


def _only_target(out: Path, name: str) -> None:
    """The output folder holds the finished video and nothing else (no temp file left behind)."""
    assert sorted(p.name for p in out.iterdir()) == [name]


def test_broken_frames_are_skipped_one_warning_each(clip: Path, model: Path, tmp_path: Path, capfd) -> None:
    src = tmp_path / "damaged.avi"
    _damage(clip, src, [5, 12, 13])
    code, lines = _run(["mask", str(src), "-o", str(tmp_path / "out"), "-m", str(model)], capfd)
    assert code == 0, lines
    assert lines == [
        "edgematte: warning: {}: frame 5 is unreadable; skipped".format(src),
        "edgematte: warning: {}: frame 12 is unreadable; skipped".format(src),
        "edgematte: warning: {}: frame 13 is unreadable; skipped".format(src),
        "edgematte: warning: {}: 3 unreadable frame(s) skipped in all; {} frame(s) written to {}".format(
            src, FRAMES - 3, tmp_path / "out" / "damaged.avi"),
    ]
    _only_target(tmp_path / "out", "damaged.avi")
    assert io.probe_video(tmp_path / "out" / "damaged.avi").frame_count == FRAMES - 3


def test_many_broken_frames_are_named_up_to_a_limit(clip: Path, model: Path, tmp_path: Path, capfd) -> None:
    from edgematte.edge.apply import MAX_FRAME_WARNINGS

    src = tmp_path / "many.avi"
    broken = list(range(2, 2 + MAX_FRAME_WARNINGS + 5))
    _damage(clip, src, broken)
    code, lines = _run(["mask", str(src), "-o", str(tmp_path / "out"), "-m", str(model)], capfd)
    assert code == 0
    assert len(lines) == MAX_FRAME_WARNINGS + 1
    assert "{} unreadable frame(s) skipped in all".format(len(broken)) in lines[-1]


def test_truncated_video_is_said_to_be_cut(clip: Path, model: Path, tmp_path: Path, capfd) -> None:
    data = clip.read_bytes()
    spans = _frame_spans(data)
    src = tmp_path / "cut.avi"
    src.write_bytes(data[: spans[18][1]])  # ends right after frame 18: 19 frames, the header still says 30
    code, lines = _run(["mask", str(src), "-o", str(tmp_path / "out"), "-m", str(model)], capfd)
    assert code == 0, lines
    assert lines == ["edgematte: warning: {}: the stream ends after 19 frame(s) but its header declares {} "
                     "(truncated file?)".format(src, FRAMES)]
    assert io.probe_video(tmp_path / "out" / "cut.avi").frame_count == 19


def test_video_with_no_readable_frame_fails_and_writes_nothing(clip: Path, model: Path, tmp_path: Path,
                                                              capfd) -> None:
    src = tmp_path / "dead.avi"
    _damage(clip, src, list(range(FRAMES)))
    out = tmp_path / "out"
    code, lines = _run(["mask", str(src), "-o", str(out), "-m", str(model)], capfd)
    assert code == 1
    assert lines == ["edgematte: error: {}: the video has no readable frame".format(src)]
    assert not out.exists() or list(out.iterdir()) == []  # the temp video was removed, nothing at the target


@pytest.mark.parametrize("content", ["noise", "header_only", "empty"])
def test_unopenable_video_is_one_error_line(clip: Path, model: Path, tmp_path: Path, capfd, content: str) -> None:
    src = tmp_path / "bad.avi"
    src.write_bytes({"noise": np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes(),
                     "header_only": clip.read_bytes()[:300], "empty": b""}[content])
    good = tmp_path / "good.avi"
    good.write_bytes(clip.read_bytes())
    out = tmp_path / "out"
    code, lines = _run(["mask", str(src), str(good), "-o", str(out), "-m", str(model)], capfd)
    assert code == 1  # one input failed; the other was still processed
    assert len(lines) == 1 and lines[0].startswith("edgematte: error: {}: ".format(src)), lines
    _only_target(out, "good.avi")


def test_a_crash_mid_video_leaves_nothing_at_the_target(clip: Path, model: Path, tmp_path: Path, capfd,
                                                        monkeypatch) -> None:
    """A failure after some frames were written (here: the disk fills up) removes the temp video; an older output
    at the target is kept as it was."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "clip.avi").write_bytes(b"older output")
    real = io.VideoWriter.write
    calls = []

    def failing_write(self, frame):
        calls.append(1)
        if len(calls) == 10:
            raise OSError(28, "No space left on device")
        real(self, frame)

    monkeypatch.setattr(io.VideoWriter, "write", failing_write)
    code, lines = _run(["mask", str(clip), "-o", str(out), "-m", str(model)], capfd)
    assert code == 1 and len(lines) == 1 and str(clip) in lines[0] and "No space left" in lines[0], lines
    _only_target(out, "clip.avi")
    assert (out / "clip.avi").read_bytes() == b"older output"


MEMORY_SCRIPT = r"""
import json, sys
from edgematte.edge import io
from edgematte.edge.cli import main


def status(key):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0  # MB
    raise KeyError(key)


marks, written, real = {}, [0], io.VideoWriter.write


def write(self, frame):
    real(self, frame)
    written[0] += 1
    if written[0] == 200:
        marks["rss_mb_at_200"], marks["peak_mb_at_200"] = status("VmRSS"), status("VmHWM")


io.VideoWriter.write = write
code = main(["mask", sys.argv[1], "-o", sys.argv[2], "-m", sys.argv[3], "--no-progress"])
marks.update(code=code, frames=written[0], rss_mb_at_end=status("VmRSS"), peak_mb_at_end=status("VmHWM"))
print(json.dumps(marks))
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmRSS from /proc")
def test_long_video_keeps_memory_flat(model: Path, tmp_path: Path) -> None:
    """3,000 frames through `edgematte mask` in a fresh interpreter: resident memory after frame 200 and at the end
    differ by far less than holding the frames would take (2,800 x 160x120 bytes = 54 MB for the masks alone,
    three times that for the input frames)."""
    src = tmp_path / "long.avi"
    _write_clip(src, 3000, size=(160, 120))
    script = tmp_path / "measure.py"
    script.write_text(MEMORY_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, str(script), str(src), str(tmp_path / "out"), str(model)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    marks = json.loads(result.stdout.strip().splitlines()[-1])
    print("long video memory:", marks)  # shown with pytest -s: the memory marks over the video
    assert marks["code"] == 0 and marks["frames"] == 3000
    growth = marks["rss_mb_at_end"] - marks["rss_mb_at_200"]
    assert growth < 20.0, marks
    assert marks["peak_mb_at_end"] - marks["peak_mb_at_200"] < 20.0, marks
