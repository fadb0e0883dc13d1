"""``pool.stats()``: a snapshot of every token and of the pool.

The pool's figures are counted when ``stats()`` is called. Each token's
:class:`TokenStats` is made when it is first read, from what its slot held at the call,
copied then in one pass (one ``attrgetter`` per slot, in C, of the fields that change as
the token is used): so ``stats()`` on a million tokens costs a copy of their counters, not
a million records, and reading a few of them costs a few. Read when the record is made:
the token's ``headroom`` (from its buckets as they stand then, at the time of the call:
the same, unless the token was leased in between), and its limits, ``usage`` and scope
cooldowns (objects the slot changes in place).
"""

from __future__ import annotations

import math
import time
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

#: What a token's record is made from, copied from its slot at the call (in this order):
#: its name (a reload may rename it) and counters. Its state (removed, disabled, cooling,
#: and why) is copied only for the slots the scheduler marked as possibly not active
#: (``TokenSet.marked_states``); the others are as a new token is. The rest (its windows,
#: usage and scope cooldowns, objects the slot changes in place) is read from the slot
#: when the record is made, as the headroom is.
_FIELDS = (
    "name",
    "leases",
    "ok",
    "rate_limited",
    "errors",
    "in_flight",
    "units",
    "proven",
    "info",
)
_ROW = attrgetter(*_FIELDS)
_IN_FLIGHT = itemgetter(_FIELDS.index("in_flight"))
_NAME = itemgetter(_FIELDS.index("name"))
#: The state of a token that is neither removed, disabled nor cooling.
_ACTIVE: tuple[bool, bool, float, str | None] = (False, False, -math.inf, None)


def snapshot(core: PoolCore, flagged: Collection[str] = ()) -> PoolStats:
    """Every token's stats and the pool's; ``flagged``: secrets whose declared limit
    looks too high (the token monitor's finding)."""
    now = core.now()
    sched = core.sched
    slots = list(sched.slots.values())
    with gc_paused(len(slots)):  # (else a million young tuples set off collections)
        rows = list(map(_ROW, slots))
    states = sched.marked_states(now)
    removed = disabled = cooling = 0
    for gone, off, cool_until, _ in states.values():
        if gone:
            removed += 1
        elif off:
            disabled += 1
        elif cool_until > now:
            cooling += 1
    tokens = TokenRecords(
        slots, rows, states, now, time.time(), frozenset(flagged), core.calibration
    )
    backend = core.backend
    return PoolStats(
        tokens=tokens,
        waiting=sched.waiting + (backend.waiting if backend is not None else 0),
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

    __slots__ = (
        "_calibration",
        "_flagged",
        "_made",
        "_now",
        "_rows",
        "_slots",
        "_states",
        "_wall",
    )

    def __init__(
        self,
        slots: list[Slot],
        rows: list[tuple[Any, ...]],
        states: dict[Slot, tuple[bool, bool, float, str | None]],
        now: float,
        wall: float,
        flagged: frozenset[str],
        calibration: Calibration,
    ) -> None:
        self._slots = slots
        self._rows = rows
        self._states = states
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
            row = self._states.get(slot, _ACTIVE) + self._rows[i]
            made = record(slot, row, self._now, self._wall, too_high, calibration)
            self._made[i] = made
        return made

    def position(self, name: str) -> int:
        """Where the token with this masked name (at the call) is (``ValueError`` if
        none is): found in C, making no record."""
        return list(map(_NAME, self._rows)).index(name)

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
    """The :class:`TokenStats` of ``slot`` from ``row``: its removed, disabled,
    cool_until and reason, then its name and counters as ``snapshot`` copied them at ``now``
    (``wall`` on the system clock)."""
    removed, disabled, cool_until, reason, name = row[:5]
    leases, ok, rate_limited, errors, in_flight, units, proven, info = row[5:]
    windows, usage, scope_cool = slot.windows, slot.usage, slot.scope_cool
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
