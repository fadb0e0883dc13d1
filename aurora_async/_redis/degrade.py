"""The local limiter a worker falls back on while Redis is unreachable (``degrade``).

Pure arithmetic on the loop's clock: the same GCRA the Lua scripts run on the server's,
one theoretical arrival time (``tat``) per window, each window scaled to ``share`` of
its limit:

* rate' = ``share * rate``;
* burst' = ``max(share * burst, min(burst, 1))``, so a unit lease still fits a window
  whose burst share falls below one unit.

Every window starts *full* as of ``full_at`` (its ``tat`` is ``full_at + burst' /
rate'``): the worker does not know how much of the shared bucket the others have just
used, so it assumes all of it (``docs/redis.md`` has the bound this keeps across the
switch). A lease whose cost exceeds burst' (but not the real burst) fits once the local
bucket is empty, and is then charged in full: over any interval ``t`` one worker leases
at most ``max(burst', cost) + rate' * t`` units of a window. With ``n`` workers and
``share <= 1 / n`` (and ``share * burst`` at least every lease's cost), the namespace
stays within ``burst + rate * t``.

A template (``Limit(..., scope="*")``) is one local window for all the scopes made from
it in Redis: it counts the leases of every scope the token does not declare, together
(each scope on its own would fit its own window; all of them in one is the safe side,
and needs no scopes made while Redis is away). A scope's 429 that says its quota is
spent fills it, so it holds every such scope until then.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .._core.costs import part_of, scope_of
from .._core.limits import EACH_SCOPE, REQUESTS, Limit

INF = float("inf")


class _Window(Protocol):
    burst: float
    rate: float
    unit: str
    scope: str | None
    limit: Limit


class LocalWindow:
    """One window of one token at ``share`` of its limit, full as of ``full_at``; it
    counts the resource ``unit`` of the leases in ``scope`` (``None``: every lease).

    A ``quota`` on the calendar (``Limit.daily``) is kept in Redis only: its local
    window takes nothing while Redis is away (a lease whose part there is 0 passes).
    Full as the others, it could refill only at a reset, and the units it granted then
    would be missing from the shared count when Redis is back."""

    __slots__ = ("burst", "declared", "quota", "rate", "scope", "tat", "unit")

    def __init__(
        self,
        burst: float,
        rate: float,
        share: float,
        full_at: float,
        unit: str = REQUESTS,
        scope: str | None = None,
        quota: bool = False,
        declared: frozenset[str] = frozenset(),
    ) -> None:
        self.quota = quota
        #: for a template's window: the scopes the token declares windows of (their
        #: leases do not count in templates)
        self.declared = declared
        self.burst = max(burst * share, min(burst, 1.0))
        self.rate = rate * share
        self.tat = full_at + self.burst / self.rate
        self.unit = unit
        self.scope = scope

    def part(self, cost: float) -> float | None:
        """What a lease of ``cost`` takes here (``None``: another scope's lease)."""
        if not self.counts(scope_of(cost)):
            return None
        return part_of(cost, self.unit)

    def counts(self, scope: str | None) -> bool:
        """Whether this window counts the leases of ``scope``: a template's local window
        counts those of every scope the token does not declare (all of them in one)."""
        scope_ = self.scope
        if scope_ == EACH_SCOPE:
            return scope is not None and scope not in self.declared
        return scope_ is None or scope_ == scope

    def ready(self, cost: float) -> float:
        """When ``cost`` fits (with the empty-bucket rule for costs above burst')."""
        if self.quota:
            return INF if cost > 0.0 else -INF
        if cost > self.burst:
            return self.tat
        return self.tat + (cost - self.burst) / self.rate

    def take(self, cost: float, at: float) -> tuple[float, float]:
        """Charge ``cost`` at ``at``; returns (tat before, tat after) for a give-back."""
        before = self.tat
        self.tat = max(before, at) + cost / self.rate
        return before, self.tat

    def units(self, now: float) -> float:
        """Units still in the bucket at ``now``."""
        return max(0.0, (self.tat - now) * self.rate)

    def __repr__(self) -> str:
        return f"<LocalWindow burst={self.burst:g} rate={self.rate:g}/s tat={self.tat:.6f}>"


Undo = list[tuple[float, float]]


class LocalLimiter:
    """Every token's local windows while degraded, by token id, created on first use
    (full as of ``full_at``, whenever that is)."""

    __slots__ = ("_buckets", "full_at", "share")

    def __init__(self, share: float, full_at: float) -> None:
        self.share = share
        self.full_at = full_at
        self._buckets: dict[str, tuple[LocalWindow, ...]] = {}

    def windows(self, tid: str, limits: Iterable[_Window]) -> tuple[LocalWindow, ...]:
        found = self._buckets.get(tid)
        if found is None:
            limits = tuple(limits)
            declared = frozenset(w.scope for w in limits if w.scope not in (None, EACH_SCOPE))
            found = self._buckets[tid] = tuple(
                LocalWindow(
                    w.burst,
                    w.rate,
                    self.share,
                    self.full_at,
                    w.unit,
                    w.scope,
                    quota=w.limit.calendar is not None,
                    declared=declared,
                )
                for w in limits
            )
        return found

    def ready(self, tid: str, limits: Iterable[_Window], cost: float) -> float:
        """The earliest loop time the token's local windows take ``cost`` (each its own
        part of it: a window of a resource the lease does not name still waits while in
        debt; another scope's window does not count)."""
        t = -INF
        for w in self.windows(tid, limits):
            units = w.part(cost)
            if units is not None:
                t = max(t, w.ready(units))
        return t

    def take(self, tid: str, limits: Iterable[_Window], cost: float, at: float) -> Undo:
        undo = []
        for w in self.windows(tid, limits):
            units = w.part(cost)
            undo.append(w.take(units, at) if units else (w.tat, w.tat))
        return undo

    def adjust(
        self,
        tid: str,
        limits: Iterable[_Window],
        deltas: dict[str, float],
        scope: str | None,
        now: float,
    ) -> None:
        """A lease's true cost differed from its reservation by ``deltas`` (unit ->
        units; ``scope``: the lease's): less comes back now (never below an empty
        bucket), more is debt (``Lease.settle``)."""
        for w in self.windows(tid, limits):
            delta = deltas.get(w.unit, 0.0)
            if delta and not w.quota and w.counts(scope):
                w.tat = max(now, max(w.tat, now) + delta / w.rate)

    def fill(
        self, tid: str, limits: Iterable[_Window], flags: Iterable[bool], until: float, kc: float
    ) -> None:
        """Leave the flagged windows full as of ``until`` (all but ``kc`` units): after a
        cooldown because the quota was spent, the token resumes at its steady rate."""
        for w, flag in zip(self.windows(tid, limits), flags, strict=False):
            if flag:
                w.tat = max(w.tat, until + (w.burst - min(kc, w.burst)) / w.rate)

    def relimit(self, tid: str, limits: Iterable[_Window], now: float) -> None:
        """The token's limits changed: new local windows, carried over as the shared
        ones are (``lua.carry``: an unchanged window keeps its state; a changed one
        starts full and holds at least what an old window still has reserved)."""
        old = self._buckets.pop(tid, None)
        if old is None:
            return  # made from the new limits on first use
        new = self.windows(tid, limits)
        for w in new:
            same = [o for o in old if (o.burst, o.rate) == (w.burst, w.rate)]
            if same:
                w.tat = same[0].tat
                continue
            carried = min(
                max(o.tat, now + max(w.burst, max(0.0, o.tat - now) * o.rate) / w.rate) for o in old
            )
            w.tat = max(w.tat, carried)  # (and never less than full as of ``full_at``)

    def give_back(self, tid: str, undo: Undo) -> bool:
        """Undo a ``take`` exactly if nothing was taken on the token since."""
        windows = self._buckets.get(tid)
        if windows is None or len(windows) != len(undo):
            return False
        if any(w.tat != after for w, (_, after) in zip(windows, undo, strict=True)):
            return False
        for w, (before, _) in zip(windows, undo, strict=True):
            w.tat = before
        return True

    def __len__(self) -> int:
        return len(self._buckets)
