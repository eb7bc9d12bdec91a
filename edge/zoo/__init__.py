"""The model zoo: shipped default IRs found by name, one folder `<name>/model.xml(+.bin)` each.

Folders listed in the EDGEMATTE_ZOO environment variable (os.pathsep-separated) are searched before the package's
own folder, so a box can install more models without touching the package.
"""
import os
from pathlib import Path
from typing import List, Optional, Sequence, Union

from ..errors import ModelFileError

ZOO_ENV = "EDGEMATTE_ZOO"
MODEL_FILE = "model.xml"
CHECKPOINT_FILE = "model.pt"  # the compact kit checkpoint shipped next to the IR (needs the train extra to open)
PACKAGE_DIR = Path(__file__).resolve().parent


def zoo_dirs(root: Optional[Union[str, Sequence[str]]] = None) -> List[Path]:
    """The folders searched for zoo models, in order: `root` if given, else $EDGEMATTE_ZOO then the package folder."""
    if root is not None:
        roots = [root] if isinstance(root, (str, os.PathLike)) else list(root)
        return [Path(r) for r in roots]
    extra = [Path(p) for p in os.environ.get(ZOO_ENV, "").split(os.pathsep) if p]
    return extra + [PACKAGE_DIR]


def list_zoo(root: Optional[Union[str, Sequence[str]]] = None) -> List[str]:
    """Names of the installed zoo models (folders holding model.xml), sorted, first occurrence wins."""
    names = []  # type: List[str]
    for folder in zoo_dirs(root):
        if not folder.is_dir():
            continue
        for child in sorted(folder.iterdir()):
            if (child / MODEL_FILE).is_file() and child.name not in names:
                names.append(child.name)
    return sorted(names)


def path_for(name: str, root: Optional[Union[str, Sequence[str]]] = None) -> Path:
    """The model.xml of zoo model `name`; ModelFileError naming what is installed when it is absent."""
    for folder in zoo_dirs(root):
        candidate = folder / name / MODEL_FILE
        if candidate.is_file():
            return candidate
    installed = list_zoo(root)
    shown = "'{}'".format(name) if name.isprintable() else repr(name)  # control characters would break the line
    raise ModelFileError("zoo model {} is not installed (installed: {}; searched {}); pass a model file with "
                         "-m MODEL.xml".format(shown, ", ".join(installed) or "none",
                                               ", ".join(str(d) for d in zoo_dirs(root))))


def checkpoint_for(name: str, root: Optional[Union[str, Sequence[str]]] = None) -> Path:
    """The kit checkpoint shipped with zoo model `name` (model.pt next to its IR); ModelFileError when absent."""
    xml = path_for(name, root)
    candidate = xml.parent / CHECKPOINT_FILE
    if not candidate.is_file():
        raise ModelFileError("zoo model '{}' ships no checkpoint ({} not found)".format(name, candidate))
    return candidate


def is_zoo_name(text: str) -> bool:
    """True when `text` looks like a bare zoo name (no folder separator, no suffix)."""
    return bool(text) and os.sep not in text and "/" not in text and not Path(text).suffix


__all__ = ["ZOO_ENV", "MODEL_FILE", "CHECKPOINT_FILE", "zoo_dirs", "list_zoo", "path_for", "checkpoint_for",
           "is_zoo_name"]
