"""Live sources and sinks for the effect verbs: cameras, stream URLs, stdin (encoded image or raw BGR24 frames) in;
video files, frame folders, raw frames on stdout, encoded image bytes on stdout or a window out; a clean stop on
Ctrl-C / SIGTERM."""
from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from .errors import InputError
from .io import VIDEO_FOURCC, VIDEO_SUFFIXES, _capture_api, write_image

URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
DEVICE_PATTERN = re.compile(r"^/dev/video(\d+)$")
DEFAULT_FPS = 25.0  # when a camera or stream does not say


@dataclass
class LiveInput:
    """A non-file input: kind is camera, url, stdin-image or stdin-raw; target is what VideoCapture opens."""

    kind: str
    target: Any
    name: str  # stem for outputs written into a folder

    @property
    def is_stream(self) -> bool:
        """A source of frames (everything but a single image on stdin)."""
        return self.kind != "stdin-image"


def parse_raw_size(text: Optional[str]) -> Optional[Tuple[int, int]]:
    """(width, height) from --raw WxH; None when not given."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*", text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise InputError("--raw: expected the frame size as WxH (e.g. 640x480), got {!r}".format(text))
    return int(match.group(1)), int(match.group(2))


def classify(text: str, raw: Optional[Tuple[int, int]] = None) -> Optional[LiveInput]:
    """The LiveInput an INPUT argument names, or None for a file or folder (an existing path always wins)."""
    if text == "-":
        return LiveInput("stdin-raw", raw, "stdin") if raw else LiveInput("stdin-image", None, "stdin")
    if URL_PATTERN.match(text) and not text.lower().startswith("file://"):
        rest = text.split("://", 1)[1].split("?", 1)[0].rstrip("/")
        last = rest.rsplit("/", 1)[-1] if "/" in rest else rest.split("@")[-1]
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", last.rsplit(".", 1)[0] if "/" in rest else last).strip("_")
        return LiveInput("url", text, (stem or "stream")[-60:])
    device = DEVICE_PATTERN.match(text)
    if device:
        return LiveInput("camera", int(device.group(1)), "camera{}".format(device.group(1)))
    if text.isdigit() and not os.path.exists(text):
        return LiveInput("camera", int(text), "camera{}".format(text))
    return None


# -- stopping -------------------------------------------------------------------------------------
class StopFlag:
    """Set by SIGINT / SIGTERM (once installed) or by a sink; live loops check it between frames."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""
        self._previous = []  # type: List[Tuple[int, Any]]

    def set(self, reason: str) -> None:
        """Ask the run to stop after the frames in flight."""
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    def __bool__(self) -> bool:
        return self.event.is_set()

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous.append((sig, signal.signal(sig, self._on_signal)))
        return self

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        if self.event.is_set():  # a second signal: stop now
            raise KeyboardInterrupt
        self.set(name)

    def __exit__(self, *exc: Any) -> bool:
        for sig, handler in reversed(self._previous):
            signal.signal(sig, handler)
        self._previous = []
        return False


# -- sources --------------------------------------------------------------------------------------
Opener = Callable[[Any], Any]  # target -> an object with isOpened/read/get/release (cv2.VideoCapture's API)


def open_capture(target: Any) -> Any:
    """cv2.VideoCapture of a camera index (the platform's default backend) or URL (FFmpeg)."""
    if isinstance(target, int):
        return cv2.VideoCapture(target)
    return cv2.VideoCapture(target, _capture_api())


class CaptureSource:
    """Frames (BGR uint8) of a camera or stream URL; a dropped stream is reopened up to `reconnect` times.

    `error` holds the one-line reason when the stream dropped for good; iteration then ends normally, so the caller
    can close its output before it reports the failure.
    """

    def __init__(self, live: LiveInput, reconnect: int = 3, retry_delay: float = 1.0,
                 opener: Optional[Opener] = None, stop: Optional[StopFlag] = None) -> None:
        self.live = live
        self.reconnect = max(0, int(reconnect))
        self.retry_delay = retry_delay
        self.opener = opener or open_capture
        self.stop = stop or StopFlag()
        self.frames = 0
        self.reconnects = 0
        self.error = ""
        self._capture = self._open()
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps <= 240 else DEFAULT_FPS
        self.frame_count = max(0, int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))

    def _label(self) -> str:
        return "camera {}".format(self.live.target) if self.live.kind == "camera" else str(self.live.target)

    def _open(self) -> Any:
        capture = self.opener(self.live.target)
        if capture is None or not capture.isOpened():
            if capture is not None:
                capture.release()
            if self.live.kind == "camera":
                raise InputError("{}: cannot open this camera (no such device, or it is busy)".format(self._label()))
            raise InputError("{}: cannot open this stream (unreachable, or not a video OpenCV can read)".format(
                self._label()))
        return capture

    def __iter__(self) -> Iterator[np.ndarray]:
        self._failures = 0  # reconnect attempts since the last good frame
        try:
            while not self.stop:
                ok, frame = self._capture.read()
                if ok and frame is not None and frame.size:
                    self.frames += 1
                    self._failures = 0
                    yield frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
                    continue
                if self.frame_count and self.frames >= self.frame_count:
                    break  # a finite stream that ended where its header said
                if not self._reopen():
                    break
        finally:
            self._capture.release()

    def _reopen(self) -> bool:
        """Reopen a dropped stream; False (with `error` set) once the attempts since the last good frame ran out."""
        self._capture.release()
        self._capture = _Closed()
        while self._failures < self.reconnect:
            self._failures += 1
            if self.stop.event.wait(self.retry_delay * self._failures):
                return False
            try:
                capture = self._open()
            except InputError:
                continue
            if self.frame_count and self.frames:  # a finite stream: go on where it dropped
                capture.set(cv2.CAP_PROP_POS_FRAMES, self.frames)
            self._capture = capture
            self.reconnects += 1
            return True
        if self.reconnect:
            self.error = "{}: the stream dropped after {} frame(s); {} reconnect attempt(s) failed".format(
                self._label(), self.frames, self.reconnect)
        else:
            self.error = "{}: the stream dropped after {} frame(s)".format(self._label(), self.frames)
        return False


class _Closed:
    """A released capture: reads fail."""

    def read(self) -> Tuple[bool, None]:
        return False, None

    def release(self) -> None:
        pass


class RawFrameSource:
    """BGR24 frames of a fixed size read from a binary stream (stdin), as `rembg b` takes them."""

    def __init__(self, stream: BinaryIO, size: Tuple[int, int], stop: Optional[StopFlag] = None) -> None:
        self.stream = stream
        self.width, self.height = size
        self.stop = stop or StopFlag()
        self.fps = DEFAULT_FPS
        self.frames = 0
        self.error = ""

    def __iter__(self) -> Iterator[np.ndarray]:
        need = self.width * self.height * 3
        while not self.stop:
            data = _read_exactly(self.stream, need)
            if len(data) == need:
                self.frames += 1
                yield np.frombuffer(data, np.uint8).reshape(self.height, self.width, 3).copy()
                continue
            if data:
                self.error = "stdin: the last raw frame is cut short ({} of {} bytes for {}x{} BGR24)".format(
                    len(data), need, self.width, self.height)
            break


def _read_exactly(stream: BinaryIO, count: int) -> bytes:
    """Up to `count` bytes, fewer only at the end of the stream."""
    chunks = []
    got = 0
    while got < count:
        chunk = stream.read(count - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_stdin_image(stream: Optional[BinaryIO] = None, max_pixels: Optional[int] = None) -> np.ndarray:
    """One encoded image (PNG, JPEG, ...) read whole from stdin, decoded to BGR uint8 (alpha dropped)."""
    data = (stream or sys.stdin.buffer).read()
    if not data:
        raise InputError("stdin: no image bytes (pipe an encoded image in, or use --raw WxH for raw frames)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError("stdin: not an image OpenCV can decode ({} bytes)".format(len(data)))
    if max_pixels and image.shape[0] * image.shape[1] > max_pixels:
        raise InputError("stdin: image is {}x{}, above --max-pixels {}".format(image.shape[1], image.shape[0],
                                                                                max_pixels))
    return image


# -- sinks ----------------------------------------------------------------------------------------
class VideoFileSink:
    """Frames into a video file, written under a temporary name and renamed into place when closed, also after a
    stop or a dropped stream, so what was written stays playable; an existing file is never overwritten."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_FOURCC:
            raise InputError("{}: cannot write video as {} (supported: {})".format(
                self.path, suffix or "no suffix", ", ".join(sorted(VIDEO_FOURCC))))
        if self.path.exists():
            raise InputError("{}: already exists; not overwriting it (remove it or pick another -o)".format(self.path))
        self.fps = fps
        self.frames = 0
        self._writer = None  # type: Any
        self._tmp = ""

    def write(self, frame: np.ndarray) -> None:
        """Append one frame (BGR, or gray written as BGR); the writer opens at the first frame's size."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, self._tmp = tempfile.mkstemp(prefix="." + self.path.stem + ".", suffix=".tmp" + self.path.suffix,
                                                 dir=str(self.path.parent))
            os.close(handle)
            self.size = (frame.shape[1], frame.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_FOURCC[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(self._tmp, fourcc, self.fps, self.size)
            if not self._writer.isOpened():
                self._writer = None
                os.unlink(self._tmp)
                raise InputError("{}: OpenCV cannot open a video writer here".format(self.path))
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_LINEAR)
        self._writer.write(np.ascontiguousarray(frame[:, :, :3]))
        self.frames += 1

    def close(self) -> List[str]:
        """Finish the file and rename it into place; the outputs written."""
        if self._writer is None:
            return []
        self._writer.release()
        self._writer = None
        if os.path.exists(str(self.path)):  # appeared while we ran: keep both, ours under its temp name
            return [self._tmp]
        os.replace(self._tmp, str(self.path))
        return [str(self.path)]


class FrameFolderSink:
    """Frames as numbered PNGs (RGBA cutouts keep their alpha) in a new folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise InputError("{}: already exists; not writing frames into it (pick another -o)".format(self.path))
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        """Write the next frame."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_image(self.path / "{:06d}.png".format(self.frames), frame)
        self.frames += 1

    def close(self) -> List[str]:
        """The folder, when any frame went into it."""
        return [str(self.path)] if self.frames else []


class RawSink:
    """Frames as raw bytes on a binary stream (stdout): BGR24, gray masks as BGR24, cutouts as BGRA32."""

    def __init__(self, stream: Optional[BinaryIO] = None, stop: Optional[StopFlag] = None) -> None:
        self.stream = stream or sys.stdout.buffer
        self.stop = stop
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        """Write one frame; a closed reader (broken pipe) stops the run."""
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        try:
            self.stream.write(np.ascontiguousarray(frame).tobytes())
            self.frames += 1
        except (BrokenPipeError, ValueError):
            if self.stop is not None:
                self.stop.set("the reader of stdout went away")

    def close(self) -> List[str]:
        """Flush the stream."""
        try:
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass
        return ["-"] if self.frames else []


def has_display() -> bool:
    """Whether this OpenCV can open a window here (a GUI backend is built in and a display is set)."""
    info = cv2.getBuildInformation()
    gui = info.split("GUI:", 1)[1].splitlines()[0].strip() if "GUI:" in info else ""
    if gui.upper().startswith("NONE") or not gui:
        return False
    return sys.platform in ("win32", "darwin") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class WindowSink:
    """Frames shown in a window; q or Esc in the window stops the run."""

    def __init__(self, title: str, stop: StopFlag) -> None:
        if not has_display():
            raise InputError("--show: no display here (headless OpenCV build or no DISPLAY); write to a file or - "
                             "instead")
        self.title = title
        self.stop = stop
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        """Show one frame."""
        cv2.imshow(self.title, frame)
        self.frames += 1
        if cv2.waitKey(1) & 0xFF in (27, ord("q")):
            self.stop.set("closed from the window")

    def close(self) -> List[str]:
        """Close the window."""
        cv2.destroyWindow(self.title)
        return []


class Sinks:
    """Several sinks fed the same frames (a file and a window, say)."""

    def __init__(self, sinks: List[Any]) -> None:
        self.sinks = sinks

    def write(self, frame: np.ndarray) -> None:
        """Write to every sink."""
        for sink in self.sinks:
            sink.write(frame)

    def close(self) -> List[str]:
        """Close every sink (all of them, even when one fails); the outputs written."""
        outputs = []  # type: List[str]
        for sink in self.sinks:
            outputs.extend(sink.close())
        return outputs


def output_for(outdir: str, live: LiveInput, has_alpha: bool) -> Optional[Path]:
    """The file (or frame folder) a live run writes for `-o`: a video path as given, else NAME.mp4 (cutouts: a
    NAME/ frame folder) in the folder; None for `-o -` (stdout)."""
    if outdir == "-":
        return None
    out = Path(outdir)
    if out.suffix.lower() in VIDEO_SUFFIXES and not out.is_dir():
        if has_alpha:
            raise InputError("{}: cutouts keep an alpha channel, which these videos cannot; give a folder for PNG "
                             "frames or - for raw BGRA frames".format(out))
        return out
    return out / (live.name if has_alpha else live.name + ".mp4")


__all__ = ["LiveInput", "classify", "parse_raw_size", "StopFlag", "CaptureSource", "RawFrameSource",
           "read_stdin_image", "VideoFileSink", "FrameFolderSink", "RawSink", "WindowSink", "Sinks", "output_for",
           "has_display", "open_capture"]
