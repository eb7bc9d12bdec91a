"""The `edgematte` command: a thin argparse shell over the Python API; verbs come from the `edgematte.commands` entry points."""
import argparse
import os
import sys
from typing import Any, Callable, List, Optional

from .errors import EdgematteError
from .outputs import Stopped, stop_on_signals
from .startup import INTERRUPTED, end_startup

COMMAND_GROUP = "edgematte.commands"


def iter_entry_points(group: str) -> List[Any]:
    """Entry points of `group` under Python 3.8 (dict API) and 3.10+ (select API)."""
    from importlib import metadata

    eps = metadata.entry_points()
    if hasattr(eps, "select"):
        return list(eps.select(group=group))
    return list(eps.get(group, []))  # type: ignore[union-attr]


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every verb whose package is installed."""
    from .options import OneLineParser  # one-line usage errors, for every verb's parser too

    parser = OneLineParser(
        prog="edgematte",
        description="Foreground segmentation and portrait matting on edge devices (OpenVINO).",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for unexpected errors")
    parser.add_argument("--version", action="version", version="edgematte " + _version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    seen = set()
    for ep in sorted(iter_entry_points(COMMAND_GROUP), key=lambda e: e.name):
        if ep.name in seen:  # an editable and a regular install can both list the same entry point
            continue
        seen.add(ep.name)
        try:
            register: Callable[[Any], None] = ep.load()
        except ImportError:
            # The verb's package or its extra (torch, nncf, ...) is not installed: leave the verb out.
            if os.environ.get("EDGEMATTE_DEBUG"):
                raise
            continue
        register(sub)
    return parser


def _version() -> str:
    try:
        from importlib import metadata

        return metadata.version("edgematte")
    except Exception:  # noqa: BLE001 - running from a source tree without metadata
        return "unknown"


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the console script: run a verb, print user errors on one line, never a traceback."""
    try:  # Ctrl-C while verbs are discovered (~1 s: their modules import) is one line too
        end_startup()
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("edgematte: interrupted", file=sys.stderr)
        return INTERRUPTED
    try:
        with stop_on_signals():  # SIGTERM/SIGHUP unwind like Ctrl-C: temporaries are removed on the way out
            code = args.func(args)
    except EdgematteError as exc:
        print("edgematte: error: {}".format(exc), file=sys.stderr)
        return exc.exit_code
    except Stopped as exc:
        print("edgematte: stopped by {}".format(exc.name), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edgematte: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a bug of ours: one line, traceback only with --debug
        if args.debug:
            raise
        print("edgematte: internal error: {}: {} (run with --debug for the traceback)".format(
            type(exc).__name__, exc), file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
