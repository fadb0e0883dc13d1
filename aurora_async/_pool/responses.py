"""What an HTTP response means for its token: the HTTP layer's report to the pool.

The policy (``aurora_async._core.policy``) turns a response into an :class:`Outcome`;
this applies it to the lease, so a response reaches the token the same way a lease's
own report does (:meth:`Lease.rate_limited`, :meth:`Lease.revoked`, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._core.buckets import CalendarWindow
from .._core.headers import RateLimitInfo
from .._core.policy import Outcome, Verdict
from .core import PoolCore
from .lease import Lease, lease_slot

if TYPE_CHECKING:
    from .._core.vendor_headers import ResourceReading


def account_response(
    core: PoolCore, lease: Lease, outcome: Outcome, info: RateLimitInfo, slack: float
) -> None:
    """Report ``outcome`` on ``lease``; keep the headers' reading on its token (and let
    its calibration read them).

    ``OK`` with a cooldown (the server says nothing is left until a reset) rests the
    token only if its own limiter would not hold it that long anyway (``slack`` seconds
    of tolerance)."""
    slot = lease_slot(lease)
    if slot is None:
        raise RuntimeError("this lease has not been granted yet: use it inside `async with`")
    if info.limit is not None or info.remaining is not None or info.reset_after is not None:
        slot.info = info
        if lease.scope is None:  # a scope's headers speak for that scope, not the token
            core.calibration.headers(slot, info)
    verdict = outcome.verdict
    if verdict is Verdict.OK:
        lease.succeeded()
        if outcome.cooldown:
            lease.exhausted(outcome.cooldown, slack)
    elif verdict is Verdict.RATE_LIMITED:
        lease.rate_limited(outcome.cooldown)
    elif verdict is Verdict.REVOKED:
        lease.revoked(outcome.reason or "revoked by the server")
    elif verdict is Verdict.CLIENT_ERROR:
        lease.client_error()
    else:
        lease.failed()


def account_levels(core: PoolCore, lease: Lease, readings: Sequence[ResourceReading]) -> None:
    """The API said how much of a resource is left (``remaining`` of ``limit``): each
    window of the lease's token counting that resource with that very limit as its burst
    (and the reading's scope, if the API names one and the window has one) counts at
    least ``limit - remaining`` as used. Only ever raised: the pool's own count already
    holds what it granted since the server answered. First, the token's per-minute
    windows take the size the server states (``Calibration.stated``), where they may."""
    slot = lease_slot(lease)
    if slot is None:
        return
    core.calibration.stated(slot, readings)  # per-minute windows sized as the server says
    now = core.now()
    touched = False
    for reading in readings:
        if reading.limit is None or reading.remaining is None:
            continue
        used = reading.limit - reading.remaining
        for window in slot.lease_windows(lease.scope):
            if (
                window.unit == reading.resource
                and window.burst == reading.limit
                and (window.scope is None or window.scope in (reading.scope, lease.scope))
                and window.level_at(now) < used
            ):
                window.put(used, now)
                touched = True
    if touched:
        core.sched.touched(slot)


def calendar_reset(core: PoolCore, lease: Lease, resource: str | None) -> float | None:
    """Seconds until the lease's token gets its quota back by its own declaration: the
    soonest next reset of its calendar windows (``Limit.daily``, ``Limit.monthly``) that
    count ``resource`` (any resource when ``None``) in the lease's scope, on the pool's
    wall clock; ``None`` when it has none. For a refusal that says a quota is spent but
    not until when."""
    slot = lease_slot(lease)
    if slot is None:
        return None
    scope = lease.scope
    wall = core.now() + core.sched.wall_offset
    resets = [
        w.calendar.next_reset(wall)
        for w in slot.lease_windows(scope)  # (those made for the scope from a template too)
        if isinstance(w, CalendarWindow)
        and (resource is None or w.unit == resource)
        and (w.scope is None or w.scope == scope)
    ]
    return None if not resets else min(resets) - wall
