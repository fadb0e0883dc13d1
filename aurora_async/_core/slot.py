"""``Slot``, ``Waiter`` and ``TokenState``: one token's record in the scheduler, and one
lease request waiting for a token.

A slot holds a token's limit windows (:class:`~.buckets.Window`), its state (cooling,
disabled, removed), its in-flight cap, its place in the index and its counters. Windows,
state, cap, index fields and the grant counters (``in_flight``, ``leases``, ``units``,
``epoch``) change only through the scheduler (``aurora_async._core.scheduler``: ``grant``,
``count_grant``, ``refund``, ``release``, ``cool``, ``unindex``, ...), which keeps the index
in step; the pool counts outcomes (``ok``, ``rate_limited``, ``errors``) itself.

To give a slot a new field: name it in ``__slots__`` (sorted) and set it in ``__init__``.
Nothing else here depends on the list.
"""

from __future__ import annotations

import enum
import math

from .buckets import AnyWindow, Window, fits_of, shape_of, window_for, window_like
from .costs import Costs, KeyCost, part_of, scope_of
from .expiry import jwt_expiry
from .lanes import Lane
from .limits import EACH_SCOPE, REQUESTS, Limit
from .tally import Run, fold
from .tokens import Token

#: Times within this many seconds count as equal: asyncio fires a timer when it is due
#: within the clock's resolution, and float arithmetic on times leaves crumbs this small.
EPS = 1e-9

INF = math.inf
#: The in-flight cap of a token without one.
UNCAPPED = 1 << 62
#: Scopes a token keeps windows of its ``EACH_SCOPE`` limits for before it forgets those
#: drained (more are kept while none has drained: the scopes in use within one window).
SCOPES_KEPT = 64
#: The most scopes a token holds windows of its ``EACH_SCOPE`` limits for at once (its
#: memory stays bounded however many scopes are asked): a lease in another scope waits
#: until one of them has drained, and is then made in its place.
SCOPES_MAX = 256


class TokenState(enum.StrEnum):
    """Where a token stands."""

    ACTIVE = "active"  #: takes leases
    COOLING = "cooling"  #: rate-limited by the server; takes leases again at a known time
    DISABLED = "disabled"  #: revoked or disabled by hand; takes no leases
    REMOVED = "removed"  #: dropped by a reload; finishes its in-flight calls


class Slot:
    """One token's place in the pool: its windows, state and counters."""

    __slots__ = (
        "backoff",
        "by_hand",
        "cap",
        "cool_until",
        "disabled",
        "epoch",
        "errors",
        "expires_at",
        "fits",
        "full_cap",
        "in_flight",
        "indexed",
        "info",
        "key_cost",
        "lane",
        "leases",
        "max_cost",
        "name",
        "ok",
        "proven",
        "rate_limited",
        "reason",
        "removed",
        "run",
        "scope_cool",
        "scoped",
        "seq",
        "tally",
        "token",
        "units",
        "vector",
        "windows",
    )

    #: Whether some window counts a resource other than requests (see :class:`MixedSlot`).
    mixed = False

    def __init__(
        self,
        token: Token,
        name: str,
        limits: tuple[Limit, ...],
        max_in_flight: int | None,
        trial_in_flight: int | None,
        now: float,
        wall_offset: float = 0.0,
    ) -> None:
        self.token = token
        self.name = name
        #: Scopes cooling (rate-limited in that scope only): scope -> until when.
        self.scope_cool: dict[str, float] | None = None
        self.set_limits(limits, now, wall_offset)
        self.full_cap = max_in_flight if max_in_flight is not None else UNCAPPED
        self.proven = trial_in_flight is None
        self.cap = self.full_cap if self.proven else min(self.full_cap, trial_in_flight or 1)
        self.cool_until = -INF
        self.backoff = 0.0
        self.disabled = False
        self.removed = False
        self.reason: str | None = None
        # Grant bookkeeping: changed only by the scheduler's grant, refund and release.
        self.in_flight = 0
        self.leases = 0
        self.units = 0.0
        # Units of other resources leased (``usage``): the dict, and the run of grants
        # of one cost not yet added to it (see tally.py).
        self.tally: dict[str, float] | None = None
        self.run: Run | None = None
        self.epoch = 0  # counts changes to the windows (see Scheduler.refund)
        # Its entry in the lane index (see lanes.py): ``seq`` of the current entry.
        self.seq = -1
        self.indexed = False
        self.lane: Lane[Slot] = _NO_LANE
        # Outcomes, counted by the pool.
        self.ok = 0
        self.rate_limited = 0
        self.errors = 0
        self.info: object = None  # the HTTP layer's last rate-limit reading
        self.by_hand = False  # disabled by pool.disable(): probes leave it alone
        self.expires_at = jwt_expiry(token.value)  # Unix time, for JWTs; else None

    def set_limits(
        self,
        limits: tuple[Limit, ...],
        now: float,
        wall_offset: float,
        keep: tuple[AnyWindow, ...] = (),
    ) -> None:
        """New windows for ``limits``, empty at ``now`` (the scheduler re-indexes the
        slot), but for those of ``keep`` whose limit is one of ``limits``: they stay as
        they are (with the windows made for scopes). A slot with a window of another
        resource than requests, or a quota on the calendar, becomes a
        :class:`MixedSlot`, and a plain one again when it has none. ``wall_offset``:
        Unix time less loop time (for calendar quotas)."""
        spare = list(keep)
        windows_: list[AnyWindow] = []
        for limit in limits:
            same = next((w for w in spare if w.limit == limit), None)
            if same is None:
                windows_.append(window_for(limit, now, wall_offset))
            else:
                spare.remove(same)
                windows_.append(same)
        self.windows = windows = tuple(windows_)
        if not keep:
            #: Windows made from ``EACH_SCOPE`` limits, by the scope they count.
            self.scoped: dict[str, tuple[AnyWindow, ...]] | None = None
        bursts = [w.burst for w in windows if w.unit == REQUESTS]
        self.max_cost = min(bursts) if bursts else INF
        plain = not any(limit.calendar or limit.scope for limit in limits)
        if len(bursts) == len(windows) and plain and not self.scope_cool:
            self.__class__ = Slot
            self.key_cost = min(1.0, self.max_cost)
        else:
            self.__class__ = MixedSlot
            self.key_cost = KeyCost(min(1.0, self.max_cost))
        #: The resource each window counts, if every window is a plain bucket of no
        #: scope (``None``: not so); and the units the key cost puts in each. A lease
        #: of several resources on such a token takes ``vector.take``.
        self.vector = shape = shape_of(windows)
        self.fits = fits_of(shape, float(self.key_cost))

    def part(self, window: AnyWindow, cost: float) -> float:
        """What a lease of ``cost`` takes from ``window``."""
        return float(cost)

    def lease_windows(self, scope: str | None, now: float | None = None) -> tuple[AnyWindow, ...]:
        """The windows a lease in ``scope`` may count in (its parts decide how much): the
        token's, and those made for ``scope`` from its ``EACH_SCOPE`` limits."""
        return self.windows

    def all_windows(self) -> tuple[AnyWindow, ...]:
        """Every window of the slot, those made for scopes included."""
        return self.windows

    @property
    def usage(self) -> dict[str, float] | None:
        """Units of the resources other than requests leased, by resource (``None``:
        none yet)."""
        run = self.run
        if run is not None and run.times:
            self.tally = fold(self.tally, run)
        return self.tally

    def usage_dict(self) -> dict[str, float]:
        """:attr:`usage`, made if there is none yet (to change it)."""
        usage = self.usage
        if usage is None:
            usage = self.tally = {}
        return usage

    def count_run(self, cost: Costs) -> None:
        """Count a grant of ``cost`` in the usage: one more of the run if the run is of
        ``cost`` (the usual loop), else after folding the run in, a new run of it."""
        run = self.run
        if run is None:
            self.run = Run(cost)
            return
        if run.cost is not cost:
            if run.times:
                self.tally = fold(self.tally, run)
            run.cost = cost
        run.times += 1

    def count_usage(self, cost: float, sign: float = 1.0) -> None:
        """Add (or with ``sign=-1``, take back) ``cost``'s other resources to the usage."""
        if isinstance(cost, Costs) and cost.parts:
            if sign == 1.0:
                self.count_run(cost)
                return
            usage = self.usage_dict()
            for unit, units in cost.parts.items():
                usage[unit] = usage.get(unit, 0.0) + sign * units

    @property
    def usable(self) -> bool:
        """Will take leases, now or once a cooldown ends."""
        return not (self.disabled or self.removed)

    def state(self, now: float) -> TokenState:
        if self.removed:
            return TokenState.REMOVED
        if self.disabled:
            return TokenState.DISABLED
        if self.cool_until > now:
            return TokenState.COOLING
        return TokenState.ACTIVE

    def ready(self, cost: float) -> float:
        """The earliest time this token can fire ``cost`` (ignoring in-flight caps).

        ``Window.ready_at`` inlined: this is the scheduler's innermost loop
        (``tests/core/test_inlined.py`` checks it against the reference)."""
        t = self.cool_until
        for w in self.windows:
            burst = w.burst
            if cost > burst:
                return INF
            r = w._last_check + (w._level + cost - burst) / w.rate
            if r > t:
                t = r
        return t

    def take(self, cost: float, now: float) -> float:
        """Put ``cost`` in every window at ``now`` (``Window.take`` inlined) and return
        the slot's new key: when it can next fire its key cost."""
        self.epoch += 1
        key = self.cool_until
        key_cost = self.key_cost
        windows = self.windows
        if len(windows) == 1:  # the usual single window, without the loop
            w = windows[0]
            rate = w.rate
            elapsed = now - w._last_check
            if elapsed > 0.0:
                level = w._level - elapsed * rate
                level = (level if level > 0.0 else 0.0) + cost
                w._last_check = now
            else:
                level = w._level + cost
            w._level = level
            r = w._last_check + (level + key_cost - w.burst) / rate
            return r if r > key else key
        for w in windows:
            rate = w.rate
            elapsed = now - w._last_check
            if elapsed > 0.0:
                level = w._level - elapsed * rate
                level = (level if level > 0.0 else 0.0) + cost
                w._last_check = now
            else:
                level = w._level + cost
            w._level = level
            r = w._last_check + (level + key_cost - w.burst) / rate
            if r > key:
                key = r
        return key

    def headroom(self, now: float) -> float:
        """Units it could take at ``now``: the least room left in any window."""
        return min(w.burst - w.level_at(now) for w in self.windows)

    def __repr__(self) -> str:
        cap = self.cap if self.cap < UNCAPPED else "∞"
        flags = (" disabled" if self.disabled else "") + (" removed" if self.removed else "")
        return (
            f"<Slot {self.name} in_flight={self.in_flight}/{cap}"
            f" key={self.ready(self.key_cost):.6f}{flags}>"
        )


class MixedSlot(Slot):
    """A slot with windows of several resources (``Limit.unit``), a quota on the calendar
    (``Limit.daily``), windows of a scope (``Limit.scope``) or a scope cooling: each
    window takes its own part of a lease's cost (:func:`~.costs.part_of`; a plain number
    is requests) through its own methods, and only a lease of its scope counts in a
    scoped window (or waits for a scope's cooldown).

    Its key cost is a :class:`~.costs.KeyCost`: the requests key cost, nothing of the
    other resources and no scope, so its key is when it fires one request with every
    window that counts every lease out of debt: a lower bound for any lease. No lease's
    cost equals it, so the scheduler's inlined scalar paths never take a mixed slot, and
    these methods decide for it."""

    __slots__ = ()

    mixed = True

    def part(self, window: AnyWindow, cost: float) -> float:
        scope = window.scope
        if scope is not None and scope != scope_of(cost):
            return 0.0
        return part_of(cost, window.unit)

    def ready(self, cost: float) -> float:
        t = self.cool_until
        requests = float(cost)
        parts: dict[str, float] | None = None
        scope: str | None = None
        if isinstance(cost, Costs):
            parts, scope = cost.parts, cost.scope
            if scope is not None and self.scope_cool:
                until = self.scope_cool.get(scope, -INF)
                if until > t:
                    t = until
        own = False  # whether the token declares windows of this very scope
        templates: list[AnyWindow] | None = None
        for w in self.windows:
            if w.scope is not None and w.scope != scope:
                if w.scope == EACH_SCOPE and scope is not None:
                    templates = [w] if templates is None else [*templates, w]
                continue  # another scope's window: not this lease's business
            own = own or w.scope is not None
            unit = w.unit
            units = requests if unit == REQUESTS else (parts.get(unit, 0.0) if parts else 0.0)
            if type(w) is Window:  # Window.ready_at, inlined
                burst = w.burst
                if units > burst:
                    return INF
                r = w._last_check + (w._level + units - burst) / w.rate
            else:
                r = w.ready_at(units)  # inf if it exceeds the burst
            if r > t:
                t = r
        if templates is not None and not own:
            made = self.scoped.get(scope) if self.scoped and scope is not None else None
            if made is None and self.scoped and len(self.scoped) >= SCOPES_MAX:
                room = self.first_drain()  # full of scopes: one must drain first
                if room > t:
                    t = room
            for w in made or templates:  # not made yet: as empty as a new window
                unit = w.unit
                units = requests if unit == REQUESTS else (parts.get(unit, 0.0) if parts else 0.0)
                r = w.ready_at(units) if made else (-INF if units <= w.burst else INF)
                if r > t:
                    t = r
        return t

    def take(self, cost: float, now: float) -> float:
        """Each window takes its part (``part``), and the new key is
        ``ready(key_cost)``: both in one pass (a window's key depends on it alone)."""
        self.epoch += 1
        requests = float(cost)
        parts: dict[str, float] | None = None
        scope: str | None = None
        if isinstance(cost, Costs):
            parts, scope = cost.parts, cost.scope
        key_requests = float(self.key_cost)
        key = self.cool_until
        for w in self.lease_windows(scope, now):
            wscope = w.scope
            if wscope is not None and wscope != scope:
                continue  # another scope's: takes nothing, and no part of the key
            if w.unit == REQUESTS:
                units = requests
                fits = key_requests
            else:
                units = parts.get(w.unit, 0.0) if parts else 0.0
                fits = 0.0
            if type(w) is Window:  # Window.take and Window.ready_at, inlined
                if units:
                    elapsed = now - w._last_check
                    if elapsed > 0.0:
                        level = w._level - elapsed * w.rate
                        w._level = (level if level > 0.0 else 0.0) + units
                        w._last_check = now
                    else:
                        w._level += units
                burst = w.burst
                r = INF if fits > burst else w._last_check + (w._level + fits - burst) / w.rate
            else:
                if units:
                    w.take(units, now)
                r = w.ready_at(fits)
            if wscope is None and r > key:
                key = r  # a scoped window counts in no key: the key cost has no scope
        return key

    def lease_windows(self, scope: str | None, now: float | None = None) -> tuple[AnyWindow, ...]:
        """The windows a lease in ``scope`` may count in: the token's, and the scope's
        own made from its ``EACH_SCOPE`` limits (made now, at ``now``, if the token
        declares none of that scope and has none made yet; without ``now``, none is
        made)."""
        windows = self.windows
        if scope is None:
            return windows
        made = self.scoped.get(scope) if self.scoped else None
        if made is not None:
            return windows + made
        if now is None or any(w.scope == scope for w in windows):
            return windows
        templates = [w for w in windows if w.scope == EACH_SCOPE]
        if not templates:
            return windows
        made = tuple(window_like(w, scope, now) for w in templates)
        scoped = self.scoped
        if scoped is None:
            scoped = self.scoped = {}
        elif len(scoped) >= SCOPES_KEPT:  # forget the drained: as good as new ones
            for name in [n for n, ws in scoped.items() if all(w.level_at(now) <= 0.0 for w in ws)]:
                del scoped[name]
            if len(scoped) >= SCOPES_MAX:
                # A grant waited (ready) for the first to drain: it has, within the float
                # crumbs drains_at may leave, and goes. Else (a 429's cooldown filling a
                # new scope's windows) none is made: the cooldown alone holds the scope.
                first = min(scoped, key=lambda n: _drain_time(scoped[n]))
                if _drain_time(scoped[first]) > now + EPS:
                    return windows
                del scoped[first]
        scoped[scope] = made
        return windows + made

    def first_drain(self) -> float:
        """When the first of the scopes made from ``EACH_SCOPE`` limits drains (and
        may be forgotten): the earliest time a token full of scopes takes a new one."""
        return min((_drain_time(ws) for ws in (self.scoped or {}).values()), default=-INF)

    def all_windows(self) -> tuple[AnyWindow, ...]:
        scoped = self.scoped
        if not scoped:
            return self.windows
        return self.windows + tuple(w for made in scoped.values() for w in made)

    def headroom(self, now: float) -> float:
        """Requests it could take at ``now`` in no scope (``inf`` if no window counts
        them)."""
        rooms = [
            w.burst - w.level_at(now)
            for w in self.windows
            if w.unit == REQUESTS and w.scope is None
        ]
        return min(rooms) if rooms else INF


def _drain_time(windows: tuple[AnyWindow, ...]) -> float:
    """When every one of ``windows`` is empty, if nothing more is put in them."""
    return max(w.ready_at(w.burst) for w in windows)


_NO_LANE: Lane[Slot] = Lane()  # a slot's lane until the scheduler files it


class Waiter:
    """One lease request waiting in the queue."""

    __slots__ = (
        "cost",
        "deadline",
        "enqueued_at",
        "epoch",
        "granted_at",
        "live",
        "order",
        "slot",
        "undo",
    )

    def __init__(self, cost: float, deadline: float, enqueued_at: float) -> None:
        self.cost = cost
        self.deadline = deadline
        self.enqueued_at = enqueued_at
        self.live = True  # still waiting: neither granted, expired, failed nor cancelled
        self.slot: Slot | None = None
        self.granted_at = 0.0
        self.order = 0  # its place in arrival order (set when queued)
        self.epoch = -1  # the token's epoch right after this grant (see Scheduler.refund)
        self.undo: tuple[float, ...] = ()  # its windows' state right before it


def state_of(slot: Slot) -> tuple[float, ...]:
    """Every window's (level, last check), flat: what a refund may restore."""
    state: list[float] = []
    for w in slot.windows:  # (put_state does not use it for a slot with scope windows)
        state += (w._level, w._last_check)
    return tuple(state)


def put_state(slot: Slot, undo: tuple[float, ...]) -> bool:
    """Put back what :func:`state_of` saw; ``False`` (nothing put back: the caller gives
    back the lease's parts instead) for a slot with windows made for scopes, which a
    grant may have made or forgotten (the saved states would no longer line up)."""
    if slot.scoped:
        return False
    windows = slot.windows
    if 2 * len(windows) != len(undo):
        return False
    for i, w in enumerate(windows):
        w._level, w._last_check = undo[2 * i], undo[2 * i + 1]
    return True


def drained(slot: Slot, now: float) -> bool:
    """Nothing left of the slot's past: empty buckets, no cooldown, not disabled
    (from :func:`drains_at` on, as long as nothing changes the slot)."""
    return (
        not slot.disabled
        and slot.cool_until <= now
        and all(w.level_at(now) == 0.0 for w in slot.all_windows())
    )


def drains_at(slot: Slot) -> float:
    """When :func:`drained` becomes true if nothing changes the slot: its cooldown's end
    or its fullest window's drain, whichever is later; ``INF`` while it is disabled.
    (Float crumbs may leave it a hair early: check :func:`drained` at that time.)"""
    if slot.disabled:
        return INF
    t = slot.cool_until
    for w in slot.all_windows():
        at = w.ready_at(w.burst)  # when the whole burst fits again: the bucket is empty
        if at > t:
            t = at
    return t
