"""The `edgematte` command: a thin argparse shell over the Python API; verbs are named in edge.verbs (imported when
they run) and third-party ones come from the `edgematte.commands` entry points."""
import argparse
import sys
from typing import Any, List, Optional, Sequence, Set

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


def _requested_verb(argv: Sequence[str]) -> Optional[str]:
    """The verb named on the command line: the first argument that is not a top-level option."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Optional[Sequence[str]] = None) -> argparse.ArgumentParser:
    """The parser for `argv`: only the named verb's module is imported; with no verb named, help entries for every
    verb (none imported); with argv None, every verb whose extra is installed (for API callers and tests)."""
    from .options import OneLineParser  # one-line usage errors, for every verb's parser too
    from .verbs import VERBS, extra_missing, register_function, stub_parsers

    parser = OneLineParser(
        prog="edgematte",
        description="Foreground segmentation and portrait matting on edge devices (OpenVINO).",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for unexpected errors")
    parser.add_argument("--version", action="version", version="edgematte " + _version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    plugins = {ep.name: ep for ep in iter_entry_points(COMMAND_GROUP) if ep.name not in VERBS}
    wanted = _requested_verb(argv) if argv is not None else None
    if wanted in VERBS:
        register_function(VERBS[wanted])(sub)  # MissingExtraError names the extra to install
    elif wanted in plugins:
        plugins[wanted].load()(sub)
    elif argv is not None:
        notes = {name: verb.help + (" [needs: pip install 'edgematte[{}]']".format(verb.extra)
                                    if extra_missing(verb) else "") for name, verb in VERBS.items()}
        notes.update({name: "(plugin {})".format(ep.value) for name, ep in sorted(plugins.items())})
        stub_parsers(sub, notes)
    else:
        registered = set()  # type: Set[str]
        for verb in VERBS.values():
            if verb.module in registered or extra_missing(verb):
                continue
            registered.add(verb.module)
            register_function(verb)(sub)
        for ep in plugins.values():
            ep.load()(sub)
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
        argv = sys.argv[1:] if argv is None else list(argv)
        parser = build_parser(argv)
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("edgematte: interrupted", file=sys.stderr)
        return INTERRUPTED
    except EdgematteError as exc:  # the verb's extra is not installed
        print("edgematte: error: {}".format(exc), file=sys.stderr)
        return exc.exit_code
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
