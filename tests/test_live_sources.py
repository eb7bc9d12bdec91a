"""Live inputs of the effect verbs: stream URLs (a clip served over HTTP), stdin images and raw frames in and out,
a stub camera that drops, a clean stop on SIGTERM, and foreign PATH@SPEC models; all with tiny models and clips."""
import functools
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_tiny import build_ir
from edgematte.edge import sources
from edgematte.edge._ov import ov
from edgematte.edge.cli import main
from edgematte.edge.errors import InputError
from edgematte.edge.foreign import PreprocSpec

W, H = 64, 48
CLI = [sys.executable, "-c", "import sys; from edgematte.edge.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_ir(tmp_path_factory.mktemp("ir"), size=(H, W))


def _frames(count: int):
    """Frames that differ (a moving bright bar on a brightness ramp)."""
    for i in range(count):
        frame = np.full((H, W, 3), 40 + i * 5, np.uint8)
        frame[:, (i * 3) % W:(i * 3) % W + 12] = 230
        yield frame


def _write_avi(path: Path, count: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (W, H))
    for frame in _frames(count):
        writer.write(frame)
    writer.release()
    return path


def _count_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def http_folder(tmp_path: Path):
    """A local HTTP server over tmp_path/www (OpenCV's FFmpeg opens http:// URLs)."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, "http://127.0.0.1:{}".format(server.server_address[1])
    server.shutdown()
    server.server_close()


# -- naming live inputs -------------------------------------------------------------------------
def test_classify_names_cameras_urls_and_stdin(tmp_path: Path, monkeypatch) -> None:
    assert sources.classify("rtsp://user:pw@cam.local:554/live/ch1").kind == "url"
    assert sources.classify("rtsp://user:pw@cam.local:554/live/ch1").target == "rtsp://user:pw@cam.local:554/live/ch1"
    assert sources.classify("http://host/a/clip.avi").name == "clip"
    assert (sources.classify("0").kind, sources.classify("0").target) == ("camera", 0)
    assert sources.classify("/dev/video3").target == 3
    assert sources.classify("-").kind == "stdin-image"
    assert sources.classify("-", (8, 6)).kind == "stdin-raw"
    assert sources.classify("photo.jpg") is None
    monkeypatch.chdir(tmp_path)
    (tmp_path / "0").write_bytes(b"x")
    assert sources.classify("0") is None  # an existing file named 0 stays a file


@pytest.mark.parametrize("text", ["640", "0x480", "axb", "640x"])
def test_raw_size_errors_name_the_option(text: str) -> None:
    with pytest.raises(InputError, match="--raw"):
        sources.parse_raw_size(text)


def test_a_live_input_comes_alone(model: Path, tmp_path: Path, capsys) -> None:
    assert main(["mask", "-", str(tmp_path), "-o", str(tmp_path / "o"), "-m", str(model)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "must be the only INPUT" in err[0]


# -- stream URLs --------------------------------------------------------------------------------
def test_http_stream_is_processed_to_a_playable_video(model: Path, tmp_path: Path, http_folder, capsys) -> None:
    root, base = http_folder
    _write_avi(root / "clip.avi", 12)
    out = tmp_path / "out"
    assert main(["blur", base + "/clip.avi", "-o", str(out), "-m", str(model), "--no-progress"]) == 0
    assert _count_frames(out / "clip.mp4") == 12
    err = capsys.readouterr().err
    assert "fps end to end" in err and "infer" in err and "encode" in err


def test_unreachable_stream_is_one_line(model: Path, tmp_path: Path, capsys) -> None:
    code = main(["mask", "rtsp://127.0.0.1:1/none", "-o", str(tmp_path / "o"), "-m", str(model), "--no-progress"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "rtsp://127.0.0.1:1/none" in lines[0] and "cannot open" in lines[0]
    assert not (tmp_path / "o").exists()


# -- a stub camera ------------------------------------------------------------------------------
class _StubCamera:
    """VideoCapture's API over a few frames, then failed reads (a camera unplugged)."""

    def __init__(self, count: int) -> None:
        self.frames = list(_frames(count))

    def isOpened(self) -> bool:
        return True

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def get(self, prop: int) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop: int, value: float) -> bool:
        return True

    def release(self) -> None:
        pass


def test_dropped_camera_reconnects_then_fails_keeping_the_output(model: Path, tmp_path: Path, monkeypatch,
                                                                 capsys) -> None:
    opened = []

    def opener(target):
        opened.append(target)
        return _StubCamera(7) if len(opened) == 1 else (_StubCamera(3) if len(opened) == 2 else None)

    monkeypatch.setattr(sources, "open_capture", opener)
    monkeypatch.setattr(sources.CaptureSource, "__init__", functools.partialmethod(
        sources.CaptureSource.__init__, retry_delay=0.01))
    out = tmp_path / "cam.mp4"
    code = main(["replace", "--camera", "0", "-o", str(out), "-m", str(model), "--reconnect", "2", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert opened == [0, 0, 0, 0]  # the first open, one good reconnect, two failed attempts
    assert "camera 0: the stream dropped after 10 frame(s); 2 reconnect attempt(s) failed" in err[-1]
    assert "kept in " + str(out) in err[-1]
    assert _count_frames(out) == 10


def test_existing_output_is_not_overwritten(model: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sources, "open_capture", lambda target: _StubCamera(3))
    out = tmp_path / "mine.mp4"
    out.write_bytes(b"someone else's")
    assert main(["mask", "0", "-o", str(out), "-m", str(model), "--no-progress"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"someone else's"


def test_show_without_a_display_is_one_line(model: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sources, "has_display", lambda: False)
    monkeypatch.setattr(sources, "open_capture", lambda target: _StubCamera(3))
    assert main(["blur", "0", "--show", "-o", str(tmp_path / "o"), "-m", str(model), "--no-progress"]) == 1
    assert "--show: no display" in capsys.readouterr().err


# -- stdin and stdout ---------------------------------------------------------------------------
def test_stdin_image_to_stdout_png(model: Path) -> None:
    image = next(_frames(1))
    ok, data = cv2.imencode(".jpg", image)
    run = subprocess.run(CLI + ["cutout", "-", "-o", "-", "-m", str(model)], input=data.tobytes(),
                         capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    out = cv2.imdecode(np.frombuffer(run.stdout, np.uint8), cv2.IMREAD_UNCHANGED)
    assert out.shape == (H, W, 4) and run.stdout[:8] == b"\x89PNG\r\n\x1a\n"
    assert out[:, :, 3].max() > out[:, :, 3].min()  # the bright bar is the subject of the tiny model


def test_stdin_garbage_is_one_line(model: Path) -> None:
    run = subprocess.run(CLI + ["mask", "-", "-o", "-", "-m", str(model)], input=b"not an image",
                         capture_output=True, timeout=120)
    lines = run.stderr.decode().strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1 and "stdin: not an image" in lines[0] and not run.stdout


def test_raw_frames_in_and_out(model: Path) -> None:
    frames = list(_frames(6))
    run = subprocess.run(CLI + ["mask", "-", "--raw", "{}x{}".format(W, H), "-o", "-", "-m", str(model),
                                "--no-smooth"], input=b"".join(f.tobytes() for f in frames),
                         capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    assert len(run.stdout) == 6 * W * H * 3
    out = np.frombuffer(run.stdout, np.uint8).reshape(6, H, W, 3)
    bar = (np.arange(W) >= 0) & (np.arange(W) < 12)
    assert out[0][:, bar].mean() > out[0][:, ~bar].mean() + 50  # frame 0's bar is where the mask is bright
    assert "6 frame(s)" in run.stderr.decode()


def test_cut_raw_frame_fails_after_writing_the_whole_ones(model: Path) -> None:
    data = b"".join(f.tobytes() for f in _frames(3)) + b"\x00" * 100
    run = subprocess.run(CLI + ["blur", "-", "--raw", "{}x{}".format(W, H), "-o", "-", "-m", str(model)],
                         input=data, capture_output=True, timeout=120)
    assert run.returncode == 1 and len(run.stdout) == 3 * W * H * 3
    assert "stdin: the last raw frame is cut short (100 of {} bytes".format(W * H * 3) in run.stderr.decode()


def test_sigterm_stops_cleanly_with_a_playable_file(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "live.avi"
    proc = subprocess.Popen(CLI + ["blur", "-", "--raw", "{}x{}".format(W, H), "-o", str(out), "-m", str(model),
                                   "--no-progress"], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    for frame in _frames(8):
        proc.stdin.write(frame.tobytes())
    proc.stdin.flush()
    deadline = time.time() + 60
    while not any(name.startswith(".live.") for name in os.listdir(tmp_path)) and time.time() < deadline:
        time.sleep(0.05)  # wait until the writer holds its temporary file
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)  # stdin stays open: the run must not wait for more frames
    _, err = proc.communicate(timeout=60)
    proc.stdin.close()
    assert proc.returncode == 0, err.decode()
    assert "stopped (SIGTERM)" in err.decode()
    assert 1 <= _count_frames(out) <= 8  # the frames done before the signal, in a file that plays
    assert [p.name for p in tmp_path.iterdir()] == ["live.avi"]  # no temporary left behind


# -- foreign models in the effect verbs ---------------------------------------------------------
def test_foreign_model_runs_in_every_effect_verb(tmp_path: Path) -> None:
    ops = ov.opset8
    x = ops.parameter([1, 3, 8, 8], ov.Type.f32, name="pixels")
    out = ops.multiply(x, ops.constant(np.float32(1.0)))
    xml = tmp_path / "foreign.xml"
    ov.save_model(ov.Model([out], [x], "foreign"), str(xml))
    PreprocSpec([8, 8], layout="NCHW", color="RGB", std=[255.0], channel=0).save(tmp_path / "spec.json")
    image = tmp_path / "in.png"
    picture = np.zeros((16, 16, 3), np.uint8)
    picture[:, :8, 2] = 255  # red on the left: channel 0 of RGB is the foreground
    cv2.imwrite(str(image), picture)
    for verb in ("mask", "cutout", "blur", "replace"):
        assert main([verb, str(image), "-o", str(tmp_path / verb), "-m", "{}@{}".format(xml, tmp_path / "spec.json"),
                     "--no-progress"]) == 0
    mask = cv2.imread(str(tmp_path / "mask" / "in.png"), cv2.IMREAD_GRAYSCALE)
    assert mask[:, :6].min() > 200 and mask[:, 10:].max() < 50
    assert cv2.imread(str(tmp_path / "cutout" / "in.png"), cv2.IMREAD_UNCHANGED).shape == (16, 16, 4)


def test_bench_video_reports_inference_and_end_to_end_fps(model: Path, tmp_path: Path, capsys) -> None:
    clip = _write_avi(tmp_path / "c.avi", 10)
    assert main(["bench", str(model), "--video", str(clip), "--video-frames", "8"]) == 0
    out = capsys.readouterr().out
    for row in ("infer only", "mask smoothed", "blur --no-smooth", "replace smoothed", "(8 frames, 64x48)"):
        assert row in out
    fps = [float(line.split()[-9]) for line in out.splitlines() if "smoothed" in line or "--no-smooth" in line]
    assert len(fps) == 6 and min(fps) > 0
    assert list(tmp_path.iterdir()) == [clip]  # its temporary outputs are gone
