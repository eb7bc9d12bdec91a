"""Names the kit turns into folders (zoo models, bundle models, bundle top folders): simple identifiers, never paths."""
from __future__ import annotations

import re

from .errors import InputError

# A zoo or bundle model name: letters, digits, '_' and '-', starting with a letter or digit (no dots, so it is never
# taken for a file name with a suffix, and never '.' or '..').
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# A bundle's top folder (its file name without .tar.gz): the same, dots allowed after the first character.
BUNDLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def is_model_name(text: str) -> bool:
    """Whether `text` is a valid zoo/bundle model name."""
    return bool(MODEL_NAME.match(text))


def check_model_name(text: str, option: str) -> str:
    """`text` when it is a valid model name; InputError naming `option` otherwise (so no name becomes a path)."""
    if not is_model_name(text):
        raise InputError("{} {!r}: a model name is 1-64 letters, digits, '_' or '-', starting with a letter or "
                         "digit (not a path)".format(option, text))
    return text


def as_model_name(text: str) -> str:
    """`text` made into a valid model name: other characters become '_', a bad first character gets an 'm'."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", text)[:63] or "model"
    return name if name[0].isalnum() else "m" + name


__all__ = ["MODEL_NAME", "BUNDLE_NAME", "is_model_name", "check_model_name", "as_model_name"]
