"""Ed25519 signatures of bundle manifests: key pairs, signing, checking (the `sign` extra: cryptography).

cryptography is imported only when a key is made or read or a signature is checked, so a box's base install still
verifies the hashes of any bundle. A signature document is a small JSON file: the algorithm, the signer's key id
(the SHA256 fingerprint `ssh-keygen -l` prints for the same public key) and the base64 signature of the exact
manifest bytes.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Tuple

from .errors import InputError, MissingExtraError

ALGORITHM = "ed25519"
PRIVATE_FILE = "edgematte-sign.pem"  # PKCS8 PEM, mode 0600: stays with whoever makes bundles
PUBLIC_FILE = "edgematte-sign.pub"  # one OpenSSH line: goes to the boxes (verify --key)
KEY_MAX_BYTES = 64 * 1024
SIGNATURE_MAX_BYTES = 4096


class KeyFileError(InputError):
    """A key file is missing, unreadable, encrypted, or not an Ed25519 key."""


def _crypto() -> Any:
    """The cryptography modules the kit uses; MissingExtraError naming the `sign` extra when it is absent."""
    try:
        from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise MissingExtraError("signing and checking bundle signatures", "cryptography", "sign") from None

    class Crypto:
        """Namespace of the imported names."""

    Crypto.serialization, Crypto.ed25519 = serialization, ed25519
    Crypto.InvalidSignature, Crypto.UnsupportedAlgorithm = InvalidSignature, UnsupportedAlgorithm
    return Crypto


def _read_key_file(path: str) -> bytes:
    """The bytes of a key file (bounded), KeyFileError when it cannot be read."""
    if not os.path.isfile(path):
        raise KeyFileError("{}: no such key file".format(path))
    try:
        with open(path, "rb") as handle:
            data = handle.read(KEY_MAX_BYTES + 1)
    except OSError as exc:
        raise KeyFileError("{}: cannot read the key ({})".format(path, exc.strerror or exc)) from None
    if len(data) > KEY_MAX_BYTES:
        raise KeyFileError("{}: too large for a key file (over {} KiB)".format(path, KEY_MAX_BYTES // 1024))
    return data


def load_private_key(path: str) -> Any:
    """The Ed25519 private key in `path` (PEM or OpenSSH, unencrypted); KeyFileError on anything else."""
    c = _crypto()
    data = _read_key_file(path)
    key, why = None, "not a PEM or OpenSSH private key"
    for loader in (c.serialization.load_pem_private_key, c.serialization.load_ssh_private_key):
        try:
            key = loader(data, password=None)
            break
        except TypeError:  # the key is encrypted
            raise KeyFileError("{}: the private key is encrypted; use an unencrypted copy (e.g. ssh-keygen -p -N '' "
                               "on a copy) or make one with `edgematte keygen`".format(path)) from None
        except (ValueError, c.UnsupportedAlgorithm):
            continue
    if key is None:
        raise KeyFileError("{}: {}".format(path, why))
    if not isinstance(key, c.ed25519.Ed25519PrivateKey):
        raise KeyFileError("{}: key type {}; bundles are signed with Ed25519 keys (edgematte keygen)".format(
            path, _key_type(key)))
    return key


def _key_type(key: Any) -> str:
    """A key's algorithm in words ("RSA", "EllipticCurve", "DSA", ...)."""
    return type(key).__name__.lstrip("_").replace("PrivateKey", "").replace("PublicKey", "") or "unknown"


def load_public_key(path: str) -> Any:
    """The Ed25519 public key in `path` (PEM or an OpenSSH line); KeyFileError on anything else."""
    c = _crypto()
    data = _read_key_file(path)
    key = None
    for loader in (c.serialization.load_pem_public_key, c.serialization.load_ssh_public_key):
        try:
            key = loader(data)
            break
        except (ValueError, c.UnsupportedAlgorithm):
            continue
    if key is None:
        hint = " (this looks like a private key: pass the .pub file)" if b"PRIVATE KEY" in data else ""
        raise KeyFileError("{}: not a PEM or OpenSSH public key{}".format(path, hint))
    if not isinstance(key, c.ed25519.Ed25519PublicKey):
        raise KeyFileError("{}: key type {}; bundles are signed with Ed25519 keys (edgematte keygen)".format(
            path, _key_type(key)))
    return key


def key_id(public_key: Any) -> str:
    """The key's SHA256 fingerprint as `ssh-keygen -l` prints it (SHA256:base64 of the OpenSSH key blob)."""
    c = _crypto()
    line = public_key.public_bytes(c.serialization.Encoding.OpenSSH, c.serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def sign(private_key: Any, data: bytes) -> bytes:
    """The signature document (JSON bytes) of `data` by `private_key`."""
    document = {"algorithm": ALGORITHM, "key": key_id(private_key.public_key()),
                "signature": base64.b64encode(private_key.sign(data)).decode("ascii")}
    return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("utf-8")


def parse_signature(document: bytes) -> Dict[str, Any]:
    """The fields of a signature document (no cryptography needed); ValueError naming what is wrong."""
    if len(document) > SIGNATURE_MAX_BYTES:
        raise ValueError("over {} bytes".format(SIGNATURE_MAX_BYTES))
    try:
        fields = json.loads(document.decode("utf-8"))
        algorithm, key, text = fields["algorithm"], fields["key"], fields["signature"]
        raw = base64.b64decode(text, validate=True)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ValueError("not a signature document ({})".format(exc)) from None
    if algorithm != ALGORITHM or not isinstance(key, str) or len(raw) != 64:
        raise ValueError("not an {} signature".format(ALGORITHM))
    return {"algorithm": algorithm, "key": key, "signature": raw}


def signature_matches(public_key: Any, data: bytes, document: bytes) -> bool:
    """Whether `document` is a valid signature of `data` by `public_key`."""
    c = _crypto()
    try:
        public_key.verify(parse_signature(document)["signature"], data)
    except (ValueError, c.InvalidSignature):
        return False
    return True


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `data` and exactly `mode`; refuses an existing file, removes its own partial one."""
    try:
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise KeyFileError("{}: already exists; not overwriting it (pick another -o)".format(path)) from None
    except OSError as exc:
        raise KeyFileError("{}: cannot create it ({})".format(path, exc.strerror or exc)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        os.unlink(str(path))
        raise KeyFileError("{}: cannot write it ({})".format(path, exc.strerror or exc)) from None


def make_key_pair(folder: str) -> Tuple[Path, Path]:
    """Write a new Ed25519 pair into `folder`: PRIVATE_FILE (PEM, 0600) and PUBLIC_FILE (OpenSSH); never overwrites."""
    c = _crypto()
    target = Path(folder)
    private_path, public_path = target / PRIVATE_FILE, target / PUBLIC_FILE
    if target.exists() and not target.is_dir():
        raise KeyFileError("{}: not a folder".format(folder))
    for path in (private_path, public_path):
        if os.path.lexists(str(path)):
            raise KeyFileError("{}: already exists; not overwriting it (pick another -o)".format(path))
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KeyFileError("{}: cannot create the folder ({})".format(folder, exc.strerror or exc)) from None
    key = c.ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(c.serialization.Encoding.PEM, c.serialization.PrivateFormat.PKCS8,
                                c.serialization.NoEncryption())
    public = key.public_key().public_bytes(c.serialization.Encoding.OpenSSH, c.serialization.PublicFormat.OpenSSH)
    _write_new(private_path, private, 0o600)
    try:
        _write_new(public_path, public + b" edgematte-bundle\n", 0o644 & ~_umask())
    except BaseException:
        os.unlink(str(private_path))
        raise
    return private_path, public_path


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


__all__ = ["KeyFileError", "PRIVATE_FILE", "PUBLIC_FILE", "load_private_key", "load_public_key", "key_id", "sign",
           "parse_signature", "signature_matches", "make_key_pair"]
