"""Saving a model file: a full disk or a failed write becomes one line naming the path, not an iostream error."""
from __future__ import annotations

import contextlib
import errno
import os
from typing import Any, Iterator

from .errors import EdgematteError

# What OpenVINO's C++ writer raises when a write fails: std::ios_base::failure, surfaced as RuntimeError.
_STREAM_FAILURES = ("iostream error", "basic_ios", "failed to write", "cannot write", "no space left")


class SaveError(EdgematteError):
    """A model file could not be written (no space left on device, quota, permissions, I/O error)."""

    def __init__(self, path: str, what: str, reason: str) -> None:
        super().__init__("{}: cannot save {}: {}".format(path, what, reason))
        self.path, self.what, self.reason = path, what, reason


def _reason(exc: BaseException) -> str:
    """The user-facing reason for a failed write."""
    code = getattr(exc, "errno", None)
    if code == errno.ENOSPC:
        return "no space left on device"
    if code == getattr(errno, "EDQUOT", -1):
        return "disk quota exceeded"
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc) or type(exc).__name__).strip().lower()
    return "the write failed (no space left on device, or an I/O error)"


def is_write_failure(exc: BaseException) -> bool:
    """True for an OSError, or a RuntimeError that is OpenVINO's stream failure while writing a file."""
    if isinstance(exc, OSError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(marker in text for marker in _STREAM_FAILURES)


@contextlib.contextmanager
def saving(path: Any, what: str = "the model") -> Iterator[None]:
    """Run a save; a write failure inside becomes SaveError("PATH: cannot save WHAT: REASON") on one line.

    Nested, the outermost wins: a save staged under a temporary name reports the name the user asked for.
    """
    try:
        yield
    except SaveError as exc:
        raise SaveError(os.fspath(path), what, exc.reason) from None
    except (OSError, RuntimeError) as exc:
        if not is_write_failure(exc):
            raise
        raise SaveError(os.fspath(path), what, _reason(exc)) from None


@contextlib.contextmanager
def staged_in(stage: Any, final: Any) -> Iterator[None]:
    """Saves into a staging folder that becomes `final`: their SaveErrors name the path under `final` instead."""
    try:
        yield
    except SaveError as exc:
        stage_text, where = os.fspath(stage), exc.path
        if where == stage_text or where.startswith(stage_text.rstrip(os.sep) + os.sep):
            where = os.path.join(os.fspath(final), os.path.relpath(where, stage_text))
        raise SaveError(os.path.normpath(where), exc.what, exc.reason) from None
