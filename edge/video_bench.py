"""`edgematte bench MODEL --video CLIP`: inference-only fps beside end-to-end fps (decode, infer, smooth, composite,
encode, overlapped as the effect verbs run them) for mask, blur and replace, with and without smoothing."""
from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .errors import InputError
from .io import VideoReader
from .live import STAGES, StageClock, render_stream, write_stream
from .sources import VideoFileSink

OPERATIONS = ("mask", "blur", "replace")


class _Limited:
    """The first `limit` frames of a reader."""

    def __init__(self, reader: VideoReader, limit: int) -> None:
        self.reader, self.limit = reader, limit

    def __iter__(self):
        for index, frame in enumerate(self.reader):
            if index >= self.limit:
                break
            yield frame


def measure(predictor: Any, video: str, operations: Sequence[str] = OPERATIONS, limit: int = 150,
            nireq: int = 0, rounds: int = 1) -> Dict[str, Any]:
    """fps of inference alone (frames decoded beforehand) and of each operation end to end, medians of `rounds`."""
    from .apply import make_operation
    from .temporal import AlphaSmoother

    reader = VideoReader(video)
    frames = list(_Limited(reader, limit))
    if not frames:
        raise InputError("{}: no readable frame".format(video))
    info = {"video": str(video), "frames": len(frames), "width": reader.info.width, "height": reader.info.height,
            "rows": []}  # type: Dict[str, Any]

    def infer_only() -> StageClock:
        clock = StageClock()
        for _ in render_stream(predictor, iter(frames), lambda frame, alpha: None, nireq=nireq, clock=clock):
            pass
        return clock

    infer_only()  # warm-up: the first inferences and thread pools
    rows = [("infer only", None, False)] + [(op, op, smooth) for op in operations for smooth in (True, False)]
    with tempfile.TemporaryDirectory(prefix="edgematte-bench-") as folder:
        for index, (label, op, smooth) in enumerate(rows):
            clocks = []  # type: List[StageClock]
            for round_index in range(max(1, rounds)):
                if op is None:
                    clocks.append(infer_only())
                    continue
                clock = StageClock()
                sink = VideoFileSink(Path(folder) / "{}-{}.mp4".format(index, round_index), reader.info.fps)
                try:
                    results = render_stream(predictor, _Limited(VideoReader(video), limit),
                                            make_operation(op).render, nireq=nireq, clock=clock,
                                            smoother=AlphaSmoother() if smooth else None)
                    write_stream(results, sink, clock)
                finally:
                    for output in sink.close():
                        os.unlink(output)  # our own temporary output
                clocks.append(clock)
            info["rows"].append({"operation": label, "smooth": smooth,
                                 "fps": statistics.median(c.fps() for c in clocks),
                                 "stages_ms": {s: statistics.median(c.medians_ms().get(s, 0.0) for c in clocks)
                                               for s in STAGES}})
    return info


def table(info: Dict[str, Any]) -> str:
    """Rows of fps (and as a share of inference-only fps) with each stage's median ms."""
    base = info["rows"][0]["fps"] or 1e-9
    lines = ["{} ({} frames, {}x{})".format(info["video"], info["frames"], info["width"], info["height"]),
             "{:<20} {:>6} {:>7} ".format("run", "fps", "x infer") + " ".join("{:>8}".format(s) for s in STAGES)]
    for row in info["rows"]:
        name = row["operation"] if row["operation"] == "infer only" else "{} {}".format(
            row["operation"], "smoothed" if row["smooth"] else "--no-smooth")
        lines.append("{:<20} {:>6.1f} {:>7.2f} ".format(name, row["fps"], row["fps"] / base) + " ".join(
            "{:>8.1f}".format(row["stages_ms"][s]) for s in STAGES))
    lines.append("stage columns: median ms per frame; stages overlap, so they add up to more than 1000/fps")
    return "\n".join(lines)


def run_video(args: Any, load: Optional[Any] = None) -> int:
    """The `bench --video` branch: one table per model."""
    import json

    from .io import write_text
    from .live_run import load_any

    reports = []
    for model in args.models:
        predictor = load_any(model, args.device.split(",")[0])
        info = measure(predictor, args.video, limit=args.video_frames, nireq=args.nireq)
        info["model"] = model
        print("{}:".format(model))
        print(table(info))
        reports.append(info)
    if args.json:
        write_text(args.json, json.dumps(reports, indent=1) + "\n")
    return 0


__all__ = ["measure", "table", "run_video", "OPERATIONS"]
