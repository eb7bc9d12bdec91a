"""Dataclass configs from JSON-style dicts, shared by every package: unknown or malformed fields are one-line errors."""
from dataclasses import fields
from typing import Any, Tuple, Type

from .errors import EdgematteError, InputError


def dataclass_from_dict(cls: Any, data: Any, what: str, error: Type[EdgematteError] = InputError,
                        malformed: Tuple[Type[BaseException], ...] = (TypeError,)) -> Any:
    """`cls(**data)`, raising `error` naming `what` when data is not a dict, has fields `cls` lacks, or when
    construction raises one of `malformed` (a missing field: TypeError)."""
    if not isinstance(data, dict):
        raise error("{} must be a JSON object, got {}".format(what, type(data).__name__))
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise error("{} has unknown field(s) {} (known: {})".format(what, ", ".join(unknown), ", ".join(sorted(known))))
    try:
        return cls(**data)
    except malformed as exc:
        raise error("{} is malformed: {}".format(what, exc)) from None
