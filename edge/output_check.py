"""Check an output file path before long work starts, so a run never ends by failing to write what it measured."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import InputError


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
