"""Synthetic camera clips from a still image and its mask (a slow pan and zoom along a known path), and the flicker
metric on them: mean |alpha_t - warp(alpha_t-1)| with the warp taken from the known camera motion, beside IoU per
frame, for a model with and without temporal smoothing and for the ground truth itself."""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .errors import InputError
from .verbs import add_verb

DEFAULT_FRAMES = 250  # 10 s at 25 fps
DEFAULT_SIZE = (640, 480)  # width, height
PAN = 0.12  # horizontal pan over the clip, as a share of the frame width
ZOOM = 1.2  # zoom at the end of the clip (1 at the start)
NOISE = 2.0  # sensor-like Gaussian noise (gray levels) added to each frame, seeded


def camera_path(frames: int, image_size: Tuple[int, int], size: Tuple[int, int] = DEFAULT_SIZE) -> List[np.ndarray]:
    """2x3 matrices mapping frame pixels to image pixels: the frame covers the image, then pans and zooms in."""
    iw, ih = image_size
    w, h = size
    cover = max(w / float(iw), h / float(ih)) * 1.15  # a margin for the pan
    matrices = []
    for t in range(frames):
        s = 0.5 - 0.5 * np.cos(np.pi * t / max(1, frames - 1))  # eased 0..1
        scale = cover * (1.0 + (ZOOM - 1.0) * s)  # image pixels -> frame pixels
        cx = iw / 2.0 + (s - 0.5) * PAN * w / cover
        cy = ih / 2.0 - (s - 0.5) * 0.03 * h / cover
        inverse = 1.0 / scale
        matrices.append(np.array([[inverse, 0.0, cx - inverse * w / 2.0],
                                  [0.0, inverse, cy - inverse * h / 2.0]], np.float64))
    return matrices


def render_frame(image: np.ndarray, matrix: np.ndarray, size: Tuple[int, int], interpolation: int) -> np.ndarray:
    """The frame the camera sees: image sampled at matrix @ (x, y, 1) for every frame pixel."""
    return cv2.warpAffine(image, matrix, size, flags=interpolation | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def iter_clip(image: np.ndarray, mask: np.ndarray, frames: int = DEFAULT_FRAMES, size: Tuple[int, int] = DEFAULT_SIZE,
              noise: float = NOISE, seed: int = 0) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(frame BGR uint8, ground-truth alpha float32, matrix) for each frame of the clip."""
    rng = np.random.default_rng(seed)
    gt = mask.astype(np.float32)
    for matrix in camera_path(frames, (image.shape[1], image.shape[0]), size):
        frame = render_frame(image, matrix, size, cv2.INTER_LINEAR)
        if noise > 0:
            frame = np.clip(frame + rng.normal(0.0, noise, frame.shape), 0, 255).astype(np.uint8)
        yield frame, render_frame(gt, matrix, size, cv2.INTER_LINEAR), matrix


def step_warp(previous: np.ndarray, matrix_prev: np.ndarray, matrix_now: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The previous frame's alpha moved onto the current frame by the known camera motion, and where it is valid."""
    h, w = previous.shape[:2]
    full = lambda m: np.vstack([m, [0.0, 0.0, 1.0]])  # noqa: E731
    step = (np.linalg.inv(full(matrix_prev)) @ full(matrix_now))[:2]  # now-frame pixel -> previous-frame pixel
    warped = cv2.warpAffine(previous, step, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
    valid = warped >= 0
    return warped, valid


@dataclass
class FlickerScore:
    """Per-frame flicker (warped), plain change and IoU of one alpha sequence."""

    flicker: List[float] = field(default_factory=list)
    change: List[float] = field(default_factory=list)
    iou: List[float] = field(default_factory=list)

    def add(self, alpha: np.ndarray, gt: np.ndarray, previous: Optional[Tuple[np.ndarray, np.ndarray]],
            matrix: np.ndarray) -> None:
        """Score one frame against the ground truth and the previous frame (alpha, matrix)."""
        a = np.clip(np.asarray(alpha, np.float32), 0.0, 1.0)
        if a.ndim == 3:
            a = a[:, :, 2] + 0.5 * a[:, :, 1] if a.shape[2] == 3 else a[:, :, 0]
        fg, truth = a >= 0.5, gt >= 0.5
        union = np.logical_or(fg, truth).sum()
        self.iou.append(float(np.logical_and(fg, truth).sum() / union) if union else 1.0)
        if previous is not None:
            warped, valid = step_warp(previous[0], previous[1], matrix)
            self.flicker.append(float(np.abs(a - warped)[valid].mean()))
            self.change.append(float(np.abs(a - previous[0]).mean()))
        self._last = a

    def summary(self) -> Dict[str, float]:
        """Means over the frames (and the worst IoU)."""
        return {"flicker": statistics.fmean(self.flicker) if self.flicker else 0.0,
                "change": statistics.fmean(self.change) if self.change else 0.0,
                "iou": statistics.fmean(self.iou) if self.iou else 0.0,
                "min_iou": min(self.iou) if self.iou else 0.0}


def score_clip(predictor: Any, image: np.ndarray, mask: np.ndarray, frames: int = DEFAULT_FRAMES,
               size: Tuple[int, int] = DEFAULT_SIZE, seed: int = 0, nireq: int = 0) -> Dict[str, FlickerScore]:
    """Scores of the ground truth, the model's raw alpha and its smoothed alpha on one synthetic clip."""
    from .temporal import AlphaSmoother

    clip = list(iter_clip(image, mask, frames, size, seed=seed))
    scores = {"ground truth": FlickerScore(), "raw": FlickerScore(), "smoothed": FlickerScore()}
    smoother = AlphaSmoother()
    previous = {}  # type: Dict[str, Tuple[np.ndarray, np.ndarray]]
    alphas = predictor.predict_many((frame for frame, _, _ in clip), nireq=nireq)
    for (frame, gt, matrix), alpha in zip(clip, alphas):
        for name, value in (("ground truth", gt), ("raw", alpha), ("smoothed", smoother(frame, alpha))):
            scores[name].add(value, gt, previous.get(name), matrix)
            previous[name] = (scores[name]._last, matrix)
    return scores


def flicker_report(predictor: Any, pairs: Sequence[Any], frames: int = DEFAULT_FRAMES,
                   size: Tuple[int, int] = DEFAULT_SIZE, progress: Optional[bool] = None) -> Dict[str, Any]:
    """Mean flicker, change and IoU over one synthetic clip per (image, mask) pair."""
    from .datasets import read_pair
    from .progress import Progress

    totals = {}  # type: Dict[str, List[Dict[str, float]]]
    bar = Progress(len(pairs), "flicker", "clips", progress)
    try:
        for index, pair in enumerate(pairs):
            image, mask = read_pair(pair)
            for name, score in score_clip(predictor, image, mask, frames, size, seed=index).items():
                totals.setdefault(name, []).append(score.summary())
            bar.update()
    finally:
        bar.close()
    rows = {name: {key: statistics.fmean(s[key] for s in runs) for key in runs[0]} for name, runs in totals.items()}
    if "min_iou" in rows.get("raw", {}):
        for name, runs in totals.items():
            rows[name]["min_iou"] = min(s["min_iou"] for s in runs)
    return {"clips": len(pairs), "frames": frames, "size": list(size), "rows": rows}


def flicker_table(report: Dict[str, Any]) -> str:
    """The report as a small text table, flicker also as a multiple of the ground truth's."""
    gt = report["rows"]["ground truth"]
    lines = ["flicker on {} synthetic clip(s), {} frames at {}x{} (slow pan + zoom, known camera path)".format(
        report["clips"], report["frames"], *report["size"]),
        "{:<14} {:>9} {:>8} {:>9} {:>8} {:>9} {:>8}".format("alpha", "flicker", "x gt", "change", "x gt",
                                                           "mean IoU", "min IoU")]
    for name in ("ground truth", "raw", "smoothed"):
        row = report["rows"][name]
        lines.append("{:<14} {:>9.4f} {:>8.2f} {:>9.4f} {:>8.2f} {:>9.3f} {:>8.3f}".format(
            name, row["flicker"], row["flicker"] / max(gt["flicker"], 1e-9), row["change"],
            row["change"] / max(gt["change"], 1e-9), row["iou"], row["min_iou"]))
    lines.append("flicker = mean |alpha_t - warp(alpha_t-1)| (warp by the known camera motion); change = mean "
                 "|alpha_t - alpha_t-1|")
    return "\n".join(lines)


# -- the `edgematte clip` verb ----------------------------------------------------------------------
def parse_size(text: str) -> Tuple[int, int]:
    """(width, height) from WxH."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) >= 16 for p in parts):
        raise InputError("--size: expected WxH with sides of at least 16 (e.g. 640x480), got {!r}".format(text))
    return int(parts[0]), int(parts[1])


def write_clip(image_path: str, mask_path: str, outdir: str, frames: int = DEFAULT_FRAMES,
               size: Tuple[int, int] = DEFAULT_SIZE, fps: float = 25.0, noise: float = NOISE) -> Path:
    """Write OUT/clip.mp4, OUT/masks/NNNNNN.png and OUT/path.json (the camera matrices); returns OUT."""
    from .io import VideoWriter, atomic_dir, read_image, read_mask, write_image, write_text

    if frames < 2:
        raise InputError("--frames: a clip needs at least 2 frames, got {}".format(frames))
    out = Path(outdir)
    if out.exists():
        raise InputError("{}: already exists; not overwriting it (pick another -o)".format(out))
    image, mask = read_image(image_path), read_mask(mask_path)
    if mask.shape[:2] != image.shape[:2]:
        mask = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    matrices = []
    with atomic_dir(out) as folder:
        with VideoWriter(Path(folder) / "clip.mp4", fps, size) as writer:
            for index, (frame, gt, matrix) in enumerate(iter_clip(image, mask, frames, size, noise)):
                writer.write(frame)
                write_image(Path(folder) / "masks" / "{:06d}.png".format(index),
                            (np.clip(gt, 0, 1) * 255 + 0.5).astype(np.uint8))
                matrices.append(matrix.tolist())
        write_text(Path(folder) / "path.json", json.dumps({"image": str(image_path), "mask": str(mask_path),
                                                           "fps": fps, "size": list(size), "noise": noise,
                                                           "frame_to_image": matrices}) + "\n")
    return out


def register(subparsers: Any) -> None:
    """Add the `clip` verb."""
    parser = add_verb(subparsers, "clip",
                      description="Make a synthetic camera clip from a still image and its mask along a known path "
                                  "(slow pan and zoom, light sensor noise): OUT/clip.mp4, the moved masks in "
                                  "OUT/masks/ and the camera path in OUT/path.json.")
    parser.add_argument("image", help="the still photo the camera moves over")
    parser.add_argument("mask", help="its mask (moved along the same path: the clip's ground truth)")
    parser.add_argument("-o", "--outdir", required=True, help="new folder for the clip")
    from . import options

    parser.add_argument("--frames", type=options.frames, default=DEFAULT_FRAMES,
                        help="frames, {} to {} (default: %(default)s)".format(*options.FRAMES_RANGE))
    parser.add_argument("--size", type=parse_size, default=DEFAULT_SIZE, metavar="WxH",
                        help="frame size (default: 640x480)")
    parser.add_argument("--fps", type=options.fps, default=25.0,
                        help="frame rate, {:g} to {:g} (default: %(default)s)".format(*options.FPS_RANGE))
    parser.set_defaults(func=_run)


def _run(args: Any) -> int:
    out = write_clip(args.image, args.mask, args.outdir, args.frames, args.size, args.fps)
    print("wrote {}".format(out))
    return 0


__all__ = ["camera_path", "iter_clip", "step_warp", "FlickerScore", "score_clip", "flicker_report", "flicker_table",
           "write_clip", "register"]
