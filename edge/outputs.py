"""What the kit may delete or replace: only files it wrote itself and can prove so.

One module owns the rules every writer follows:
- temporary names short enough for the file system (`temp_prefix`), and final names checked (`check_name_fits`);
- output paths that are, or would overwrite, an input are refused before any work (`refuse_inputs`);
- a multi-file artifact (an export set, a dump, a video's frame folder) is built in a hidden sibling folder and
  swapped in whole (`owned_folder`); its hidden manifest lists every file with size and modification time, so a
  later run replaces only the files it can prove are the kit's and never removes one it did not list;
- SIGTERM and SIGHUP end a run the way Ctrl-C does, so every temporary is cleaned up (`stop_on_signals`).
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

from .errors import EdgematteError, InputError

PathLike = Union[str, "os.PathLike[str]"]
MANIFEST = ".edgematte-files.json"  # hidden: the list of files the kit wrote into a folder set
MANIFEST_FORMAT = "edgematte-files/1"
DEFAULT_NAME_MAX = 255  # bytes, where the file system does not say
TEMP_RANDOM = 8  # characters tempfile adds to a temporary name
Listing = Callable[[Path], Optional[Set[str]]]  # folder -> relative file paths an older kit wrote there, or None


class OutputError(EdgematteError):
    """An output path cannot be used: a file where a folder is needed, an input, or files the kit did not write."""


# -- names ------------------------------------------------------------------------------------------
def name_max(folder: PathLike) -> int:
    """The longest file name (bytes) the file system holding `folder` (or its nearest existing parent) allows."""
    where = Path(folder)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        return int(os.pathconf(str(where), "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return DEFAULT_NAME_MAX


def _cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes without splitting a character."""
    return text.encode("utf-8", "surrogateescape")[:max(limit, 0)].decode("utf-8", "ignore")


def check_name_fits(path: PathLike) -> None:
    """OutputError when the final name of `path` is longer than its file system allows."""
    target = Path(path)
    size, limit = len(os.fsencode(target.name)), name_max(target.parent)
    if size > limit:
        raise OutputError("{}: the file name is {} bytes; the file system allows {}".format(target, size, limit))


def temp_prefix(name: str, suffix: str, folder: PathLike) -> str:
    """The hidden prefix of a temporary name for `name`: ".NAME." cut so prefix, random part and `suffix` fit."""
    room = name_max(folder) - len(os.fsencode(suffix)) - TEMP_RANDOM - 2
    return "." + _cut(name, room) + "."


# -- inputs -----------------------------------------------------------------------------------------
def _real(path: PathLike) -> str:
    return os.path.realpath(os.fspath(path))


def _inside(path: str, folder: str) -> bool:
    """True when real path `path` is `folder` or lies under it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def refuse_inputs(outputs: Iterable[Tuple[PathLike, bool]], inputs: Iterable[PathLike], option: str = "-o",
                  named: bool = False) -> None:
    """OutputError (before any work) when an output is an input, or a folder output would replace one.

    `outputs`: (path, is_folder) pairs (`named`: the paths are the option's own values); `inputs`: the input
    files. Hard links count as the same file.
    """
    sources = {}  # type: Dict[str, str]
    for item in inputs:
        sources.setdefault(_real(item), os.fspath(item))
    for output, is_folder in outputs:
        real = _real(output)
        hit = sources.get(real)
        if hit is None and is_folder:
            hit = next((name for path, name in sources.items() if _inside(path, real)), None)
        if hit is None and not is_folder and os.path.isfile(real):
            hit = next((name for path, name in sources.items() if _same_file(path, real)), None)
        if hit is not None:
            how = "replace a folder holding" if is_folder and _real(hit) != real else "overwrite"
            if named:
                what = "{}: would {} {}, an input".format(_where(option, output), how, hit)
            elif _real(hit) == real:
                what = "{}: its output would overwrite it, an input".format(hit)
            else:
                what = "{}: this output would {} {}, an input".format(output, how, hit)
            raise OutputError("{}; give {} a folder apart from the inputs".format(what, option))


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_file(path: Any, option: str) -> Path:
    """The path, after checking that a file can be written there (not a folder, a folder that takes new files).

    Missing parent folders are fine (the writer creates them) as long as the nearest existing one is writable;
    writability is probed with an anonymous temporary file, which also holds for root and read-only mounts.
    """
    text = os.fspath(path)
    if not str(text).strip():
        raise InputError("{}: the path is empty".format(option))
    target = Path(text)
    if target.is_dir() or str(text).endswith(("/", os.sep)):
        raise InputError("{} {}: is a folder; give a file name".format(option, text))
    if target.exists() and not target.is_file():
        raise InputError("{} {}: is not a regular file".format(option, text))
    if target.is_file() and not os.access(str(target), os.W_OK):
        raise InputError("{} {}: the file is read-only".format(option, text))
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError("{} {}: {} is a file, not a folder".format(option, text, folder))
    try:
        with tempfile.TemporaryFile(dir=str(folder)):
            pass
    except OSError as exc:
        raise InputError("{} {}: cannot create a file in {} ({})".format(
            option, text, folder, (exc.strerror or str(exc)).lower())) from None
    return target


def check_output_folder(path: PathLike, option: str = "-o") -> Path:
    """The folder `path` after checking it can hold outputs: not a file, no file among its parents."""
    target = Path(path)
    if not os.fspath(path).strip():
        raise OutputError("{}: the path is empty".format(option))
    where = target
    while not where.exists() and not where.is_symlink() and where != where.parent:
        where = where.parent
    if where.exists() and not where.is_dir():
        if where == target:
            raise OutputError("{}: is a file, not a folder; give a folder for the outputs".format(
                _where(option, path)))
        raise OutputError("{}: {} is a file, not a folder".format(_where(option, path), where))
    return target


def _where(option: str, target: PathLike) -> str:
    """How a message names an output: "-o PATH", or the bare path when no option names it."""
    return "{} {}".format(option, target) if option else str(target)


def _refuse_working_folder(target: Path, option: str) -> None:
    """A folder set is replaced whole: never the working folder or one above it."""
    if _inside(_real(os.getcwd()), _real(target)):
        raise OutputError("{}: is the working folder or holds it; give a new or empty folder".format(
            _where(option, target)))


# -- manifests --------------------------------------------------------------------------------------
def _stamp(path: Path) -> Dict[str, int]:
    info = path.stat()
    return {"size": int(info.st_size), "mtime_ns": int(info.st_mtime_ns)}


def _files_under(folder: Path) -> List[str]:
    """Relative paths of every file under `folder` (links included, not followed)."""
    found = []
    for root, dirs, files in os.walk(str(folder)):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            found.append(os.path.relpath(os.path.join(root, name), str(folder)))
    return sorted(found)


def write_manifest(folder: PathLike, kind: str) -> None:
    """List every file now under `folder` (size, modification time) in its hidden manifest."""
    root = Path(folder)
    files = {rel: _stamp(root / rel) for rel in _files_under(root) if rel != MANIFEST}
    data = {"format": MANIFEST_FORMAT, "kind": kind, "files": files}
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(str(tmp), str(root / MANIFEST))


def owned_files(folder: PathLike, legacy: Optional[Listing] = None) -> Set[str]:
    """Relative paths under `folder` the kit can prove it wrote: listed in its manifest, unchanged since.

    Without a manifest `legacy(folder)` may name the files an older kit listed in its own report.
    """
    root = Path(folder)
    manifest = root / MANIFEST
    try:
        data = json.loads(manifest.read_text())
        listed = data["files"] if data.get("format") == MANIFEST_FORMAT else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        listed = None
    present = set(_files_under(root))  # only real files in the folder itself: never a path out of it
    if isinstance(listed, dict):
        owned = {MANIFEST}
        for rel, stamp in listed.items():
            if rel not in present:
                continue
            path = root / rel
            try:
                if not path.is_symlink() and path.is_file() and _stamp(path) == stamp:
                    owned.add(rel)
            except OSError:
                continue
        return owned
    if legacy is not None:
        return set(legacy(root) or ()) & present
    return set()


def _top_level(rels: Iterable[str]) -> Set[str]:
    return {rel.split(os.sep, 1)[0] for rel in rels}


def foreign_entries(folder: PathLike, legacy: Optional[Listing] = None) -> List[str]:
    """Top-level names under `folder` holding anything the kit cannot prove it wrote."""
    root = Path(folder)
    owned = owned_files(root, legacy)
    return sorted(_top_level(rel for rel in _files_under(root) if rel not in owned) |
                  {n for n in os.listdir(str(root)) if (root / n).is_dir() and not (root / n).is_symlink()
                   and not _files_under(root / n) and n not in _top_level(owned)})


# -- atomic folder sets -----------------------------------------------------------------------------
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: str, b: str) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, TypeError):  # no libc by that name (not Linux)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, getattr(errno, "EOPNOTSUPP", errno.ENOTSUP)):
        return False
    raise OSError(code, os.strerror(code), b)


def _swap(staging: Path, target: Path) -> Path:
    """Put `staging` at `target`; the old folder ends at the returned hidden path beside it."""
    if _exchange(str(staging), str(target)):
        return staging
    old = Path(tempfile.mkdtemp(prefix=temp_prefix(target.name, ".old", target.parent), suffix=".old",
                                dir=str(target.parent)))
    os.rmdir(str(old))
    os.rename(str(target), str(old))  # between these two renames the folder is briefly absent, never mixed
    os.rename(str(staging), str(target))
    return old


def _remove_owned(old: Path, owned: Set[str]) -> None:
    """Delete the listed files of the replaced set and the folders they leave empty; anything else stays."""
    for rel in sorted(owned, key=lambda r: (r == MANIFEST, r)):  # the manifest last: it proves the rest
        path = old / rel
        if path.is_file() or path.is_symlink():
            os.unlink(str(path))
    for root, dirs, files in sorted(os.walk(str(old)), key=lambda item: -len(item[0])):
        if not dirs and not files:
            with contextlib.suppress(OSError):
                os.rmdir(root)
    with contextlib.suppress(OSError):
        os.rmdir(str(old))


def _remove_tree(path: Path) -> None:
    """Best-effort removal of a staging folder this run created."""
    import shutil

    shutil.rmtree(str(path), ignore_errors=True)


def check_replaceable(path: PathLike, option: str = "-o", keep_foreign: bool = False, claimed: Sequence[str] = (),
                      legacy: Optional[Listing] = None) -> Tuple[Set[str], List[str]]:
    """(files the kit owns, other top-level entries) of an existing folder set at `path`; OutputError when it holds
    files the kit did not write (with `keep_foreign`: only at names in `claimed`)."""
    target = check_output_folder(path, option)
    if not target.is_dir():
        return set(), []
    owned = owned_files(target, legacy)
    foreign = foreign_entries(target, legacy)
    clash = [n for n in foreign if n in claimed] if keep_foreign else foreign
    if clash:
        raise OutputError("{}: holds {} the kit did not write ({}); move {} away or choose a new folder".format(
            _where(option, target), "files" if len(clash) > 1 else "a file",
            ", ".join(clash[:3]) + (", ..." if len(clash) > 3 else ""), "them" if len(clash) > 1 else "it"))
    return owned, foreign


@contextlib.contextmanager
def owned_folder(path: PathLike, kind: str, option: str = "-o", keep_foreign: bool = False,
                 claimed: Sequence[str] = (), legacy: Optional[Listing] = None) -> Iterator[Path]:
    """Yield a hidden staging folder beside `path`; on success it becomes `path` whole (with its manifest).

    An existing `path` is replaced only when every file in it is the kit's (manifest or `legacy` listing); with
    `keep_foreign`, other entries are kept and moved into the new set unless their names are `claimed` by it
    (checked now and again at the end). Nothing appears at `path` unless the block ends without error.
    """
    target = check_output_folder(path, option)
    check_name_fits(target)
    _refuse_working_folder(target, option)
    if target.is_symlink():  # -o a link to a folder elsewhere: the set is swapped there, the link stays
        target = Path(os.path.realpath(str(target)))

    def plan() -> Tuple[Set[str], List[str]]:
        return check_replaceable(target, option, keep_foreign, claimed, legacy)

    plan()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        staging = Path(tempfile.mkdtemp(prefix=temp_prefix(target.name, ".tmp", target.parent), suffix=".tmp",
                                        dir=str(target.parent)))
    except OSError as exc:
        raise OutputError("{}: cannot create a temporary folder beside it in {} ({})".format(
            _where(option, target), target.parent, (exc.strerror or str(exc)).lower())) from None
    try:
        yield staging
        if keep_foreign and target.is_dir():
            clash = [n for n in foreign_entries(target, legacy) if (staging / n).exists() or os.path.lexists(
                str(staging / n))]
            if clash:
                raise OutputError("{}: holds {} the kit did not write at a name it needs; move {} away".format(
                    _where(option, target), ", ".join(clash[:3]), "them" if len(clash) > 1 else "it"))
        write_manifest(staging, kind)
        owned, foreign = plan()
    except BaseException:
        _remove_tree(staging)
        raise
    with _signals_held():  # the swap and the move of the user's files are not cut short by Ctrl-C or SIGTERM
        try:
            if not target.is_dir():
                os.rename(str(staging), str(target))
                return
            if not os.listdir(str(target)):
                os.replace(str(staging), str(target))  # onto an empty folder: one step
                return
            old = _swap(staging, target)
        except BaseException:
            _remove_tree(staging)
            raise
        for name in foreign:  # the new set is in place; the user's other files move into it, never deleted
            os.rename(str(old / name), str(target / name))
        _remove_owned(old, owned)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP (delivered when the block ends) where the system allows it."""
    held = [signal.SIGINT] + list(STOP_SIGNALS)
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


# -- signals ----------------------------------------------------------------------------------------
class Stopped(KeyboardInterrupt):
    """The run was asked to stop by SIGTERM or SIGHUP: unwinds like Ctrl-C, so temporaries are cleaned up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum
        self.name = signal.Signals(signum).name


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
_stopping = []  # type: List[int]


def _on_stop(signum: int, frame: Any) -> None:
    """Raise Stopped once; a second signal while temporaries are being removed is ignored."""
    if _stopping:
        return
    _stopping.append(signum)
    raise Stopped(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGHUP raise Stopped in the main thread (their default kills the process with
    no cleanup); handlers set by others, and SIG_IGN (nohup), are left alone; the old handlers come back after."""
    previous = []  # type: List[Tuple[int, Any]]
    if threading.current_thread() is threading.main_thread():
        del _stopping[:]
        for sig in STOP_SIGNALS:
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(sig) == signal.SIG_DFL:
                    previous.append((sig, signal.signal(sig, _on_stop)))
    try:
        yield
    finally:
        for sig, handler in previous:
            with contextlib.suppress(ValueError, OSError):
                signal.signal(sig, handler)


__all__ = ["OutputError", "MANIFEST", "name_max", "check_name_fits", "temp_prefix", "refuse_inputs",
           "check_output_folder", "check_replaceable", "write_manifest", "owned_files", "foreign_entries", "owned_folder", "Stopped",
           "stop_on_signals", "STOP_SIGNALS"]
