"""Validation of profile fields, with errors that name the profile and the field."""

from __future__ import annotations

import math
import re


def whole(owner: str, name: str, value: object, least: int) -> int:
    """``value`` if it is an int of at least ``least``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner} {name} must be an int, not {type(value).__name__}")
    if value < least:
        raise ValueError(f"{owner} {name} must be at least {least}, got {value}")
    return value


def status(owner: str, value: object) -> int:
    """``value`` if it is an HTTP error status (400 to 599)."""
    code = whole(owner, "status", value, 400)
    if code > 599:
        raise ValueError(f"{owner} status must be 400 to 599, got {code}")
    return code


def seconds(owner: str, name: str, value: object) -> float:
    """``value`` as a float if it is a positive finite number of seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{owner} {name} must be a number of seconds, not {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"{owner} {name} must be a positive finite number of seconds, got {value!r}"
        )
    return float(value)


def choice(owner: str, name: str, value: object, allowed: tuple[object, ...]) -> None:
    """Refuse ``value`` unless it is one of ``allowed``."""
    if value not in allowed:
        listed = ", ".join(repr(item) for item in allowed)
        raise ValueError(f"{owner} {name} must be one of {listed}; got {value!r}")


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def name(owner: str, field: str, value: object) -> str:
    """``value`` if it is a plain name fit for a header (letters, digits, ``._-``)."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(
            f"{owner} {field} must be a name of letters, digits, '.', '_' or '-'; got {value!r}"
        )
    return value
