"""Bounded reading and field checks of model card JSON, so a bad card is one line naming the file and the field."""
from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

from .errors import ModelFileError

MAX_CARD_BYTES = 4 << 20  # a real card is a few KiB (pruned configs ~12 KiB); far more is not a card
MAX_CARD_DEPTH = 32  # real cards nest 4 levels deep; the bound keeps the parser's recursion shallow
MAX_INPUT_SIDE = 16384  # an input side beyond this is not a network input
TASK_CHANNELS = {"alpha": 1, "saliency": 1, "trimap": 3}
COLORS = ("RGB", "BGR")
LAYOUTS = ("NCHW", "NHWC")
DTYPES = ("u8", "uint8", "f32", "float32")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_card_json(text: Any, source: str) -> Any:
    """json.loads of a card's text, refusing text over MAX_CARD_BYTES or nested deeper than MAX_CARD_DEPTH."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise ModelFileError("{}: the model card is not JSON text ({})".format(source, type(text).__name__))
    if len(text) > MAX_CARD_BYTES:
        raise ModelFileError("{}: the model card is {} bytes, more than a card can be ({})".format(
            source, len(text), MAX_CARD_BYTES))
    try:
        data = json.loads(text)
    except RecursionError:
        raise ModelFileError("{}: the model card is nested deeper than {} levels".format(
            source, MAX_CARD_DEPTH)) from None
    except (ValueError, TypeError) as exc:
        raise ModelFileError("{}: the model card is not valid JSON ({})".format(source, exc)) from None
    check_depth(data, source)
    return data


def check_depth(data: Any, source: str) -> None:
    """Refuse a card (or any of its values) nested deeper than MAX_CARD_DEPTH; iterative, so it cannot overflow."""
    stack = [(data, 1)]  # type: List[Tuple[Any, int]]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list, tuple)):
            if depth > MAX_CARD_DEPTH:
                raise ModelFileError("{}: the model card is nested deeper than {} levels".format(
                    source, MAX_CARD_DEPTH))
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)


def _bad(source: str, name: str, problem: str) -> ModelFileError:
    return ModelFileError("{}: model card field '{}' {}".format(source, name, problem))


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text(source: str, name: str, value: Any, empty: bool = True, line: bool = False) -> None:
    if not isinstance(value, str):
        raise _bad(source, name, "must be text, got {}".format(_kind(value)))
    if not empty and not value.strip():
        raise _bad(source, name, "must not be empty")
    if line and not value.isprintable():  # printed inside one-line messages and tables
        raise _bad(source, name, "must be one line of printable text, got {!r}".format(value[:60]))


def _mapping(source: str, name: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, dict):
        raise _bad(source, name, "must be a JSON object{}, got {}".format(" or null" if optional else "",
                                                                           _kind(value)))


def _choice(source: str, name: str, value: Any, choices: Tuple[str, ...]) -> None:
    if not isinstance(value, str) or value.upper() not in [c.upper() for c in choices]:
        raise _bad(source, name, "must be one of {}, got {!r}".format(", ".join(choices), value))


def _check_input_size(source: str, value: Any) -> None:
    if not isinstance(value, list) or len(value) != 2 or not all(_is_int(v) for v in value):
        raise _bad(source, "input_size", "must be [height, width] as two whole numbers, got {}".format(
            json.dumps(value) if _jsonable(value) else _kind(value)))
    if not all(1 <= v <= MAX_INPUT_SIDE for v in value):
        raise _bad(source, "input_size", "sides must be 1..{}, got {}".format(MAX_INPUT_SIDE, value))


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _check_input(source: str, value: Any) -> None:
    _mapping(source, "input", value)
    checks = {"dtype": DTYPES, "layout": LAYOUTS, "color": COLORS}
    for key, choices in checks.items():
        if key in value:
            _choice(source, "input." + key, value[key], choices)
    if "normalised" in value and not isinstance(value["normalised"], bool):
        raise _bad(source, "input.normalised", "must be true or false, got {}".format(_kind(value["normalised"])))


def _check_normalisation(source: str, value: Any) -> None:
    _mapping(source, "normalisation", value)
    unknown = sorted(set(value) - {"color", "mean", "std"})
    if unknown:
        raise _bad(source, "normalisation", "has unknown key(s) {}".format(", ".join(map(str, unknown))))
    if "color" in value:
        _choice(source, "normalisation.color", value["color"], COLORS)
    for key in ("mean", "std"):
        if key not in value:
            continue
        numbers = value[key]
        if not isinstance(numbers, list) or len(numbers) != 3 or not all(_is_number(v) for v in numbers):
            raise _bad(source, "normalisation." + key, "must be three finite numbers, got {}".format(
                json.dumps(numbers) if _jsonable(numbers) else _kind(numbers)))
        if key == "std" and not all(v > 0 for v in numbers):
            raise _bad(source, "normalisation.std", "must be positive, got {}".format(numbers))


def _check_output(source: str, value: Any, task: str) -> None:
    _mapping(source, "output", value)
    if "meaning" in value:
        _text(source, "output.meaning", value["meaning"])
    if "channels" in value:
        want = TASK_CHANNELS[task]
        if not _is_int(value["channels"]) or value["channels"] != want:
            raise _bad(source, "output.channels", "must be {} for task {}, got {!r}".format(
                want, task, value["channels"]))


def _check_sha256(source: str, name: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not _SHA256.match(value):
        raise _bad(source, name, "must be 64 lowercase hex digits or null, got {!r}".format(
            value if isinstance(value, str) and len(value) < 80 else _kind(value)))


def _check_format(source: str, value: Any, newest: int) -> None:
    if not _is_int(value) or value < 1:
        raise _bad(source, "format", "must be a whole number >= 1, got {!r}".format(value))
    if value > newest:
        raise _bad(source, "format", "is {}: written by a newer edgematte (this one reads up to {})".format(
            value, newest))


def check_card_fields(data: Dict[str, Any], source: str, newest_format: int) -> None:
    """Check the type and range of every known card field in `data`; ModelFileError naming the field otherwise.

    Unknown top-level keys are left alone (a newer kit may add fields); `name`, `task` and `arch` must be present.
    """
    check_depth(data, source)
    for name in ("name", "task", "arch"):
        _text(source, name, data[name], empty=False, line=True)
    task = data["task"]
    if task not in TASK_CHANNELS:
        raise _bad(source, "task", "must be one of {}, got {!r}".format(", ".join(TASK_CHANNELS), task))
    checks = {
        "config": lambda v: _mapping(source, "config", v),
        "input_size": lambda v: _check_input_size(source, v),
        "dynamic": lambda v: None if isinstance(v, bool) else _fail(source, "dynamic", "must be true or false", v),
        "input": lambda v: _check_input(source, v),
        "normalisation": lambda v: _check_normalisation(source, v),
        "output": lambda v: _check_output(source, v, task),
        "precision": lambda v: _text(source, "precision", v, empty=False, line=True),
        "prune": lambda v: _mapping(source, "prune", v, optional=True),
        "source_sha256": lambda v: None if v is None else _text(source, "source_sha256", v),
        "encoder": lambda v: _mapping(source, "encoder", v, optional=True),
        "weights_sha256": lambda v: _check_sha256(source, "weights_sha256", v),
        "tools": lambda v: _mapping(source, "tools", v),
        "metrics": lambda v: _mapping(source, "metrics", v),
        "notes": lambda v: _text(source, "notes", v),
        "format": lambda v: _check_format(source, v, newest_format),
    }  # type: Dict[str, Callable[[Any], Optional[None]]]
    for name, check in checks.items():
        if name in data:
            check(data[name])


def _fail(source: str, name: str, problem: str, value: Any) -> None:
    raise _bad(source, name, "{}, got {}".format(problem, json.dumps(value) if _jsonable(value) else _kind(value)))
