"""Ranges of the numeric command-line options, in one place: argparse type functions that refuse NaN, infinities and
values outside a documented range with one line naming the option and the range."""
from __future__ import annotations

import argparse
import math
import sys
from typing import Callable, NoReturn, Optional

from .errors import EdgematteError

# The ranges, documented in README.md (Reliability) and in each option's --help.
MAX_PIXELS_RANGE = (1, 1 << 30)  # OpenCV's own decoder ceiling is 2**30 pixels
NIREQ_RANGE = (0, 32)  # 0: the device's optimal number; each request holds one decoded image
STRENGTH_RANGE = (0.0, 100.0)  # blur sigma in percent of the longer side; 100 already blurs to a flat colour
FPS_RANGE = (0.1, 1000.0)  # frame rates a container can carry
NITER_RANGE = (1, 1000000)
TIME_RANGE = (0.0, 86400.0)  # seconds; 0: run --niter rounds
THREADS_RANGE = (0, 1024)  # 0: the backend's default
PERCENTILE_RANGE = (1, 100)
COUNT_RANGE = (1, 1 << 31)  # --limit and other counts of items
FRAMES_RANGE = (1, 100000)  # frames of a synthetic clip or of a video measured (an hour at 25 fps is 90000)
CAMERA_RANGE = (0, 63)  # /dev/video0 .. /dev/video63
RECONNECT_RANGE = (0, 1000)


def _number(text: str, kind: str) -> float:
    """`text` as a finite float, or an ArgumentTypeError (argparse names the option in front of it)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError("expects {}, got {!r}".format(kind, text)) from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError("expects {}, got {}".format(kind, text.strip()))
    return value


def int_range(option: str, low: int, high: int, meaning: str = "") -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] ("5e7" is read as 50000000); `meaning` explains the range."""
    kind = "an integer from {} to {}{}".format(low, high, " ({})".format(meaning) if meaning else "")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            number = _number(text, kind)
            if number != int(number):
                raise argparse.ArgumentTypeError("expects {}, got {}".format(kind, text.strip())) from None
            value = int(number)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError("expects {}, got {}".format(kind, value))
        return value

    parse.__name__ = option.lstrip("-").replace("-", "_")  # argparse names the type in some messages
    return parse


def float_range(option: str, low: float, high: float, meaning: str = "") -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high]; `meaning` explains the range."""
    kind = "a number from {:g} to {:g}{}".format(low, high, " ({})".format(meaning) if meaning else "")

    def parse(text: str) -> float:
        value = _number(text, kind)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError("expects {}, got {:g}".format(kind, value))
        return value

    parse.__name__ = option.lstrip("-").replace("-", "_")
    return parse


max_pixels = int_range("--max-pixels", *MAX_PIXELS_RANGE, meaning="pixels per image or video frame")
nireq = int_range("--nireq", *NIREQ_RANGE, meaning="0: the device's optimal number")
strength = float_range("--strength", *STRENGTH_RANGE, meaning="percent of the image's longer side")
fps = float_range("--fps", *FPS_RANGE, meaning="frames per second")
niter = int_range("--niter", *NITER_RANGE)
seconds = float_range("--time", *TIME_RANGE, meaning="seconds; 0: run --niter rounds")
threads = int_range("--threads", *THREADS_RANGE, meaning="0: the backend's default")
percentile = int_range("--percentile", *PERCENTILE_RANGE)
count = int_range("--limit", *COUNT_RANGE)
frames = int_range("--frames", *FRAMES_RANGE)
camera = int_range("--camera", *CAMERA_RANGE, meaning="the N of /dev/videoN")
reconnect = int_range("--reconnect", *RECONNECT_RANGE)


def check_range(option: str, value: float, low: float, high: float) -> float:
    """`value` when finite and in [low, high]; else an EdgematteError naming `option` (for API callers)."""
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)
                                       and low <= value <= high):
        raise EdgematteError("{} must be a number from {:g} to {:g}, got {!r}".format(option, low, high, value))
    return value


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr ("edgematte blur: error: ... (see --help)"), exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print the error on one line (no usage block) and exit with status 2, as argparse does."""
        line = " ".join(str(message).split())
        self.exit(2, "{}: error: {} (see {} --help)\n".format(self.prog, line, self.prog))

    def exit(self, status: int = 0, message: Optional[str] = None) -> NoReturn:
        """As argparse's, kept for type checkers."""
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)


__all__ = ["int_range", "float_range", "check_range", "OneLineParser", "max_pixels", "nireq", "strength", "fps",
           "niter", "seconds", "threads", "percentile", "count", "frames", "camera", "reconnect", "FRAMES_RANGE",
           "CAMERA_RANGE", "RECONNECT_RANGE", "MAX_PIXELS_RANGE", "NIREQ_RANGE",
           "STRENGTH_RANGE", "FPS_RANGE", "NITER_RANGE", "TIME_RANGE", "THREADS_RANGE", "PERCENTILE_RANGE",
           "COUNT_RANGE"]
