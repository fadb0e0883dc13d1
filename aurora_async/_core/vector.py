"""The fast paths of a lease of several resources (a :class:`~.costs.Costs`) on a token
whose windows are plain leaky buckets of no scope: ``Limit(500, per=60)`` on requests
beside ``Limit(200_000, per=60, unit="tokens")``, the usual LLM key.

Such a token has a *vector shape*: the resource each of its windows counts, in order
(``("requests", "tokens")``), and the units its key cost puts in each (its requests key
cost, nothing of the others). A cost keeps, in :attr:`Costs.plan`, the units it takes
from each window of the last shape it was leased on, so a loop leasing the same cost
reads one tuple instead of looking every part up by name.

:func:`take` is ``MixedSlot.ready``, ``MixedSlot.take`` and the grant's bookkeeping in
one pass, for the top of the index (any number of windows); ``VectorTakes.try_take_vector``
(a base of the scheduler, which ``Lease.__aenter__`` calls for a ``Costs``) is the whole
lease in one frame for the usual case, two windows, unrolled; :func:`settle` is
``Scheduler.settle``'s window arithmetic. They read and write the windows' bucket state
directly, as the scheduler's other inlined paths do, and ``tests/core/test_vector.py``
checks them against the general path on random histories. Tokens with scoped windows,
calendar quotas or a lease in a scope take the general path (``MixedSlot``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .costs import Costs
from .lanes import Lane
from .limits import REQUESTS

if TYPE_CHECKING:
    from .slot import Slot

EPS = 1e-9  # as slot.EPS (not imported: slot imports this module)
_INF = float("inf")


def amounts(cost: Costs, shape: tuple[str, ...]) -> tuple[float, ...] | None:
    """The units ``cost`` takes from each window of ``shape``; ``None`` for a cost the
    fast path leaves to the general one (a scope, requests not above 0, a part below 0
    or not finite: the general path's checks say what is wrong)."""
    requests = float(cost)
    if cost.scope is not None or not 0.0 < requests < _INF:
        return None
    parts = cost.parts
    if any(not 0.0 <= units < _INF for units in parts.values()):
        return None
    return tuple(requests if unit == REQUESTS else parts.get(unit, 0.0) for unit in shape)


def take(slot: Slot, cost: Costs, now: float) -> float | None:
    """Lease ``slot``, due at ``now`` (its index key, when it fires its key cost, is
    past), for ``cost`` if every window has room for its part now: take the parts and
    count the lease. Returns the slot's new key (the caller moves its index entry), or
    ``None``: nothing changed (the general path decides)."""
    shape: tuple[str, ...] = slot.vector  # type: ignore[assignment]  # (a vector slot)
    plan = cost.plan
    if plan is None or plan[0] is not shape:
        plan = (shape, amounts(cost, shape))
        cost.plan = plan
    units = plan[1]
    if units is None:
        return None
    windows = slot.windows
    limit = now + EPS
    for i, w in enumerate(windows):
        n = units[i]
        burst = w.burst
        if n > burst or w._last_check + (w._level + n - burst) / w.rate > limit:
            return None
    key = slot.cool_until
    fits = slot.fits
    for i, w in enumerate(windows):
        n = units[i]
        if n:
            w.take(n, now)
        r = w._last_check + (w._level + fits[i] - w.burst) / w.rate
        if r > key:
            key = r
    # count_grant, inlined
    slot.epoch += 1
    slot.in_flight += 1
    slot.leases += 1
    slot.units += cost
    run = slot.run  # Slot.count_run, inlined for its usual case
    if run is not None and run.cost is cost:
        run.times += 1
    else:
        slot.count_run(cost)
    return key


def settle(slot: Slot, reserved: float, actual: float, now: float) -> tuple[float, bool]:
    """Put the difference between ``actual`` and ``reserved`` (neither in a scope) in
    each of ``slot``'s windows at ``now`` (``Window.adjust``: less comes back, never below
    an empty bucket; more is debt). Returns the slot's new key, and whether some window
    got capacity back."""
    requests = float(actual) - float(reserved)
    mine = actual.parts if type(actual) is Costs else None
    before = reserved.parts if type(reserved) is Costs else None
    key = slot.cool_until
    freed = False
    shape: tuple[str, ...] = slot.vector  # type: ignore[assignment]
    fits = slot.fits
    for i, w in enumerate(slot.windows):
        unit = shape[i]
        if unit == REQUESTS:
            delta = requests
        else:
            delta = (mine.get(unit, 0.0) if mine else 0.0) - (
                before.get(unit, 0.0) if before else 0.0
            )
        last = w._last_check
        if delta:
            if now > last:
                level = w._level - (now - last) * w.rate
                level = (level if level > 0.0 else 0.0) + delta
                w._last_check = last = now
            else:
                level = w._level + delta
            w._level = level = level if level > 0.0 else 0.0
            if delta < 0.0:
                freed = True
        else:
            level = w._level
        r = last + (level + fits[i] - w.burst) / w.rate
        if r > key:
            key = r
    return key, freed


class VectorTakes:
    """A base of the scheduler: the lease of several resources at once, inlined end to
    end for its usual case (``Lease.__aenter__`` calls it for a ``Costs``)."""

    waiting: int
    _lane_list: list[Lane[Slot]]
    _next_seq: Callable[[], int]

    if TYPE_CHECKING:

        def try_take(self, cost: float, now: float) -> Slot | None: ...

    def try_take_vector(self, cost: Costs, now: float) -> Slot | None:
        """``try_take`` for ``cost``: when nobody waits, the pool has one lane and its
        front, due now, is a token of two plain windows (the usual LLM key: requests and
        tokens) with room for both parts, that token is leased here in one frame (the
        check and take of :func:`take`, unrolled, with ``count_grant`` and the index
        move of ``try_take``); in every other case, ``try_take`` decides."""
        lanes = self._lane_list
        if self.waiting or len(lanes) != 1:
            return self.try_take(cost, now)
        lane = lanes[0]
        fifo = lane.fifo
        if not fifo or lane.heap:
            return self.try_take(cost, now)
        top = fifo[0]
        slot = top[2]
        shape = slot.vector
        limit = now + EPS
        if slot.seq != top[1] or top[0] > limit or shape is None or len(shape) != 2:
            return self.try_take(cost, now)
        plan = cost.plan
        if plan is None or plan[0] is not shape:
            plan = (shape, amounts(cost, shape))
            cost.plan = plan
        units = plan[1]
        if units is None:
            return self.try_take(cost, now)
        a, b = slot.windows
        na, nb = units
        fa, fb = slot.fits
        burst = a.burst  # (``top`` is due: a part no larger than the key's fits)
        if na > fa and (na > burst or a._last_check + (a._level + na - burst) / a.rate > limit):
            return self.try_take(cost, now)
        burst = b.burst
        if nb > burst or b._last_check + (b._level + nb - burst) / b.rate > limit:
            return self.try_take(cost, now)
        if na:  # Window.take, then the key: when it fires its key cost again
            elapsed = now - a._last_check
            if elapsed > 0.0:
                level = a._level - elapsed * a.rate
                a._level = (level if level > 0.0 else 0.0) + na
                a._last_check = now
            else:
                a._level += na
        key = a._last_check + (a._level + fa - a.burst) / a.rate
        if nb:
            elapsed = now - b._last_check
            if elapsed > 0.0:
                level = b._level - elapsed * b.rate
                b._level = (level if level > 0.0 else 0.0) + nb
                b._last_check = now
            else:
                b._level += nb
        r = b._last_check + (b._level + fb - b.burst) / b.rate
        if r > key:
            key = r
        if slot.cool_until > key:
            key = slot.cool_until
        slot.epoch += 1  # count_grant
        in_flight = slot.in_flight = slot.in_flight + 1
        slot.leases += 1
        slot.units += cost
        run = slot.run  # Slot.count_run, inlined for its usual case
        if run is not None and run.cost is cost:
            run.times += 1
        else:
            slot.count_run(cost)
        fifo.popleft()
        if in_flight >= slot.cap:
            slot.seq = -1
            slot.indexed = False
            return slot
        seq = top[1]  # its old entry is gone: it keeps its number for a later key
        if key <= top[0]:  # (as ``_take_top``)
            seq = slot.seq = self._next_seq()
        if not fifo or key >= fifo[-1][0]:
            fifo.append((key, seq, slot))
        else:
            lane.push((key, seq, slot))
        return slot
