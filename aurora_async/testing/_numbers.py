"""How the mock server writes numbers and times into headers, and its float slack."""

from __future__ import annotations

import math

#: Slack for float noise in comparisons, in seconds or units (far below any real limit).
EPSILON = 1e-9


def ceil_ms(seconds: float) -> float:
    """``seconds`` rounded up to whole milliseconds, ignoring float noise."""
    return math.ceil(seconds * 1000 - EPSILON * 1000) / 1000


def ceil_seconds(seconds: float) -> int:
    """``seconds`` rounded up to whole seconds, ignoring float noise (never below 0)."""
    return max(0, math.ceil(seconds - EPSILON))


def epoch_seconds(wall: float, seconds: float) -> int:
    """The Unix time ``seconds`` after ``wall``, rounded up to a whole second, so that a
    client waiting until then is never early."""
    return math.ceil(wall + seconds - EPSILON)


def number(value: float) -> str:
    """``5`` for a whole number, ``2.5`` otherwise (at most 3 decimals)."""
    return str(int(value)) if value.is_integer() else f"{value:.3f}".rstrip("0")
