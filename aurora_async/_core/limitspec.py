"""Limits written as text: ``"5/1s"``, ``"5000/3600s"``, ``"30/min"``.

Used by ``aurora-async plan --limit`` and by the ``limit=`` annotations of a token file.

``RATE/[N]UNIT[,burst=B]``: at most ``RATE`` requests per ``N`` units of time (``N``
defaults to 1), with an optional bucket size. Units: ``ms``, ``s`` (``sec``, ``second``),
``m`` (``min``, ``minute``), ``h`` (``hour``), ``d`` (``day``), each also plural.
"""

from __future__ import annotations

import math
import re

from .limits import Limit

__all__ = ["parse_limit"]

_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"
_SPEC = re.compile(
    rf"^(?P<rate>{_NUMBER})\s*/\s*(?P<count>{_NUMBER})?\s*(?P<unit>[a-z]+)"
    rf"(?:\s*,\s*burst\s*=\s*(?P<burst>{_NUMBER}))?$",
    re.IGNORECASE,
)


def parse_limit(text: str, *, burst: float | None = None) -> Limit:
    """The :class:`Limit` that ``text`` describes; ``burst`` applies unless ``text``
    gives its own. Raises ``ValueError`` saying what was expected."""
    match = _SPEC.match(text.strip())
    unit = match.group("unit").lower() if match else ""
    if unit not in _SECONDS and unit.endswith("s"):
        unit = unit[:-1]  # plural: "mins", "hours"
    if match is None or unit not in _SECONDS:
        raise ValueError(
            f"cannot read the limit {text!r}: write RATE/PERIOD such as '5/1s', "
            "'5000/3600s', '30/min' or '5/1s,burst=2' (units: ms, s, min, h, day)"
        )
    rate = float(match.group("rate"))
    count = float(match.group("count") or 1)
    per = count * _SECONDS[unit]
    own = match.group("burst")
    size = float(own) if own is not None else burst
    for name, value in (("rate", rate), ("period", per), ("burst", size)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ValueError(f"the limit {text!r} needs a positive {name}")
    return Limit(rate, per=per, burst=size)
