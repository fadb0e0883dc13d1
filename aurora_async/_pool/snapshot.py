"""``pool.stats()``: a snapshot of every token and of the pool.

The pool's figures are counted when ``stats()`` is called. Each token's
:class:`TokenStats` is made when it is first read, from what its slot held at the call,
copied then in one pass (one ``attrgetter`` per slot, in C): so ``stats()`` on a million
tokens costs a copy of their counters, not a million records, and reading a few of them
costs a few. The one figure read later is a token's ``headroom``: from its buckets as
they stand when the record is made, at the time of the call (the same, unless the token
was leased in between).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Any, overload

from .._core.calibrate_types import CalibrationSnapshot
from .._core.gcpause import gc_paused
from .._core.limits import Limit
from .._core.scheduler import Slot, TokenState
from .._core.stats import PoolStats, TokenStats
from .calibration import Calibration
from .core import PoolCore

#: What a token's record is made from, copied from its slot at the call (in this order).
_FIELDS = (
    "name",
    "removed",
    "disabled",
    "cool_until",
    "leases",
    "ok",
    "rate_limited",
    "errors",
    "in_flight",
    "reason",
    "units",
    "proven",
    "info",
    "windows",
    "usage",
    "scope_cool",
)
_ROW = attrgetter(*_FIELDS)
_IN_FLIGHT = itemgetter(_FIELDS.index("in_flight"))
_REMOVED = itemgetter(_FIELDS.index("removed"))
_DISABLED = itemgetter(_FIELDS.index("disabled"))
_COOL = itemgetter(_FIELDS.index("cool_until"))


def snapshot(core: PoolCore, flagged: Collection[str] = ()) -> PoolStats:
    """Every token's stats and the pool's; ``flagged``: secrets whose declared limit
    looks too high (the token monitor's finding)."""
    now = core.now()
    slots = list(core.sched.slots.values())
    with gc_paused(len(slots)):  # (else a million young tuples set off collections)
        rows = list(map(_ROW, slots))
    tokens = TokenRecords(slots, rows, now, time.time(), frozenset(flagged), core.calibration)
    # (removed, disabled, cooling) of every token, counted in C
    cooling_now = map(now.__lt__, map(_COOL, rows))
    flags = Counter(zip(map(_REMOVED, rows), map(_DISABLED, rows), cooling_now, strict=True))
    removed = sum(n for (gone, _, _), n in flags.items() if gone)
    disabled = sum(n for (gone, off, _), n in flags.items() if off and not gone)
    cooling = flags[False, False, True]
    backend = core.backend
    return PoolStats(
        tokens=tokens,
        waiting=core.sched.waiting + (backend.waiting if backend is not None else 0),
        active=len(rows) - removed - disabled - cooling,
        cooling=cooling,
        disabled=disabled,
        removed=removed,
        in_flight=sum(map(_IN_FLIGHT, rows)),
        granted=core.granted,
        granted_per_second=core.grant_rate(now),
    )


class TokenRecords(Sequence[TokenStats]):
    """The tokens of a :class:`PoolStats`, in the pool's order: a read-only sequence of
    :class:`TokenStats`, each made when first read and kept. Compares equal to any
    sequence of the same records (a tuple of them, say)."""

    __slots__ = ("_calibration", "_flagged", "_made", "_now", "_rows", "_slots", "_wall")

    def __init__(
        self,
        slots: list[Slot],
        rows: list[tuple[Any, ...]],
        now: float,
        wall: float,
        flagged: frozenset[str],
        calibration: Calibration,
    ) -> None:
        self._slots = slots
        self._rows = rows
        self._now = now
        self._wall = wall
        self._flagged = flagged
        self._calibration = calibration
        self._made: list[TokenStats | None] = [None] * len(rows)

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> TokenStats: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[TokenStats, ...]: ...

    def __getitem__(self, index: int | slice) -> TokenStats | tuple[TokenStats, ...]:
        if isinstance(index, slice):
            return tuple(self._make(i) for i in range(*index.indices(len(self._rows))))
        if index < 0:
            index += len(self._rows)
        if not 0 <= index < len(self._rows):
            raise IndexError("token index out of range")
        return self._make(index)

    def __iter__(self) -> Iterator[TokenStats]:
        return map(self._make, range(len(self._rows)))

    def _make(self, i: int) -> TokenStats:
        made = self._made[i]
        if made is None:
            slot = self._slots[i]
            calibration = self._calibration.snapshot(slot)
            too_high = slot.token.value in self._flagged
            made = record(slot, self._rows[i], self._now, self._wall, too_high, calibration)
            self._made[i] = made
        return made

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TokenRecords | tuple | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


def record(
    slot: Slot,
    row: tuple[Any, ...],
    now: float,
    wall: float,
    too_high: bool,
    calibration: CalibrationSnapshot | None,
) -> TokenStats:
    """The :class:`TokenStats` of ``slot`` from ``row``, its fields as ``snapshot`` copied
    them at ``now`` (``wall`` on the system clock)."""
    (name, removed, disabled, cool_until, leases, ok, rate_limited, errors, in_flight) = row[:9]
    reason, units, proven, info, windows, usage, scope_cool = row[9:]
    expires_at = slot.expires_at  # (set when the slot is made, never changed)
    limits = _texts(tuple(w.limit for w in windows))
    declared, source = limits, "declared"
    if calibration is not None:
        declared = _texts(calibration.declared)
        source = calibration.source.value
        too_high = calibration.limit_too_high
    if removed:
        state = TokenState.REMOVED
    elif disabled:
        state = TokenState.DISABLED
    else:
        state = TokenState.COOLING if cool_until > now else TokenState.ACTIVE
    if slot.mixed:  # requests, in no scope
        headroom = slot.headroom(now)
    elif len(windows) == 1:
        headroom = windows[0].burst - windows[0].level_at(now)
    else:
        headroom = min(w.burst - w.level_at(now) for w in windows)
    return TokenStats(
        name=name,
        state=state,
        leases=leases,
        ok=ok,
        rate_limited=rate_limited,
        errors=errors,
        in_flight=in_flight,
        cooldown_left=round(max(0.0, cool_until - now), 9),
        reason=reason,
        limits=limits,
        units=units,
        headroom=round(max(0.0, headroom), 9),
        proven=proven,
        last_limit=getattr(info, "limit", None),
        last_remaining=getattr(info, "remaining", None),
        last_reset=getattr(info, "reset_after", None),
        expires_in=None if expires_at is None else expires_at - wall,
        limit_too_high=too_high,
        declared_limits=declared,
        limit_source=source,
        usage=dict(usage) if usage else {},
        scope_cooldowns={
            scope: round(until - now, 9)
            for scope, until in (scope_cool or {}).items()
            if until > now
        },
    )


@lru_cache(maxsize=1024)
def _texts(limits: tuple[Limit, ...]) -> tuple[str, ...]:
    """Limits as text (the same few limits, for a million tokens)."""
    return tuple(str(limit) for limit in limits)


def token_stats(
    slot: Slot, now: float, wall: float, too_high: bool, calibration: CalibrationSnapshot | None
) -> TokenStats:
    """The :class:`TokenStats` of ``slot`` as it stands at ``now`` (the reference for
    :func:`record`, one token at a time)."""
    return record(slot, _ROW(slot), now, wall, too_high, calibration)
