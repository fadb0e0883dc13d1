"""Deadlines cost a waiting lease one float and one map entry, and a grant one ``pop``
(issue 14): a lease granted, cancelled or failed leaves the map at once, however early a
deadline still waiting sits in front; the floats it leaves behind go stale and are
dropped at a front or all at once, so they stay bounded.

The bound: between calls, the deadlines (FIFO and heap) number at most ``2 * len(_timed)
+ SLACK``, and the map of deadlines holds exactly the leases waiting with one. The next
deadline a dispatch returns is always one a lease waits for. Times are binary
fractions, so every comparison is exact.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from aurora_async import LeaseTimeout, Limit, Token, TokenPool
from aurora_async._core.scheduler import INF, Scheduler, Slot, Waiter
from aurora_async._pool.core import core_of

#: ``queue.DEADLINE_SLACK``: stale deadlines kept beyond twice the live ones.
SLACK = 64
#: Every lease's deadline is its own (distinct), so a stale one never shares a live key.
LATE = 64.0


def make(*limits: Limit) -> tuple[Scheduler, list[Slot]]:
    sched = Scheduler(trial_in_flight=None)
    slots = [
        sched.add(Token(f"secret-value-number-{i}"), f"t{i}", (lim,), None, 0.0)
        for i, lim in enumerate(limits)
    ]
    return sched, slots


def entries(sched: Scheduler) -> list[float]:
    """Every deadline in the FIFO and the heap, stale ones included, in order."""
    return sorted([*sched._deadline_fifo, *sched._deadline_heap])


def check_bound(sched: Scheduler) -> None:
    assert len(entries(sched)) <= 2 * len(sched._timed) + SLACK
    assert set(sched._timed) <= set(entries(sched))  # every live deadline is there
    waiting = [w for w in sched.waiters() if w.deadline < INF]
    assert sorted(timed(sched), key=id) == sorted(waiting, key=id)


def timed(sched: Scheduler) -> list[Waiter]:
    """The leases in the map of deadlines, by deadline and then arrival."""
    out: list[Waiter] = []
    for d in sorted(sched._timed):
        same = sched._timed[d]
        out += same if isinstance(same, dict) else [same]
    return out


def test_granted_leases_leave_the_deadlines_while_an_early_deadline_waits() -> None:
    # One token firing 1,024 a second; 3,000 leases with late deadlines, then one whose
    # deadline is earlier than all of theirs, waiting behind them: the usual grant path.
    # (The bound is checked after every grant, in O(n): 3,000 keep that under a second.)
    sched, (a,) = make(Limit(1024, per=1, burst=1))
    leases = [Waiter(1, LATE + i / 1024, 0.0) for i in range(3_000)]
    early = Waiter(1, 16.0, 0.0)
    for w in [*leases, early]:
        sched.enqueue(w)
    check_bound(sched)
    granted: list[Waiter] = []
    for k in range(3_000):
        done, expired, _ = sched.dispatch(k / 1024)
        assert (len(done), expired) == (1, [])
        granted += done
        check_bound(sched)
    assert granted == leases
    assert sched.waiting == 1
    assert early.live
    assert len(entries(sched)) <= 2 + SLACK
    assert timed(sched) == [early]
    # It still expires exactly at its deadline (the token is kept busy until after it).
    sched.cool(a, 32.0)
    assert sched.dispatch(16.0 - 1 / 1024) == ([], [], 16.0)
    assert sched.dispatch(16.0) == ([], [early], INF)
    assert (entries(sched), sched._timed, sched.waiting) == ([], {}, 0)


def test_backfilled_leases_leave_the_deadlines_while_a_costly_head_waits() -> None:
    # The head asks 4 units, reserved on the drained slow token (ready at 4.0); cheap
    # leases behind it are served out of turn on the fast one: the backfilling path.
    sched, (slow, fast) = make(Limit(1, per=1, burst=4), Limit(1024, per=1, burst=1))
    sched.grant(slow, 4, 0.0)
    assert sched.best(4, 0.0) == (slow, 4.0)
    head = Waiter(4, 2.0, 0.0)
    cheap = [Waiter(1, LATE + i / 1024, 0.0) for i in range(2_000)]
    for w in [head, *cheap]:
        sched.enqueue(w)
    granted: list[Waiter] = []
    for k in range(2_000):
        done, expired, _ = sched.dispatch(k / 1024)
        assert expired == []
        granted += done
        check_bound(sched)
    assert granted == cheap
    assert all(w.slot is fast for w in granted)
    assert timed(sched) == [head]
    assert len(entries(sched)) <= 2 + SLACK
    assert sched.dispatch(2.0) == ([], [head], INF)
    assert (entries(sched), sched._timed) == ([], {})


def test_cancelled_leases_leave_the_deadlines_and_the_rest_expire_in_order() -> None:
    sched, (a,) = make(Limit(1, per=1, burst=1))
    assert sched.try_take(1, 0.0) is a
    sched.cool(a, 1024.0)
    waiters = [Waiter(1, 1.0 + (i % 7) / 8, 0.0) for i in range(1_000)]
    for w in waiters:
        sched.enqueue(w)
    assert len(entries(sched)) == 7  # one per distinct deadline
    check_bound(sched)
    for w in waiters[:900]:
        sched.cancel(w)
        check_bound(sched)
    kept = waiters[900:]
    assert timed(sched) == sorted(kept, key=lambda w: w.deadline)  # stable: arrival order
    for w in waiters[:-1]:
        sched.cancel(w)
    assert timed(sched) == [waiters[-1]]
    assert len(entries(sched)) <= 2 + SLACK
    # Many distinct deadlines cancelled from the back: none is ever at a front, so only
    # dropping the stale ones all at once keeps the entries bounded.
    late = [Waiter(1, 2.0 + i / 1024, 0.0) for i in range(2_000)]
    for w in late:
        sched.enqueue(w)
    for w in reversed(late):
        sched.cancel(w)
        check_bound(sched)
    assert timed(sched) == [waiters[-1]]
    assert sched.dispatch(1.0 + 6 / 8) == ([], [waiters[-1]], INF)
    assert (entries(sched), sched._timed, sched.waiting) == ([], {}, 0)


def test_many_leases_expire_in_one_batch_in_deadline_then_arrival_order() -> None:
    sched, (a,) = make(Limit(1, per=1, burst=1))
    assert sched.try_take(1, 0.0) is a
    sched.cool(a, 1024.0)
    waiters = [Waiter(1, 1.0 + (i * 5 % 8) / 8, 0.0) for i in range(800)]
    for w in waiters:
        sched.enqueue(w)
    _, expired, wake = sched.dispatch(1.5)
    assert expired == sorted([w for w in waiters if w.deadline <= 1.5], key=lambda w: w.deadline)
    assert len(expired) == 500
    assert wake == 1.625
    check_bound(sched)
    assert sched.waiting == 300
    assert len(sched._timed) == 3


def test_leases_with_one_timeout_keep_no_stale_entry_past_a_dispatch() -> None:
    # Leases with the same timeout arrive in deadline order (the FIFO of entries) and are
    # granted in that order: each dispatch drops the stale entries in front, so no
    # granted lease's deadline is ever the next wake, nor kept.
    sched, (_a,) = make(Limit(1024, per=1, burst=1))
    leases = [Waiter(1, 8.0 + i / 1024, i / 1024) for i in range(2_000)]
    for w in leases[:1_000]:
        sched.enqueue(w)
    assert sched._deadline_heap == []  # all in order
    queued = 1_000
    for k in range(2_000):
        if queued < 2_000:
            sched.enqueue(leases[queued])
            queued += 1
        done, expired, wake = sched.dispatch(k / 1024)
        assert (done, expired) == ([leases[k]], [])
        assert wake == ((k + 1) / 1024 if sched.waiting else INF)
        assert len(entries(sched)) == len(sched._timed) == sched.waiting == queued - k - 1
        assert timed(sched) == leases[k + 1 : queued]
    assert entries(sched) == []


def test_the_next_deadline_is_a_waiting_leases() -> None:
    # Deadlines out of arrival order (in the heap), the earliest ones granted or
    # cancelled: the deadline a dispatch wakes for is the earliest of a waiting lease.
    sched, (a,) = make(Limit(1, per=1, burst=1))
    assert sched.try_take(1, 0.0) is a
    waiters = [Waiter(1, 4.0 - i / 8, 0.0) for i in range(16)]  # 4.0, 3.875, ..., 2.125
    for w in waiters:
        sched.enqueue(w)
    for w in waiters[8:]:  # the eight earliest deadlines
        sched.cancel(w)
    check_bound(sched)
    assert sched.dispatch(0.5) == ([], [], 1.0)  # the token fires first: the head's grant
    done, expired, wake = sched.dispatch(1.0)
    assert (done, expired, wake) == ([waiters[0]], [], 2.0)
    sched.cool(a, 16.0)
    assert sched.dispatch(1.5) == ([], [], 3.125)  # waiters[7]'s, not a cancelled one's
    assert sched.dispatch(3.5) == ([], waiters[4:8][::-1], 3.625)  # due at 3.5 too
    check_bound(sched)


A, B = Token("secret-value-number-a"), Token("secret-value-number-b")


@pytest.mark.looptime
async def test_lease_timeouts_fire_exactly_and_in_order_on_virtual_time(
    clock: Callable[[], Callable[[], float]],
) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(1, per=1, burst=1))
    sched = core_of(pool).sched
    log: list[tuple[str, float]] = []

    async def lease(label: str, timeout: float | None) -> None:
        try:
            async with pool.lease(timeout=timeout):
                log.append((label, now()))
        except LeaseTimeout:
            log.append((f"{label} timed out", now()))

    async with pool.lease():
        pass
    plan = [("a", 2.5), ("b", 0.75), ("c", None), ("d", 0.75), ("e", 3.0), ("f", 1.25)]
    tasks = [asyncio.create_task(lease(label, t)) for label, t in plan]
    await asyncio.sleep(0)
    assert sched.waiting == 6
    assert len(sched._timed) == 4
    await asyncio.gather(*tasks)
    assert log == [
        ("b timed out", 0.75),
        ("d timed out", 0.75),
        ("a", 1.0),  # the head: granted when the token can fire
        ("f timed out", 1.25),
        ("c", 2.0),
        ("e", 3.0),  # granted exactly at its deadline: a grant due then wins
    ]
    assert (entries(sched), sched._timed, sched.waiting) == ([], {}, 0)
    await pool.aclose()


@pytest.mark.parametrize("seed", range(8))
def test_random_leases_expire_exactly_when_due_and_the_entries_stay_bounded(seed: int) -> None:
    # A slow token, leases with deadlines in and out of order (some shared, some not),
    # cancels, grants and dispatches at random: every dispatch expires exactly the
    # waiting leases whose deadline passed, wakes for the next event (the token or the
    # earliest waiting deadline), and the entries stay bounded and hold exactly the
    # leases waiting with a deadline.
    rng = random.Random(seed)
    sched, (_a,) = make(Limit(8, per=1, burst=1))
    waiting: list[Waiter] = []
    now = 0.0
    for _ in range(3_000):
        op = rng.random()
        if op < 0.55:
            deadline = INF if rng.random() < 0.2 else now + rng.randrange(1, 64) / 64
            w = Waiter(1, deadline, now)
            sched.enqueue(w)
            waiting.append(w)
        elif op < 0.7 and waiting:
            w = waiting.pop(rng.randrange(len(waiting)))
            sched.cancel(w)
        else:
            now += rng.randrange(0, 16) / 256
            done, expired, wake = sched.dispatch(now)
            due = [w for w in waiting if w.deadline <= now and w not in done]
            assert sorted(expired, key=id) == sorted(due, key=id)
            waiting = [w for w in waiting if w not in done and w not in expired]
            if waiting:
                _, t = sched.best(1, now)
                assert wake == min(t, min(w.deadline for w in waiting))
            else:
                assert wake == INF
        check_bound(sched)
        assert sched.waiting == len(waiting)
