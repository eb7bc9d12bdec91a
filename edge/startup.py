"""Ctrl-C while the `edgematte` command is still starting (imports, verb discovery): one line and exit 130."""
from __future__ import annotations

import os
import signal
import sys

INTERRUPTED = 130  # the shell's code for a run ended by SIGINT
COMMAND = "edgematte"


def _interrupted_while_starting(signum: int, frame: object) -> None:
    """SIGINT before main() took over: say so on one line and exit at once.

    Nothing has been written yet, so there is nothing to clean up; an exception raised here could land inside
    importlib's own callbacks, which swallow it ("Exception ignored in ...") and the start would go on.
    """
    try:
        sys.stderr.write("{}: interrupted\n".format(COMMAND))
        sys.stderr.flush()
    finally:
        os._exit(INTERRUPTED)


def is_console_command() -> bool:
    """True when this process is the `edgematte` console script (not a program importing the package)."""
    argv0 = sys.argv[0] if getattr(sys, "argv", None) else ""
    return os.path.splitext(os.path.basename(argv0))[0] == COMMAND


def guard_startup() -> None:
    """Install the startup SIGINT handler, in the console command only and only over Python's default handler."""
    if not is_console_command():
        return
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _interrupted_while_starting)
    except (ValueError, AttributeError):  # not the main thread, or a platform without SIGINT
        pass


def end_startup() -> None:
    """Give SIGINT back to Python's default handler (KeyboardInterrupt), which main() turns into exit 130."""
    try:
        if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    except (ValueError, AttributeError):
        pass


guard_startup()
