"""``PoolPort``: everything the Redis backend does to the pool it serves, in one place.

The backend decides leases itself, but the tokens, their counters and the loop belong
to the pool. Every read or write of the pool's state (its core, its scheduler, a slot's
counters, a window's level) goes through one method here and nowhere else in
``aurora_async._redis``, so when the pool core grows an operation for it, repointing the
backend is a change to this file. The methods say what they need from the pool.

Some of them repeat a rule the scheduler owns (a grant's counters, the cost check, the
spent-window rule): each says so, and names its reference.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .._core.buckets import AnyWindow, CalendarWindow, spent_levels
from .._core.limits import EACH_SCOPE, Limit
from .._core.scheduler import UNCAPPED, Slot
from .._errors import NoTokensAvailable, no_tokens_error
from .._pool.core import PoolCore

if TYPE_CHECKING:
    from .._pool.core import Queued

INF = math.inf
_US = 1_000_000


class PoolPort:
    """The pool, as the Redis backend may use it (bound once, by ``RedisBackend.bind``)."""

    __slots__ = ("_core",)

    def __init__(self) -> None:
        self._core: PoolCore | None = None

    def bind(self, core: PoolCore) -> None:
        """Serve the pool behind ``core``."""
        if self._core is not None and self._core is not core:
            raise RuntimeError("this RedisBackend already serves another pool; make one per pool")
        self._core = core

    @property
    def bound(self) -> bool:
        return self._core is not None

    @property
    def core(self) -> PoolCore:
        core = self._core
        if core is None:
            raise RuntimeError("RedisBackend.acquire before bind: pass it to TokenPool(backend=)")
        return core

    # -- the loop and its clock -------------------------------------------------------

    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The pool's loop, once it has one (``async with pool`` or a first lease)."""
        core = self._core
        return None if core is None else core.loop

    def now(self) -> float:
        """The pool's loop time; ``-inf`` before the pool has a loop."""
        loop = self.loop()
        return loop.time() if loop is not None else -INF

    def wall(self, now: float) -> float:
        """The wall clock (Unix time) at the loop time ``now``, as the pool's calendar
        quotas read it (``core.wall_clock`` when the pool was made, then the loop's
        clock)."""
        return now + self.core.sched.wall_offset

    def bind_loop(self) -> asyncio.AbstractEventLoop:
        """Bind the pool to the running loop (once), and return it."""
        return self.core.bind()

    @property
    def closed(self) -> bool:
        return self.core.closed

    # -- tokens -----------------------------------------------------------------------

    def slots(self) -> Iterable[tuple[str, Slot]]:
        """Every token slot of the pool, by secret (the secret only ever keys a map)."""
        return self.core.sched.slots.items()

    @property
    def max_cost(self) -> float:
        """The largest cost some usable token can take."""
        return self.core.sched.max_cost

    def cost_ok(self, cost: float) -> bool:
        """The scheduler's cost check, fast path only (``Scheduler.check_cost`` raises
        the reason when this is false)."""
        return self.core.sched.fits(cost)

    def check_cost(self, cost: float) -> None:
        """Raise at once for a lease no token can take (``Scheduler.check_cost``)."""
        self.core.sched.check_cost(cost)

    def no_tokens(self, cost: float) -> NoTokensAvailable:
        """The pool's error for a lease no usable token can take."""
        return no_tokens_error(self.core.sched.usable, cost)

    def declared(self, slot: Slot) -> tuple[tuple[Limit, ...], bool]:
        """``slot``'s declared limits, and whether the user declared them
        (``PoolCore.declared``)."""
        return self.core.declared(slot)

    def adopt(self, slot: Slot, limits: tuple[Limit, ...]) -> None:
        """Give ``slot`` the limits another worker's calibration learned for it, as the
        pool's calibration does with its own (``Scheduler.relimit``: the windows start
        full; the next reservation shows the shared levels), and keep it out of the
        scheduler's index."""
        core = self.core
        core.calibration.adopt(slot, limits)
        core.sched.relimit(slot, limits, core.now())
        self.unindex(slot)

    @staticmethod
    def capped(slot: Slot) -> bool:
        """``slot`` has an in-flight cap (``max_in_flight`` or the trial cap)."""
        return slot.cap < UNCAPPED

    def unindex(self, slot: Slot) -> None:
        """Keep ``slot`` out of the scheduler's own index, which a backend leaves unused
        (and whose bookkeeping, done on every change, would be wasted)."""
        self.core.sched.unindex(slot)

    @staticmethod
    def spent_windows(slot: Slot, seconds: float, scope: str | None = None) -> list[bool]:
        """The windows a cooldown of ``seconds`` fills when the API said the quota is
        spent: the one rule, ``spent_levels`` (which ``Scheduler.cool`` and the Lua
        ``token_op`` script follow too); for a ``scope``'s cooldown, over that scope's
        windows, for one call (as ``TokenSet.cool_scope``): those it declares, else its
        templates (``Limit(..., scope="*")``), which stand for the windows made from
        them for the scope."""
        if scope is None:
            windows = list(slot.windows)
            levels = spent_levels([w.limit for w in windows], slot.key_cost, seconds)
            return [level is not None for level in levels]
        mine = [w for w in slot.windows if w.scope == scope]
        if not mine:  # the scope's windows are made from templates: flag those
            mine = [w for w in slot.windows if w.scope == EACH_SCOPE]
        levels = spent_levels([w.limit for w in mine], 1.0, seconds) if mine else ()
        spent = {id(w) for w, level in zip(mine, levels, strict=True) if level is not None}
        return [id(w) in spent for w in slot.windows]

    @staticmethod
    def mirror(
        slot: Slot, undo: Sequence[str], server_now: int, now: float, scope: str | None = None
    ) -> None:
        """Show the shared buckets of ``slot``, as a reservation in ``scope`` left them
        (``undo``: "before after" per window it counts in: server times, or a calendar
        window's units used; the token's windows, then those made for the scope from
        its templates), in its own windows, which the pool reads for ``stats()``
        headroom and to tell whether a response's "nothing left" says more than the
        limiter already knows. Writes each window's level; the scope's windows made from
        templates are made here too, as a grant makes them (``MixedSlot.lease_windows``:
        none when the slot holds ``SCOPES_MAX`` scopes, none drained)."""
        windows: Sequence[AnyWindow] = slot.windows
        if scope is not None and len(undo) > 2 * len(windows):
            windows = slot.lease_windows(scope, now)
        for w, after in zip(windows, undo[1::2], strict=False):
            if isinstance(w, CalendarWindow):
                w.put(float(after), now)
            else:
                w.put(max(0.0, (int(after) - server_now) / _US * w.rate), now)

    # -- grants -------------------------------------------------------------------------

    def grant(self, lease: Queued, slot: Slot, cost: float, now: float) -> None:
        """Hand ``slot`` to ``lease`` at ``now``: the grant's bookkeeping (in_flight + 1,
        leases + 1, units + cost, the pool's grant count), as ``Scheduler.dispatch``
        does for the pool's own waiters."""
        lease.slot = slot
        lease.granted_at = now
        core = self.core
        core.sched.count_grant(slot, cost)
        core.count_grant(now)

    def refund(self, lease: Queued, slot: Slot, cost: float) -> None:
        """Undo :meth:`grant` for a lease cancelled before it resumed (in_flight - 1,
        leases - 1, units - cost, the pool's grant count - 1; a removed slot is dropped
        once idle), as ``Scheduler.refund`` and ``PoolCore.abandon`` do. The limiter
        state is the backend's: it gives the reservation back itself."""
        core = self.core
        lease.slot = None
        core.sched.uncount_grant(slot, cost)
        core.granted -= 1

    # -- token states another worker changed ----------------------------------------------

    def disable(self, slot: Slot, reason: str) -> None:
        """Disable ``slot`` locally (the pool calls back ``disabled``)."""
        self.core.disable(slot, reason)

    def enable(self, slot: Slot) -> None:
        """Enable ``slot`` locally, as ``pool.enable()`` does (the pool calls back
        ``enabled``)."""
        self.core.enable(slot, by_hand=False)
