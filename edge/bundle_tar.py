"""Streaming checks of a bundle's tar members against its manifest, so nothing is written before every member passes.

A kit bundle is a gzip'd tar whose first members are its top folder, `manifest.json` and, when signed,
`manifest.sig`. Every later member must be a regular file the manifest lists (size, sha256, mode) or a folder above
one, each at most once, owned by uid/gid 0 (owner names empty or root), with no setuid, setgid, sticky or
world-writable bit. Links, devices, FIFOs, absolute or escaping names are refused. Decompressed bytes are bounded:
by a fixed budget until the manifest is read, then by the sizes it lists.
"""
from __future__ import annotations

import gzip
import hashlib
import posixpath
import re
import tarfile
import zlib
from typing import Any, BinaryIO, Callable, Dict, Optional, Set

from .errors import ModelFileError

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
MANIFEST_MAX_BYTES = 4 * 1024 * 1024
SIGNATURE_MAX_BYTES = 4096
HEADER_BUDGET = 1024 * 1024  # tar headers (pax included) allowed before the manifest, and per member after it
MEMBER_SLACK = 4096  # header bytes allowed per member once the manifest is known
FILE_MODE, SCRIPT_MODE, DIR_MODE = 0o644, 0o755, 0o755  # what `bundle` writes
UNSAFE_BITS = 0o7002  # setuid, setgid, sticky, world-writable
ROOT_NAMES = ("", "root")
# pax keywords a member may carry: long names and the plain header fields; not xattrs (file capabilities), ACLs or
# sparse maps, which GNU tar can apply on extraction and the manifest does not cover
PAX_KEYS = frozenset(["path", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname", "comment"])
CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BundleError(ModelFileError):
    """A bundle is malformed, tampered with or truncated, or its self-test fails."""


def safe_relative(name: str) -> bool:
    """Whether `name` is a plain relative POSIX path inside its folder (no '/', '.', '..', '\\' or NUL parts)."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


def parse_mode(text: Any) -> int:
    """A manifest mode ("0644") as an int; ValueError when it is not octal or has unsafe bits."""
    if not isinstance(text, str) or not re.match(r"^[0-7]{4}$", text):
        raise ValueError("mode {!r} is not four octal digits".format(text))
    mode = int(text, 8)
    if mode & UNSAFE_BITS:
        raise ValueError("mode {} is setuid/setgid/sticky or world-writable".format(text))
    return mode


def check_files(bundle: str, files: Any) -> Dict[str, Dict[str, Any]]:
    """The manifest's `files` table, each path safe, each entry a size, sha256 and safe mode; BundleError if not."""
    if not isinstance(files, dict) or not files:
        raise BundleError("{}: malformed {} (no files listed)".format(bundle, MANIFEST))
    table = {}  # type: Dict[str, Dict[str, Any]]
    for name, entry in files.items():
        if not safe_relative(name) or name in (MANIFEST, SIGNATURE):
            raise BundleError("{}: the manifest lists {!r}, a path outside the bundle or reserved".format(
                bundle, name))
        try:
            size, digest, mode = entry["bytes"], entry["sha256"], parse_mode(entry["mode"])
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or not _SHA256.match(digest):
                raise ValueError("bad size or sha256")
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError("{}: malformed manifest entry for {} ({})".format(bundle, name, exc)) from None
        table[name] = {"bytes": size, "sha256": digest, "mode": mode}
    for name in table:
        parent = posixpath.dirname(name)
        while parent:
            if parent in table:
                raise BundleError("{}: the manifest lists {} both as a file and as a folder".format(bundle, parent))
            parent = posixpath.dirname(parent)
    return table


def folders_of(files: Dict[str, Any]) -> Set[str]:
    """Every folder above a listed file (relative to the top folder)."""
    folders = set()  # type: Set[str]
    for name in files:
        parent = posixpath.dirname(name)
        while parent:
            folders.add(parent)
            parent = posixpath.dirname(parent)
    return folders


class _Budget:
    """A read-only stream that refuses to hand out more than `limit` decompressed bytes."""

    def __init__(self, stream: BinaryIO, bundle: str) -> None:
        self.stream, self.bundle, self.used, self.limit = stream, bundle, 0, HEADER_BUDGET + MANIFEST_MAX_BYTES

    def read(self, size: int = -1) -> bytes:
        """Read like the wrapped stream, raising BundleError past the limit."""
        if size is None or size < 0:
            size = self.limit - self.used + 1
        data = self.stream.read(min(size, self.limit - self.used + 1))
        self.used += len(data)
        if self.used > self.limit:
            raise BundleError("{}: holds more data than its manifest allows ({} bytes read, limit {})".format(
                self.bundle, self.used, self.limit))
        return data


def _kind(member: tarfile.TarInfo) -> str:
    """What a tar member is, in words."""
    if member.issym():
        return "a symbolic link"
    if member.islnk():
        return "a hard link"
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a FIFO"
    if member.type == tarfile.GNUTYPE_SPARSE:
        return "a sparse file"
    return "a member of type {!r}".format(member.type)


def _check_header(bundle: str, member: tarfile.TarInfo, want_dir: Optional[bool] = None) -> None:
    """Refuse a member whose type, owner or mode no bundle of the kit has."""
    is_file = member.type in (tarfile.REGTYPE, tarfile.AREGTYPE)
    if not (is_file or member.isdir()):
        raise BundleError("{}: refusing member {!r}: {} (a bundle holds only regular files and folders)".format(
            bundle, member.name, _kind(member)))
    if want_dir is not None and member.isdir() != want_dir:
        raise BundleError("{}: refusing member {!r}: a {} where the manifest has a {}".format(
            bundle, member.name, "folder" if member.isdir() else "file", "folder" if want_dir else "file"))
    extra = sorted(set(member.pax_headers) - PAX_KEYS)
    if extra:
        raise BundleError("{}: refusing member {!r}: it carries the extended header {!r} (a bundle's members carry "
                          "no attributes beyond name, size, time and owner)".format(bundle, member.name, extra[0]))
    if member.uid != 0 or member.gid != 0 or member.uname not in ROOT_NAMES or member.gname not in ROOT_NAMES:
        raise BundleError("{}: refusing member {!r}: owned by {}:{} ({}:{}); a bundle's members belong to root "
                          "(uid/gid 0)".format(bundle, member.name, member.uid, member.gid, member.uname or "-",
                                               member.gname or "-"))
    if member.mode & UNSAFE_BITS:
        raise BundleError("{}: refusing member {!r}: mode {:04o} is setuid/setgid/sticky or world-writable".format(
            bundle, member.name, member.mode & 0o7777))


def _read_small(bundle: str, tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int) -> bytes:
    """The whole content of a small member (the manifest, the signature), refusing one over `limit` bytes."""
    _check_header(bundle, member, want_dir=False)
    if member.size > limit:
        raise BundleError("{}: {} has {} bytes, over the {} allowed".format(bundle, member.name, member.size, limit))
    source = tar.extractfile(member)
    return source.read() if source is not None else b""


def scan(bundle: str, on_manifest: Callable[[bytes, Optional[bytes]], Dict[str, Dict[str, Any]]],
         open_target: Optional[Callable[[str], Optional[BinaryIO]]] = None) -> str:
    """Stream the bundle once, checking every member; returns the top folder's name.

    `on_manifest(manifest_bytes, signature_bytes)` checks them and returns the checked `files` table; then each
    member is checked against it and its content hashed. `open_target(name)` gives a handle to copy a file's content
    into (None to skip it); without it nothing is written anywhere.
    """
    try:
        with open(bundle, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
            budget = _Budget(unzipped, bundle)
            with tarfile.open(fileobj=budget, mode="r|") as tar:  # type: ignore[arg-type]
                return _scan_members(bundle, tar, budget, on_manifest, open_target)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BundleError("{}: not a readable .tar.gz bundle ({})".format(
            bundle, str(exc).strip() or type(exc).__name__)) from None


def _scan_members(bundle: str, tar: tarfile.TarFile, budget: _Budget,
                  on_manifest: Callable[[bytes, Optional[bytes]], Dict[str, Dict[str, Any]]],
                  open_target: Optional[Callable[[str], Optional[BinaryIO]]]) -> str:
    """The body of `scan`, on an open stream."""
    top = None  # type: Optional[str]
    files = None  # type: Optional[Dict[str, Dict[str, Any]]]
    folders = set()  # type: Set[str]
    manifest = signature = None  # type: Optional[bytes]
    seen = set()  # type: Set[str]
    for member in tar:
        name = member.name
        if not safe_relative(name.rstrip("/") if member.isdir() else name):
            raise BundleError("{}: refusing member {!r}: an absolute or escaping path".format(bundle, name))
        name = name.rstrip("/")
        head, _, rel = name.partition("/")
        if top is None:
            top = head
        if head != top:
            raise BundleError("{}: refusing member {!r}: a bundle holds one top folder, {!r}".format(
                bundle, name, top))
        if name in seen:
            raise BundleError("{}: refusing member {!r}: it appears more than once (tar would deploy one of the "
                              "copies, the manifest checks the other)".format(bundle, name))
        seen.add(name)
        if files is None:  # before the manifest: the top folder, the manifest, then the signature
            if rel == "" and member.isdir():
                _check_header(bundle, member)
                continue
            if rel == MANIFEST and manifest is None:
                manifest = _read_small(bundle, tar, member, MANIFEST_MAX_BYTES)
                continue
            if rel == SIGNATURE and manifest is not None:
                signature = _read_small(bundle, tar, member, SIGNATURE_MAX_BYTES)
                files = _accept_manifest(bundle, manifest, signature, on_manifest, budget)
                folders = folders_of(files)
                continue
            if manifest is None:
                raise BundleError("{}: {} is not the bundle's first file (found {!r}; not made by this edgematte, "
                                  "or repacked)".format(bundle, MANIFEST, name))
            files = _accept_manifest(bundle, manifest, None, on_manifest, budget)
            folders = folders_of(files)
        if rel in (MANIFEST, SIGNATURE, ""):
            raise BundleError("{}: refusing member {!r}: out of place (the top folder, {} and {} come first)".format(
                bundle, name, MANIFEST, SIGNATURE))
        if member.isdir() and rel in folders:
            _check_header(bundle, member, want_dir=True)
            continue
        entry = files.get(rel)
        if entry is None:
            raise BundleError("{}: {} is not in the manifest (added after bundling?)".format(bundle, rel))
        _check_header(bundle, member, want_dir=False)
        if member.size != entry["bytes"]:
            raise BundleError("{}: {} has {} bytes, the manifest says {} (truncated or altered)".format(
                bundle, rel, member.size, entry["bytes"]))
        if member.mode & 0o7777 != entry["mode"]:
            raise BundleError("{}: {} has mode {:04o}, the manifest says {:04o}".format(
                bundle, rel, member.mode & 0o7777, entry["mode"]))
        _copy_checked(bundle, tar, member, rel, entry, open_target(rel) if open_target else None)
    if files is None:
        if manifest is None:
            raise BundleError("{}: no {} in the bundle".format(bundle, MANIFEST))
        files = _accept_manifest(bundle, manifest, signature, on_manifest, budget)
    missing = sorted(set(files) - {n.partition("/")[2] for n in seen})
    if missing:
        raise BundleError("{}: {} is listed in the manifest but missing".format(bundle, missing[0]))
    return str(top)


def _accept_manifest(bundle: str, manifest: bytes, signature: Optional[bytes],
                     on_manifest: Callable[[bytes, Optional[bytes]], Dict[str, Dict[str, Any]]],
                     budget: _Budget) -> Dict[str, Dict[str, Any]]:
    """Hand the manifest to the caller's check, then bound the rest of the stream by the sizes it lists."""
    files = on_manifest(manifest, signature)
    members = len(files) + len(folders_of(files))
    payload = sum((e["bytes"] + 511) // 512 * 512 for e in files.values())
    budget.limit = budget.used + payload + members * MEMBER_SLACK + HEADER_BUDGET
    return files


def _copy_checked(bundle: str, tar: tarfile.TarFile, member: tarfile.TarInfo, rel: str, entry: Dict[str, Any],
                  target: Optional[BinaryIO]) -> None:
    """Hash a member's content (copying it into `target` when given) and refuse a mismatch with the manifest."""
    digest = hashlib.sha256()
    source = tar.extractfile(member)
    left = member.size
    while left > 0 and source is not None:
        chunk = source.read(min(CHUNK, left))
        if not chunk:
            break
        left -= len(chunk)
        digest.update(chunk)
        if target is not None:
            _write(bundle, rel, target, chunk)
    if target is not None:
        _write(bundle, rel, target, None)
    if left != 0:
        raise BundleError("{}: {} ends early (truncated)".format(bundle, rel))
    if digest.hexdigest() != entry["sha256"]:
        raise BundleError("{}: {} does not match its sha256 in the manifest (altered)".format(bundle, rel))


def _write(bundle: str, rel: str, target: BinaryIO, chunk: Optional[bytes]) -> None:
    """Write a chunk of an unpacked file (None: close it); BundleError naming the folder when the disk is full."""
    try:
        if chunk is None:
            target.close()
        else:
            target.write(chunk)
    except OSError as exc:
        raise BundleError("{}: cannot unpack {} for the self-test into {} ({})".format(
            bundle, rel, getattr(target, "name", "the temporary folder"), exc.strerror or exc)) from None


__all__ = ["BundleError", "MANIFEST", "SIGNATURE", "FILE_MODE", "SCRIPT_MODE", "DIR_MODE", "safe_relative",
           "check_files", "folders_of", "scan"]
