"""A discrete-event driver for the pure scheduler, the way the asyncio shell drives it.

Property tests run random workloads through it and check the guarantees of DESIGN.md on
what it records, with plain arithmetic that does not reuse the scheduler's own code
(except ``Slot.ready`` where the guarantee is about what the scheduler could do).

Besides requests, a run may take :class:`TokenEvent`: a token disabled or enabled by hand
(``pool.disable``/``pool.enable``), or left out of a reload and put back by a later one
(``pool.replace_tokens``). They are applied the way the pool applies them, including its
``_after_token_change``: waiters no usable token can serve fail at once.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from aurora_async import Limit, NoTokensAvailable, Token
from aurora_async._core.costs import part_of, scope_of
from aurora_async._core.scheduler import EPS, INF, Scheduler, Slot, Waiter


@dataclass
class TokenSpec:
    limits: tuple[Limit, ...]
    max_in_flight: int | None = None


@dataclass
class Request:
    at: float  # arrival
    cost: float
    hold: float  # how long the lease is held once granted
    timeout: float | None = None
    cancel_after: float | None = None  # cancel this long after arrival, if still waiting
    abandon: bool = False  # cancelled the instant it is granted (before it could resume)
    cool: float | None = None  # when released, the server said 429: cool the token this long


@dataclass
class TokenEvent:
    at: float
    kind: str  # "disable", "enable", "remove" (a reload without it), "restore" (with it again)
    token: int  # index in the specs


#: Token event kinds.
TOKEN_EVENTS = ("disable", "enable", "remove", "restore")


@dataclass
class Outcome:
    request: int
    # "granted", "expired", "cancelled", "rejected" (ValueError at once: the cost is above
    # every token's burst), "failed" (NoTokensAvailable: at once on arrival, or while
    # queued when the last usable token that could serve it goes)
    kind: str
    at: float
    slot: int = -1  # index of the token, for grants
    seq: int = -1  # global order of grants


@dataclass
class Run:
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    grants: list[tuple[float, int, float]] = field(default_factory=list)  # (time, slot, cost)
    violations: list[str] = field(default_factory=list)
    head_reservations: dict[int, float] = field(default_factory=dict)  # first T as head
    slots: list[Slot] = field(default_factory=list)  # each token's current slot
    still_waiting: int = 0  # waiters left in the queue when nothing more could happen


def simulate(
    specs: list[TokenSpec],
    requests: list[Request],
    *,
    check_idle: bool = True,
    trial_in_flight: int | None = None,
    token_events: list[TokenEvent] | tuple[TokenEvent, ...] = (),
) -> Run:
    sched = Scheduler(trial_in_flight=trial_in_flight)
    run = Run()
    tokens = [Token(f"secret-token-value-{i:04d}") for i in range(len(specs))]
    for i, spec in enumerate(specs):
        run.slots.append(sched.add(tokens[i], f"t{i}", spec.limits, spec.max_in_flight, 0.0))
    index = {id(slot): i for i, slot in enumerate(run.slots)}
    every_slot = list(run.slots)  # keeps each id() unique for the run
    present = set(range(len(specs)))  # the tokens of the current "file"

    # Event queue: (time, priority, seq, kind, payload). At equal times: cancels, then
    # releases, then token events (in their order), then arrivals, then the timer, as
    # they would interleave in a loop turn.
    events: list[tuple[float, int, int, str, int]] = []
    counter = 0

    def push(at: float, prio: int, kind: str, payload: int) -> None:
        nonlocal counter
        counter += 1
        heapq.heappush(events, (at, prio, counter, kind, payload))

    for eid, event in enumerate(token_events):
        push(event.at, 2, "token", eid)
    for rid, req in enumerate(requests):
        push(req.at, 3, "arrive", rid)
    waiters: dict[int, Waiter] = {}
    waiter_ids: dict[int, int] = {}  # id(waiter) -> request id
    held: dict[int, Slot] = {}
    armed = INF
    grant_seq = 0

    def record_grant(rid: int, slot: Slot, now: float) -> None:
        nonlocal grant_seq
        grant_seq += 1
        run.outcomes[rid] = Outcome(rid, "granted", now, index[id(slot)], grant_seq)
        run.grants.append((now, index[id(slot)], requests[rid].cost))
        held[rid] = slot
        push(now + requests[rid].hold, 1, "release", rid)

    def dispatch(now: float) -> None:
        nonlocal armed
        granted, expired, wake = sched.dispatch(now)
        refunded = False
        for w in granted:
            assert w.slot is not None
            rid = waiter_ids[id(w)]
            if requests[rid].abandon:
                # the shell's _abandon: the token goes back at once
                run.outcomes[rid] = Outcome(rid, "cancelled", now)
                refunded = sched.refund(w.slot, w.cost, w.granted_at, now, w) or refunded
            else:
                record_grant(rid, w.slot, now)
        for w in expired:
            rid = waiter_ids[id(w)]
            run.outcomes[rid] = Outcome(rid, "expired", now)
        if refunded:
            dispatch(now)
            return
        # the shell's _arm: keep an earlier timer, replace a later one, cancel on inf
        if wake == INF:
            armed = INF
        elif wake < armed:
            armed = wake
            push(wake, 4, "timer", 0)

    def after_token_change(now: float) -> None:
        """The pool's _after_token_change: fail whoever no usable token can serve, then
        wake the queue (a token may have come back)."""
        if not sched.waiting:
            return
        for w in sched.unservable():
            rid = waiter_ids[id(w)]
            run.outcomes[rid] = Outcome(rid, "failed", now)
        dispatch(now)

    def reload(now: float) -> None:
        """The pool's replace_tokens with the tokens in ``present``, in index order."""
        sched.prune_retired(now)
        for old in list(sched.slots.values()):
            if index[id(old)] not in present:
                sched.remove(old)
        for i in sorted(present):
            value = tokens[i].value
            slot: Slot | None = sched.slots.get(value)
            if slot is None:
                slot = sched.revive(value)  # retired a moment ago: keeps its state
            if slot is None:  # forgotten (drained): a fresh slot
                spec = specs[i]
                slot = sched.add(tokens[i], f"t{i}", spec.limits, spec.max_in_flight, now)
                index[id(slot)] = i
                every_slot.append(slot)
                run.slots[i] = slot
                continue
            assert index[id(slot)] == i
            sched.restore(slot)
            sched.set_cap(slot, specs[i].max_in_flight)
        after_token_change(now)

    def token_event(event: TokenEvent, now: float) -> None:
        i = event.token
        if event.kind in ("remove", "restore"):
            if event.kind == "remove":
                present.discard(i)
            else:
                present.add(i)
            reload(now)
            return
        if i not in present:
            return  # pool.disable/enable name tokens in service only
        slot = sched.slots[tokens[i].value]
        if event.kind == "disable":
            changed = sched.disable(slot, "disabled by hand")
        else:
            changed = sched.enable(slot)
        if changed:
            after_token_change(now)

    while events:
        now, _, _, kind, rid = heapq.heappop(events)
        if kind == "timer":
            if now != armed:
                continue  # a cancelled or superseded timer
            armed = INF
            dispatch(now)
        elif kind == "arrive":
            req = requests[rid]
            if not 0 < req.cost <= sched.max_cost:
                # the pool's _prepare: check_cost raises, at once
                try:
                    sched.check_cost(req.cost)
                except NoTokensAvailable:
                    run.outcomes[rid] = Outcome(rid, "failed", now)
                except ValueError:
                    run.outcomes[rid] = Outcome(rid, "rejected", now)
                else:
                    raise AssertionError(f"check_cost accepted cost {req.cost}")
                continue
            slot = sched.try_take(req.cost, now)
            if slot is not None:
                record_grant(rid, slot, now)
            elif req.timeout == 0:
                run.outcomes[rid] = Outcome(rid, "expired", now)  # only-if-free-now
            else:
                deadline = INF if req.timeout is None else now + req.timeout
                waiter = Waiter(req.cost, deadline, now)
                waiters[rid] = waiter
                waiter_ids[id(waiter)] = rid
                if sched.enqueue(waiter):
                    dispatch(now)
                if deadline < armed:  # the shell arms its one timer for the deadline too
                    armed = deadline
                    push(deadline, 4, "timer", 0)
                if req.cancel_after is not None:
                    push(now + req.cancel_after, 0, "cancel", rid)
        elif kind == "cancel":
            waiter = waiters[rid]
            if waiter.live:
                run.outcomes[rid] = Outcome(rid, "cancelled", now)
                if sched.cancel(waiter):
                    dispatch(now)
        elif kind == "release":
            slot = held.pop(rid)
            cool = requests[rid].cool
            if cool is not None:  # as the pool does for a 429: spent, then cooling
                sched.cool(slot, now + cool, now)
            if (sched.release(slot) or cool is not None) and sched.waiting:
                dispatch(now)
        elif kind == "token":
            token_event(token_events[rid], now)
        # After everything due at this instant: the queue's head and its reservation.
        if events and events[0][0] == now:
            continue
        live = list(sched.waiters())
        if live:
            head_rid = waiter_ids[id(live[0])]
            _, t = sched.best(live[0].cost, now)
            run.head_reservations.setdefault(head_rid, t)
            if check_idle:
                _check_no_idle_capacity(sched, run, live, now, waiter_ids)
    run.still_waiting = sched.waiting
    return run


def _eligible(slot: Slot) -> bool:
    return slot.usable and slot.in_flight < slot.cap


def _check_no_idle_capacity(
    sched: Scheduler, run: Run, live: list[Waiter], now: float, ids: dict[int, int]
) -> None:
    """Guarantee 3: nobody waits while a token could serve them without delaying the
    head. The head can be served by no token; waiters behind it by no token other than
    the head's reservation (the token that can fire soonest for the head)."""
    head = live[0]
    slots = [s for s in sched.slots.values() if _eligible(s)]
    for s in slots:
        if s.ready(head.cost) <= now + EPS:
            run.violations.append(f"t={now}: head {ids[id(head)]} waits while {s.name} is ready")
    times = [s.ready(head.cost) for s in slots]
    soonest = min(times, default=INF)
    reserved, t = sched.best(head.cost, now)
    if not math.isclose(t, soonest, abs_tol=EPS) and not (t == soonest == INF):
        run.violations.append(f"t={now}: head reserved at {t}, but a token fires at {soonest}")
    for w in live[1:]:
        for s in slots:
            if s is not reserved and s.ready(w.cost) <= now + EPS:
                run.violations.append(
                    f"t={now}: waiter {ids[id(w)]} (cost {w.cost}) waits while {s.name} is ready"
                )


def window_violations(specs: list[TokenSpec], run: Run) -> list[str]:
    """Guarantee 1, checked by brute force over every interval between two grants:
    leased cost in [a, b] never exceeds burst + rate * (b - a) / per, in each window's
    own resource (a plain cost is requests; see ``Costs``)."""
    problems = []
    for i, spec in enumerate(specs):
        grants = sorted((t, c) for t, s, c in run.grants if s == i)
        for limit in spec.limits:
            rate = limit.rate / limit.per
            for a in range(len(grants)):
                total = 0.0
                for b in range(a, len(grants)):
                    cost = grants[b][1]
                    if limit.scope is None or limit.scope == scope_of(cost):  # its scope
                        total += part_of(cost, limit.unit)  # this window's resource
                    bound = limit.burst + rate * (grants[b][0] - grants[a][0])
                    if total > bound + 1e-9:
                        problems.append(
                            f"token {i} {limit}: {total} units in "
                            f"[{grants[a][0]}, {grants[b][0]}] > {bound}"
                        )
    return problems
