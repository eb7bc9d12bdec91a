"""The fast bokeh and replace against the exact ones, the temporal filter's flicker and lag on generated clips, the
synthetic clip's known camera path, and the overlapped pipeline's order; timings are printed, never asserted."""
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgematte.edge import clip, compose, effects
from edgematte.edge.live import StageClock, render_stream
from edgematte.edge.runtime import Predictor
from edgematte.edge.temporal import AlphaSmoother

CALIB = Path(__file__).resolve().parents[1] / "calib_data"


def _photo(width: int = 320, height: int = 240) -> np.ndarray:
    """A real photo from calib_data at a small size (a textured scene where blur differences would show)."""
    files = sorted(p for p in CALIB.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    image = cv2.imread(str(files[0]), cv2.IMREAD_COLOR)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _soft_disc(height: int, width: int, centre, radius: int) -> np.ndarray:
    alpha = np.zeros((height, width), np.float32)
    cv2.circle(alpha, (int(centre[0]), int(centre[1])), radius, 1.0, -1)
    return cv2.GaussianBlur(alpha, (0, 0), 2.0)


def _exact_bokeh(bgr: np.ndarray, alpha: np.ndarray, strength: float) -> np.ndarray:
    """The alpha-normalised bokeh at full resolution, no shortcut: the reference the fast one must look like."""
    sigma = strength / 100.0 * max(bgr.shape[:2])
    a = alpha[:, :, None]
    image, weight = bgr.astype(np.float32), 1.0 - a
    blur = lambda x: cv2.GaussianBlur(x, (0, 0), sigma, borderType=cv2.BORDER_REFLECT).reshape(x.shape)  # noqa
    numerator, denominator, plain = blur(image * weight), blur(weight), blur(image)
    background = np.where(denominator > 1e-3, numerator / np.maximum(denominator, 1e-3), plain)
    return compose.composite(bgr, alpha, background)


@pytest.mark.parametrize("strength", [1.0, 3.0, 8.0])
def test_fast_bokeh_looks_like_the_exact_one(strength: float) -> None:
    image = _photo()
    alpha = _soft_disc(240, 320, (160, 130), 70)
    image[alpha > 0.5] = (250, 250, 250)  # a bright subject: any bleeding into the background would show
    exact, fast = _exact_bokeh(image, alpha, strength), effects.blur(image, alpha, strength)
    diff = np.abs(exact.astype(np.int16) - fast.astype(np.int16))
    inside = alpha > 0.99
    print("strength {}: mean |diff| {:.3f}, p99 {:.0f}, max {}".format(strength, diff.mean(),
                                                                     np.percentile(diff, 99), diff.max()))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 6 and diff.max() <= 12
    assert diff[inside].max() <= 1  # the subject stays sharp: only rounding differs there
    plain = cv2.GaussianBlur(image, (0, 0), strength / 100.0 * 320)  # a bokeh that lets the subject bleed differs
    assert np.abs(compose.composite(image, alpha, plain).astype(np.int16) - exact).mean() > 2 * diff.mean()


def test_fast_bokeh_is_faster_than_the_exact_one() -> None:
    image = cv2.resize(_photo(), (640, 480))
    alpha = _soft_disc(480, 640, (320, 260), 150)
    for name, fn in (("exact", lambda: _exact_bokeh(image, alpha, 3.0)), ("compose.blur", lambda: compose.blur(
            image, alpha, 3.0)), ("effects.blur", lambda: effects.blur(image, alpha, 3.0))):
        times = []
        for _ in range(5):
            began = time.perf_counter()
            fn()
            times.append(time.perf_counter() - began)
        print("640x480 {}: median {:.1f} ms".format(name, 1000 * float(np.median(times))))


def test_replace_matches_compose_with_a_colour_and_an_image() -> None:
    image = _photo()
    alpha = _soft_disc(240, 320, (160, 130), 70)
    plate = cv2.flip(_photo(500, 300), 1)
    for background in ((10, 200, 30), plate):
        fast = effects.Replacer(background)(image, alpha)
        exact = compose.replace(image, alpha, background)
        assert np.abs(fast.astype(np.int16) - exact).max() <= 1
    trimap = np.dstack([1 - alpha, np.zeros_like(alpha), alpha])  # trimap probabilities are taken as fg + unknown/2
    assert np.abs(effects.Replacer((0, 0, 0))(image, trimap).astype(np.int16)
                  - compose.replace(image, trimap, (0, 0, 0))).max() <= 1


# -- the temporal filter ------------------------------------------------------------------------
def _moving_scene(frames: int, speed: float, size=(240, 180), seed: int = 0):
    """A textured disc moving over a textured wall: (frame, true alpha, flickering 'model' alpha) per frame."""
    width, height = size
    rng = np.random.default_rng(seed)
    wall = cv2.GaussianBlur((150 + rng.random((height, width, 3)) * 100).astype(np.uint8), (0, 0), 2)
    skin = cv2.GaussianBlur((rng.random((height, width, 3)) * 120).astype(np.uint8), (0, 0), 1.5)
    for t in range(frames):
        x = 50 + speed * t
        truth = _soft_disc(height, width, (x, height / 2), 40)
        frame = wall.copy()
        moved = np.roll(skin, int(round(speed * t)), axis=1)
        frame[truth > 0.5] = moved[truth > 0.5]
        blobs = cv2.GaussianBlur((rng.random((height, width)) > 0.5).astype(np.float32), (0, 0), 5)
        model = np.clip(truth + rng.normal(0, 0.25) * (blobs - 0.5) * 2 + rng.normal(0, 0.05, truth.shape), 0, 1)
        yield frame, truth, model.astype(np.float32)


def _flicker_and_iou(alphas, truths):
    flicker = float(np.mean([np.abs(a - b).mean() for a, b in zip(alphas[1:], alphas[:-1])]))
    truth_change = float(np.mean([np.abs(a - b).mean() for a, b in zip(truths[1:], truths[:-1])]))
    iou = float(np.mean([((a >= 0.5) & (t >= 0.5)).sum() / ((a >= 0.5) | (t >= 0.5)).sum()
                         for a, t in zip(alphas, truths)]))
    return flicker - truth_change, iou


def test_smoothing_removes_flicker_on_a_still_scene() -> None:
    scene = list(_moving_scene(30, 0.0))
    smoother = AlphaSmoother()
    smoothed = [smoother(frame, model) for frame, _, model in scene]
    raw = [model for _, _, model in scene]
    truths = [truth for _, truth, _ in scene]
    raw_flicker, raw_iou = _flicker_and_iou(raw, truths)
    smooth_flicker, smooth_iou = _flicker_and_iou(smoothed[5:], truths[5:])
    print("still: flicker raw {:.4f} smoothed {:.4f}".format(raw_flicker, smooth_flicker))
    assert smooth_flicker < 0.35 * raw_flicker
    assert smooth_iou >= raw_iou - 0.005


@pytest.mark.parametrize("speed", [3.0, 8.0])
def test_smoothing_does_not_lag_a_moving_subject(speed: float) -> None:
    scene = list(_moving_scene(24, speed))
    smoother = AlphaSmoother()
    smoothed = [smoother(frame, model) for frame, _, model in scene][4:]
    raw = [model for _, _, model in scene][4:]
    truths = [truth for _, truth, _ in scene][4:]
    raw_flicker, raw_iou = _flicker_and_iou(raw, truths)
    smooth_flicker, smooth_iou = _flicker_and_iou(smoothed, truths)
    print("speed {}: IoU raw {:.4f} smoothed {:.4f}; flicker raw {:.4f} smoothed {:.4f}".format(
        speed, raw_iou, smooth_iou, raw_flicker, smooth_flicker))
    assert smooth_iou >= raw_iou - 0.01  # a lagging alpha would trail the disc and lose IoU
    assert smooth_flicker < 0.6 * raw_flicker
    # the same filter without motion compensation (plain exponential smoothing) does lag
    ema, lagged = None, []
    for frame, _, model in scene:
        ema = model if ema is None else 0.1 * model + 0.9 * ema
        lagged.append(ema)
    assert _flicker_and_iou(lagged[4:], truths)[1] < smooth_iou - 0.02


def test_smoother_restarts_on_a_new_frame_size() -> None:
    smoother = AlphaSmoother()
    a = np.full((20, 30), 0.2, np.float32)
    smoother(np.zeros((20, 30, 3), np.uint8), a)
    b = np.full((10, 12), 0.9, np.float32)
    assert np.array_equal(smoother(np.zeros((10, 12, 3), np.uint8), b), b)


# -- synthetic clips and the flicker metric ----------------------------------------------------
def test_clip_path_warps_the_truth_onto_the_next_frame() -> None:
    image = _photo(400, 300)
    mask = _soft_disc(300, 400, (200, 150), 90)
    frames = list(clip.iter_clip(image, mask, frames=20, size=(160, 120), noise=0))
    changes, residuals = [], []
    for (_, gt0, m0), (_, gt1, m1) in zip(frames, frames[1:]):
        warped, valid = clip.step_warp(gt0, m0, m1)
        residuals.append(np.abs(gt1 - warped)[valid].mean())
        changes.append(np.abs(gt1 - gt0).mean())
    assert np.mean(changes) > 0.002  # the camera moves
    assert np.mean(residuals) < 0.25 * np.mean(changes)  # and the known path explains the motion


class _FlickeringTruth(Predictor):
    """A 'model' that returns a mask of the bright subject with per-frame noise (for the flicker report)."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(3)

    def predict(self, bgr: np.ndarray) -> np.ndarray:
        subject = (cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) > 128).astype(np.float32)
        return np.clip(subject + self.rng.normal(0, 0.2) * cv2.GaussianBlur(
            (self.rng.random(subject.shape) > 0.5).astype(np.float32), (0, 0), 4), 0, 1)


def test_flicker_report_ranks_raw_above_smoothed_above_truth() -> None:
    image = np.full((300, 400, 3), 40, np.uint8)
    cv2.circle(image, (200, 150), 80, (230, 230, 230), -1)
    image = cv2.add(image, (np.random.default_rng(0).random((300, 400, 3)) * 20).astype(np.uint8))
    mask = (cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) > 128).astype(np.float32)
    scores = {name: s.summary() for name, s in clip.score_clip(_FlickeringTruth(), image, mask, frames=16,
                                                              size=(160, 120)).items()}
    print(scores)
    assert scores["ground truth"]["flicker"] < 0.01 and scores["ground truth"]["iou"] == 1.0
    assert scores["raw"]["flicker"] > 2 * scores["smoothed"]["flicker"]
    assert scores["smoothed"]["flicker"] > scores["ground truth"]["flicker"]
    table = clip.flicker_table({"clips": 1, "frames": 16, "size": [160, 120], "rows": scores})
    assert "ground truth" in table and "smoothed" in table


def test_clip_verb_writes_a_playable_clip_and_refuses_to_overwrite(tmp_path: Path) -> None:
    from edgematte.edge.cli import main

    image, mask = tmp_path / "p.png", tmp_path / "m.png"
    cv2.imwrite(str(image), _photo(200, 150))
    cv2.imwrite(str(mask), (_soft_disc(150, 200, (100, 75), 40) * 255).astype(np.uint8))
    out = tmp_path / "clip"
    assert main(["clip", str(image), str(mask), "-o", str(out), "--frames", "6", "--size", "96x64"]) == 0
    capture = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6 and int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == 96
    assert len(list((out / "masks").glob("*.png"))) == 6 and (out / "path.json").is_file()
    assert main(["clip", str(image), str(mask), "-o", str(out)]) == 1


# -- the overlapped pipeline --------------------------------------------------------------------
class _SlowIdentity(Predictor):
    """Alpha = the frame's first channel / 255, a little slow, so that order and overlap matter."""

    def predict(self, bgr: np.ndarray) -> np.ndarray:
        time.sleep(0.002)
        return bgr[:, :, 0].astype(np.float32) / 255.0


def test_pipeline_keeps_order_and_times_every_stage() -> None:
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(40)]
    clock = StageClock()
    out = list(render_stream(_SlowIdentity(), iter(frames), lambda f, a: (int(f[0, 0, 0]), float(a[0, 0])),
                             clock=clock, workers=3))
    assert [value for value, _ in out] == list(range(40))
    assert all(abs(alpha - value / 255.0) < 1e-6 for value, alpha in out)
    assert clock.frames == 40 and {"decode", "infer", "composite"} <= set(clock.medians_ms())


def test_pipeline_reraises_a_decoder_failure() -> None:
    def broken():
        yield np.zeros((4, 4, 3), np.uint8)
        raise ValueError("bad frame")

    with pytest.raises(ValueError, match="bad frame"):
        list(render_stream(_SlowIdentity(), broken(), lambda f, a: a))


def test_large_frames_are_smoothed_on_a_smaller_copy_at_full_size() -> None:
    rng = np.random.default_rng(1)
    frame = cv2.GaussianBlur((rng.random((720, 1280, 3)) * 255).astype(np.uint8), (0, 0), 3)
    truth = _soft_disc(720, 1280, (640, 360), 200)
    smoother = AlphaSmoother()
    outs = [smoother(frame, np.clip(truth + rng.normal(0, 0.2), 0, 1).astype(np.float32)) for _ in range(8)]
    assert all(o.shape == (720, 1280) and o.dtype == np.float32 for o in outs)
    raw_step = 0.2  # the per-frame offset's scale: smoothed frames must move far less than that
    assert np.abs(outs[-1] - outs[-2]).mean() < 0.3 * raw_step * 0.8
    assert ((outs[-1] >= 0.5) == (truth >= 0.5)).mean() > 0.99  # the edge stays where it is
