"""One progress display for every long loop of the kit: a bar on a terminal, plain periodic lines in a log or pipe.

    with Progress(total=40, desc="mask", unit="images") as bar:   # enabled=None: auto, False: off, True: forced
        for ...:
            bar.update()                    # or bar.update(1, loss="0.12"): postfix shown after the count
            bar.write("a line")             # a message that leaves the bar intact (also: edge.progress.echo)

On a terminal it is a tqdm bar (a one-line counter when tqdm is absent). Elsewhere it prints a plain line such as
"mask: 20/40 images, 3.1 s" every EDGEMATTE_PROGRESS_INTERVAL seconds (default 10) and one last line at the end
when it printed any before (always when forced), so short runs keep a log clean.
"""
import argparse
import os
import sys
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, TextIO, TypeVar

INTERVAL_ENV = "EDGEMATTE_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 10.0  # seconds between plain lines when stderr is not a terminal

T = TypeVar("T")
_ACTIVE = []  # type: List[Progress]  # open displays, innermost last; echo() writes through the innermost


def interval() -> float:
    """Seconds between plain progress lines: $EDGEMATTE_PROGRESS_INTERVAL, else DEFAULT_INTERVAL."""
    try:
        return max(0.0, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL)))
    except ValueError:
        return DEFAULT_INTERVAL


def is_terminal(stream: Any) -> bool:
    """Whether `stream` is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _tqdm() -> Optional[Callable[..., Any]]:
    try:
        from tqdm import tqdm  # type: ignore
    except ImportError:
        return None
    return tqdm


class Progress:
    """A progress display over `total` units (None: unknown); tqdm-like API: update, set_postfix, write, close."""

    def __init__(self, total: Optional[int] = None, desc: str = "", unit: str = "items",
                 enabled: Optional[bool] = None, initial: int = 0, stream: Optional[TextIO] = None,
                 every: Optional[float] = None) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.count = initial
        self.stream = stream if stream is not None else sys.stderr
        self.forced = enabled is True
        self.every = interval() if every is None else every
        self.started = self.last = time.monotonic()
        self.printed = 0
        self.postfix = {}  # type: Dict[str, Any]
        self.closed = False
        self.mode = _mode(enabled, self.stream)
        self.bar = None  # type: Any
        if self.mode == "bar":
            self.bar = _tqdm()(total=total, initial=initial, desc=desc, unit=" " + unit, leave=False,  # type: ignore
                               file=self.stream, dynamic_ncols=True, mininterval=0.5)
        _ACTIVE.append(self)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def status(self) -> str:
        """The plain line: 'desc: done/total unit, seconds s[, key=value ...]'."""
        count = "{}/{}".format(self.count, self.total) if self.total else str(self.count)
        text = "{}: {} {}, {:.1f} s".format(self.desc, count, self.unit, time.monotonic() - self.started)
        if self.postfix:
            text += ", " + " ".join("{}={}".format(k, v) for k, v in self.postfix.items())
        return text

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the count (e.g. loss=0.12); they replace the previous ones."""
        self.postfix = dict(values)
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Count `n` more units (and replace the postfix when given)."""
        self.count += n
        if postfix:
            self.set_postfix(**postfix)
        if self.mode == "bar":
            self.bar.update(n)
        elif self.mode == "counter":
            self.stream.write("\r" + self.status())
            self.stream.flush()
        elif self.mode == "lines" and time.monotonic() - self.last >= self.every:
            self._line(self.status())

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
        self.last = time.monotonic()
        self.printed += 1

    def write(self, line: str) -> None:
        """Print one message line without breaking the display."""
        if self.mode == "bar":
            self.bar.write(line, file=self.stream)
        elif self.mode == "counter":
            self.stream.write("\r\x1b[K" + line + "\n" + self.status())
            self.stream.flush()
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """End the display: the bar goes, a counter ends its line, plain lines end with a last one when due."""
        if self.closed:
            return
        self.closed = True
        if self in _ACTIVE:
            _ACTIVE.remove(self)
        if self.mode == "bar":
            self.bar.close()
        elif self.mode == "counter":
            self.stream.write("\n")
            self.stream.flush()
        elif self.mode == "lines" and (self.printed or self.forced):
            self._line(self.status() + ", done")


def _mode(enabled: Optional[bool], stream: Any) -> str:
    """off (disabled), bar (terminal with tqdm), counter (terminal without tqdm) or lines (log, pipe, file)."""
    if enabled is False:
        return "off"
    if not is_terminal(stream):
        return "lines"
    return "bar" if _tqdm() is not None else "counter"


def progress_iter(items: Iterable[T], total: Optional[int] = None, desc: str = "", unit: str = "items",
                  enabled: Optional[bool] = None) -> Iterator[T]:
    """Yield `items`, counting each one on a Progress display that closes when the loop ends."""
    with Progress(total, desc, unit, enabled) as bar:
        for item in items:
            yield item
            bar.update()


def echo(line: str) -> None:
    """One stderr line, written through the innermost open display so that a bar stays intact."""
    if _ACTIVE:
        _ACTIVE[-1].write(line)
    else:
        print(line, file=sys.stderr, flush=True)


def add_progress_args(parser: argparse.ArgumentParser) -> None:
    """--progress / --no-progress into args.progress (None: auto)."""
    parser.add_argument("--progress", dest="progress", action="store_true", default=None,
                        help="show progress even for short runs (default: a bar on a terminal; in a log or pipe "
                             "a plain line every {:g} s, ${})".format(DEFAULT_INTERVAL, INTERVAL_ENV))
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress")


__all__ = ["Progress", "progress_iter", "echo", "add_progress_args", "interval", "is_terminal", "INTERVAL_ENV",
           "DEFAULT_INTERVAL"]
