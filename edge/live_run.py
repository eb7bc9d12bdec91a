"""Run an effect verb on a live input (camera, stream URL, stdin): source -> overlapped pipeline -> sinks, a clean
stop, and fps with per-stage latency on stderr at the end."""
from __future__ import annotations

import sys
from typing import Any, List, Optional, Sequence

import cv2

from .apply import make_operation
from .errors import InputError
from .io import write_image
from .live import StageClock, render_stream, write_stream
from .progress import Progress, echo
from .sources import (CaptureSource, FrameFolderSink, LiveInput, RawFrameSource, RawSink, Sinks, StopFlag,
                      VideoFileSink, WindowSink, classify, output_for, parse_raw_size, read_stdin_image)

DEFAULT_RECONNECT = 3


def add_live_args(parser: Any) -> None:
    """The live-input options of the effect verbs."""
    from . import options

    parser.add_argument("--camera", type=options.camera, metavar="N",
                        help="read camera N (as /dev/videoN, {} to {}) instead of files".format(*options.CAMERA_RANGE))
    parser.add_argument("--raw", metavar="WxH", help="with INPUT -: stdin carries raw BGR24 frames of this size; "
                                                    "-o - then writes raw frames (BGR24; cutouts BGRA32) to stdout")
    parser.add_argument("--show", action="store_true", help="live inputs: show the result in a window (q stops)")
    parser.add_argument("--no-smooth", action="store_true",
                        help="videos and live inputs: turn off the temporal filter that steadies the alpha")
    parser.add_argument("--reconnect", type=options.reconnect, default=DEFAULT_RECONNECT, metavar="N",
                        help="stream URLs and cameras: reopen a dropped stream up to N times, {} to {} (default: "
                             "%(default)s)".format(*options.RECONNECT_RANGE))


def load_any(model: str, device: str) -> Any:
    """A predictor for -m: edge.api.load (PATH@SPEC is a foreign model fed by its preprocessing spec)."""
    from .api import load

    return load(model, device=device)


def live_inputs(inputs: Sequence[str], camera: Optional[int] = None, raw: Optional[str] = None) -> List[LiveInput]:
    """The live inputs among INPUT... and --camera; a live input must come alone."""
    size = parse_raw_size(raw)
    found = [LiveInput("camera", int(camera), "camera{}".format(camera))] if camera is not None else []
    found += [live for live in (classify(text, size) for text in inputs) if live is not None]
    files = [text for text in inputs if classify(text, size) is None]
    if found and (len(found) > 1 or files):
        raise InputError("a live input (a camera, a stream URL or -) must be the only INPUT")
    if raw is not None and not any(live.kind == "stdin-raw" for live in found):
        raise InputError("--raw WxH describes frames on stdin; give - as the INPUT")
    return found


def run_live(predictor: Any, live: LiveInput, verb: str, outdir: str, options: dict, nireq: int = 0,
             smooth: bool = True, show: bool = False, reconnect: int = DEFAULT_RECONNECT,
             max_pixels: Optional[int] = None, progress: Optional[bool] = None) -> int:
    """Apply `verb` to one live input; 0 when the run ended normally or was stopped, 1 when the stream dropped."""
    operation = make_operation(verb, **options)
    if live.kind == "stdin-image":
        return _stdin_image(predictor, operation, outdir, max_pixels)
    with StopFlag() as stop:
        sinks = _sinks(outdir, live, operation, show, stop)
        source = _source(live, reconnect, stop)
        smoother = None
        if smooth:
            from .temporal import AlphaSmoother

            smoother = AlphaSmoother()
        clock = StageClock()
        bar = Progress(None, "{} {}".format(verb, live.name), "frames", progress)
        outputs = []  # type: List[str]
        try:
            results = render_stream(predictor, source, operation.render, nireq=nireq, smoother=smoother,
                                    clock=clock, stop=stop.event)
            write_stream(results, _FpsFirst(sinks, source.fps), clock, on_frame=bar.update)
        finally:
            bar.close()
            outputs = sinks.close()
    if stop:
        echo("edgematte: {}: stopped ({})".format(live.name, stop.reason))
    echo("edgematte: {}: {}".format(live.name, clock.line()))
    for output in outputs:
        if output != "-":
            echo("edgematte: wrote {}".format(output))
    if source.error:
        kept = "; {} frame(s) kept in {}".format(clock.frames, ", ".join(outputs)) if outputs else ""
        raise InputError(source.error + kept)
    if clock.frames == 0 and not stop:
        raise InputError("{}: no frame came from this input".format(live.name))
    return 0


class _FpsFirst:
    """A sink wrapper that hands the source's frame rate to the sinks that need one."""

    def __init__(self, sinks: Sinks, fps: float) -> None:
        for sink in sinks.sinks:
            if isinstance(sink, VideoFileSink):
                sink.fps = fps
        self.write = sinks.write


def _sinks(outdir: str, live: LiveInput, operation: Any, show: bool, stop: StopFlag) -> Sinks:
    """Where the frames go: a video file / frame folder, raw frames on stdout, and a window with --show."""
    path = output_for(outdir, live, operation.has_alpha)
    sinks = []  # type: List[Any]
    if show:
        sinks.append(WindowSink("edgematte {} {}".format(operation.name, live.name), stop))
    if path is None:
        sinks.append(RawSink(stop=stop))
    elif operation.has_alpha:
        sinks.append(FrameFolderSink(path))
    else:
        sinks.append(VideoFileSink(path, 25.0))
    return Sinks(sinks)


def _source(live: LiveInput, reconnect: int, stop: StopFlag) -> Any:
    """The frame source of a live input."""
    if live.kind == "stdin-raw":
        return RawFrameSource(sys.stdin.buffer, live.target, stop)
    return CaptureSource(live, reconnect=reconnect, stop=stop)


def _stdin_image(predictor: Any, operation: Any, outdir: str, max_pixels: Optional[int]) -> int:
    """One encoded image from stdin; the product as PNG bytes on stdout (`-o -`) or OUT/stdin.png."""
    image = read_stdin_image(max_pixels=max_pixels)
    rendered = operation.render(image, predictor.predict(image))
    if outdir == "-":
        ok, data = cv2.imencode(".png", rendered)
        if not ok:
            raise InputError("stdout: cannot encode the result as PNG")
        try:
            sys.stdout.buffer.write(data.tobytes())
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            raise InputError("stdout: the reader went away before the image was written") from None
        return 0
    from pathlib import Path

    target = Path(outdir) / "stdin.png"
    if target.exists():
        raise InputError("{}: already exists; not overwriting it (pick another -o)".format(target))
    write_image(target, rendered)
    echo("edgematte: wrote {}".format(target))
    return 0


__all__ = ["live_inputs", "run_live", "DEFAULT_RECONNECT"]
