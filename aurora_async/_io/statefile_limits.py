"""How a state file writes limits and reads them back: a window's limit, and the limits a
run learned (``"learned"``, ``"calibrator"``; see ``statefile.py`` for the format).

Reading checks every figure before anything is used and says what is wrong, naming the
field; it never raises anything but ``TypeError`` or ``ValueError`` (``statefile.py``
reports them as a corrupt file).
"""

from __future__ import annotations

import math
from typing import Any

from .._core.calibrate_types import Kept, LimitSource, Memory
from .._core.limits import REQUESTS, Limit

__all__ = ["learned_fields", "limit_fields", "limit_of", "read_kept", "read_memory"]

#: Where a kept limit may come from (a declared or default one is not kept).
_SOURCES = {source.value: source for source in (LimitSource.LEARNED, LimitSource.HEADER)}


def limit_fields(limit: Limit, *, burst: bool = True) -> dict[str, Any]:
    """How a window's limit is written: rate, per and burst, and its resource, scope and
    calendar where it has them. ``burst=False``: the burst only where it was given (a
    declared limit, whose defaulted burst is a guess the calibrator may grow)."""
    fields: dict[str, Any] = {"rate": limit.rate, "per": limit.per}
    if burst or limit.burst_given:
        fields["burst"] = limit.burst
    if limit.unit != REQUESTS:
        fields["unit"] = limit.unit
    if limit.scope is not None:
        fields["scope"] = limit.scope
    calendar = limit.calendar
    if calendar is not None:
        fields["calendar"] = {
            "period": calendar.period,
            "at": calendar.at,
            "tz": calendar.tz,
            "day": calendar.day,
        }
    return fields


def limit_of(window: dict[str, Any]) -> Limit:
    """The limit a saved window names (``TypeError``/``ValueError`` if it names none).
    The error never quotes the file's text: a string the file holds where a resource,
    scope, time zone or time belongs may be anything pasted there, a secret too, and
    the report goes to the logs (the string is named by its length instead)."""
    try:
        return _limit_of(window)
    except (TypeError, ValueError) as exc:
        raise type(exc)(_unquoted(str(exc), window)) from None


def _unquoted(message: str, window: dict[str, Any]) -> str:
    """``message`` without any string ``window`` (or its calendar) holds."""
    calendar = window.get("calendar")
    values = [*window.values(), *(calendar.values() if isinstance(calendar, dict) else ())]
    for text in sorted((v for v in values if isinstance(v, str)), key=len, reverse=True):
        named = f"<a text of {len(text)} characters>"
        message = message.replace(repr(text), named)
        if len(text) >= 4:  # (shorter: no secret, and replacing it would garble words)
            message = message.replace(text, named)
    return message


def _limit_of(window: dict[str, Any]) -> Limit:
    rate: Any = window.get("rate")
    unit: Any = window.get("unit", REQUESTS)
    scope: Any = window.get("scope")
    calendar: Any = window.get("calendar")
    if calendar is None:
        per: Any = window.get("per")
        burst: Any = window.get("burst")
        return Limit(rate, per, burst, unit=unit, scope=scope)
    if not isinstance(calendar, dict):
        raise TypeError('"calendar" must be an object')
    at: Any = calendar.get("at")
    tz: Any = calendar.get("tz")
    if calendar.get("period") == "day":
        return Limit.daily(rate, reset=at, tz=tz, unit=unit, scope=scope)
    if calendar.get("period") == "month":
        day: Any = calendar.get("day")
        return Limit.monthly(rate, day=day, reset=at, tz=tz, unit=unit, scope=scope)
    raise ValueError('"calendar" period must be "day" or "month"')


# -- the limits a run learned ----------------------------------------------------------


def learned_fields(kept: tuple[Kept, ...], memory: Memory | None) -> dict[str, Any]:
    """A token entry's ``"learned"`` windows and ``"calibrator"`` memory (none: {})."""
    fields: dict[str, Any] = {}
    if kept:
        fields["learned"] = [
            {
                **limit_fields(item.effective),
                "source": item.source.value,
                "declared": limit_fields(item.declared, burst=False),
            }
            for item in kept
        ]
    if memory is not None:
        fields["calibrator"] = {
            "served": memory.served,
            "refused": _or_none(memory.refused),
            "refused_burst": _or_none(memory.refused_burst),
            "step_of": memory.step_of,
            "patience": memory.patience,
            "slow": memory.slow,
            "probe": list(memory.probe) if memory.probe[0] else None,
        }
    return fields


def read_kept(raw: object) -> Kept:
    """One ``"learned"`` window (``TypeError``/``ValueError`` naming what is wrong)."""
    if not isinstance(raw, dict):
        raise TypeError("it is not an object")
    source = raw.get("source")
    if not isinstance(source, str) or source not in _SOURCES:  # (its text is not echoed)
        raise ValueError('"source" must be "learned" or "header"')
    declared_raw = raw.get("declared")
    if not isinstance(declared_raw, dict):
        raise TypeError('"declared" must be an object (the limit it was derived from)')
    effective = limit_of(raw)
    try:
        declared = limit_of(declared_raw)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f'"declared": {exc}') from None
    if (effective.per, effective.unit, effective.scope) != (
        declared.per,
        declared.unit,
        declared.scope,
    ) or (effective.calendar or declared.calendar):
        raise ValueError("its window is not the declared one's (per, unit and scope differ)")
    return Kept(effective, _SOURCES[source], declared)


def read_memory(raw: object) -> Memory:
    """A ``"calibrator"`` object (``TypeError``/``ValueError`` naming what is wrong)."""
    if not isinstance(raw, dict):
        raise TypeError("it is not an object")
    probe: Any = raw.get("probe")
    if probe is None:
        probe = ("", 0.0)
    elif not (isinstance(probe, list) and len(probe) == 2 and isinstance(probe[0], str)):
        raise TypeError('"probe" must be null or [kind, value before]')
    fields: dict[str, Any] = {
        name: raw.get(name) for name in ("served", "step_of", "patience", "slow")
    }
    for name in ("refused", "refused_burst"):  # null: none refused yet
        value = raw.get(name)
        fields[name] = math.inf if value is None else value
    return Memory(**fields, probe=(probe[0], probe[1]))


def _or_none(value: float) -> float | None:
    """JSON has no infinity: ``null`` stands for it."""
    return None if math.isinf(value) else value
