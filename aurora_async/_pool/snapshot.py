"""``pool.stats()``: a frozen snapshot of every token and of the pool."""

from __future__ import annotations

import time
from collections.abc import Collection

from .._core.calibrate_types import CalibrationSnapshot
from .._core.scheduler import Slot, TokenState
from .._core.stats import PoolStats, TokenStats
from .core import PoolCore


def snapshot(core: PoolCore, flagged: Collection[str] = ()) -> PoolStats:
    """Every token's stats and the pool's; ``flagged``: secrets whose declared limit
    looks too high (the token monitor's finding)."""
    now = core.now()
    wall = time.time()
    calibration = core.calibration
    tokens = tuple(
        token_stats(slot, now, wall, slot.token.value in flagged, calibration.snapshot(slot))
        for slot in core.sched.slots.values()
    )
    counts = dict.fromkeys(TokenState, 0)
    for t in tokens:
        counts[t.state] += 1
    backend = core.backend
    return PoolStats(
        tokens=tokens,
        waiting=core.sched.waiting + (backend.waiting if backend is not None else 0),
        active=counts[TokenState.ACTIVE],
        cooling=counts[TokenState.COOLING],
        disabled=counts[TokenState.DISABLED],
        removed=counts[TokenState.REMOVED],
        in_flight=sum(t.in_flight for t in tokens),
        granted=core.granted,
        granted_per_second=core.grant_rate(now),
    )


def token_stats(
    slot: Slot, now: float, wall: float, too_high: bool, calibration: CalibrationSnapshot | None
) -> TokenStats:
    info = slot.info
    limits = tuple(str(w.limit) for w in slot.windows)
    declared, source = limits, "declared"
    if calibration is not None:
        declared = tuple(str(limit) for limit in calibration.declared)
        source = calibration.source.value
        too_high = calibration.limit_too_high
    return TokenStats(
        name=slot.name,
        state=slot.state(now),
        leases=slot.leases,
        ok=slot.ok,
        rate_limited=slot.rate_limited,
        errors=slot.errors,
        in_flight=slot.in_flight,
        cooldown_left=round(max(0.0, slot.cool_until - now), 9),
        reason=slot.reason,
        limits=limits,
        units=slot.units,
        headroom=round(max(0.0, slot.headroom(now)), 9),
        proven=slot.proven,
        last_limit=getattr(info, "limit", None),
        last_remaining=getattr(info, "remaining", None),
        last_reset=getattr(info, "reset_after", None),
        expires_in=None if slot.expires_at is None else slot.expires_at - wall,
        limit_too_high=too_high,
        declared_limits=declared,
        limit_source=source,
        usage=dict(slot.usage) if slot.usage else {},
        scope_cooldowns={
            scope: round(until - now, 9)
            for scope, until in (slot.scope_cool or {}).items()
            if until > now
        },
    )
