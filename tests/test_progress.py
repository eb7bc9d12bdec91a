"""The one progress display: a bar or counter on a terminal, plain periodic lines in a log or pipe."""
import io
import sys

import pytest

from edgematte.edge import progress
from edgematte.edge.progress import Progress, echo, progress_iter


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_log_gets_plain_periodic_lines_and_a_last_one():
    log = io.StringIO()
    with Progress(total=4, desc="mask", unit="images", stream=log, every=0.0) as bar:
        for _ in range(4):
            bar.update()
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("mask: 1/4 images, ") and lines[0].endswith(" s")
    assert lines[-1].startswith("mask: 4/4 images, ") and lines[-1].endswith(", done") and len(lines) == 5
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()


def test_short_run_in_a_log_stays_quiet_unless_forced():
    log = io.StringIO()
    with Progress(total=3, desc="eval", stream=log, every=60.0) as bar:
        bar.update(3)
    assert log.getvalue() == ""
    with Progress(total=3, desc="eval", unit="images", stream=log, every=60.0, enabled=True) as bar:
        bar.update(3)
    assert log.getvalue().startswith("eval: 3/3 images, ") and log.getvalue().count("\n") == 1
    with Progress(total=3, desc="eval", stream=log, every=0.0, enabled=False) as bar:
        bar.update(3)
    assert log.getvalue().count("\n") == 1


def test_postfix_unknown_total_and_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv(progress.INTERVAL_ENV, "0")
    log = io.StringIO()
    with Progress(desc="train", unit="steps", stream=log, initial=10) as bar:
        bar.update(1, loss="0.1234")
        bar.write("epoch 0: val iou 0.5")
    lines = log.getvalue().splitlines()
    assert lines[0].startswith("train: 11 steps, ") and lines[0].endswith(" s, loss=0.1234")
    assert lines[1] == "epoch 0: val iou 0.5" and lines[2].endswith("loss=0.1234, done")
    monkeypatch.setenv(progress.INTERVAL_ENV, "soon")
    assert progress.interval() == progress.DEFAULT_INTERVAL


def test_terminal_counter_without_tqdm_and_echo_through_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm -> ImportError
    tty = Terminal()
    with Progress(total=2, desc="mask", unit="images", stream=tty) as bar:
        bar.update()
        echo("edgematte: error: x.png: cannot read image")
        bar.update()
    text = tty.getvalue()
    assert "\rmask: 1/2 images" in text and "\rmask: 2/2 images" in text and text.endswith("\n")
    assert "\r\x1b[Kedgematte: error: x.png: cannot read image\n" in text


def test_terminal_bar_is_tqdm():
    pytest.importorskip("tqdm")
    tty = Terminal()
    items = list(progress_iter(range(3), total=3, desc="eval", unit="images", enabled=None))
    assert items == [0, 1, 2]
    with Progress(total=3, desc="eval", stream=tty) as bar:
        assert bar.mode == "bar"
        bar.update(3)
