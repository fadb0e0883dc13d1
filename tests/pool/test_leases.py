"""Who gets which token when: TokenPool's scheduling, on virtual time, with exact times.

Every test starts its clock with ``now = clock()``; grants are logged as
``(label, masked name, seconds since then)``. Rates are chosen so every interval is a
whole number of looptime's microsecond ticks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from aurora_async import Lease, LeaseTimeout, Limit, Token, TokenPool

pytestmark = pytest.mark.looptime

A, B = "aaaa-secret-0001", "bbbb-secret-0002"
NAME_A, NAME_B = "aaaa…0001", "bbbb…0002"

Log = list[tuple[str, str, float]]


async def take(
    pool: TokenPool,
    log: Log,
    label: str,
    now: Callable[[], float],
    *,
    cost: float = 1,
    hold: float = 0.0,
    timeout: float | None = None,
) -> None:
    async with pool.lease(cost=cost, timeout=timeout) as lease:
        log.append((label, lease.name, now()))
        await asyncio.sleep(hold)


def spawn(*coros: object) -> list[asyncio.Task[None]]:
    """Start tasks in this order; each reaches the pool's queue in this order."""
    return [asyncio.create_task(c) for c in coros]  # type: ignore[arg-type]


# -- one token's rate -------------------------------------------------------------


async def test_lease_hands_out_the_secret_and_its_masked_name() -> None:
    pool = TokenPool([A])
    async with pool.lease() as lease:
        assert (lease.token, lease.name) == (A, NAME_A)


@pytest.mark.parametrize(
    ("limit", "times"),
    [
        (Limit(4, per=1, burst=3), [0.0, 0.0, 0.0, 0.25, 0.5, 0.75]),
        (Limit(2, per=4), [0.0, 0.0, 2.0, 4.0, 6.0, 8.0]),
        (Limit(5, per=1, burst=1), [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    ],
)
async def test_fresh_token_admits_its_burst_then_one_per_interval(
    clock, limit: Limit, times: list[float]
) -> None:
    now = clock()
    pool = TokenPool([A], limits=limit, trial_in_flight=None, calibrate=False)
    log: Log = []
    await asyncio.gather(*spawn(*(take(pool, log, str(i), now) for i in range(6))))
    assert [t for _, _, t in log] == times


async def test_lease_needs_room_in_every_limit_of_its_token(clock) -> None:
    now = clock()
    token = Token(A, limits=[Limit(10, per=1), Limit(2, per=4)])  # the second binds
    pool = TokenPool([token], limits=Limit(1000), trial_in_flight=None, calibrate=False)
    log: Log = []
    await asyncio.gather(*spawn(*(take(pool, log, str(i), now) for i in range(4))))
    assert [t for _, _, t in log] == [0.0, 0.0, 2.0, 4.0]


async def test_costly_lease_takes_its_cost_in_units(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(4, per=1), trial_in_flight=None, calibrate=False)
    log: Log = []
    await asyncio.gather(
        *spawn(take(pool, log, "three", now, cost=3), take(pool, log, "two", now, cost=2))
    )
    # After 3 of 4 units at 0, two more units fit once one has drained: at 0.25.
    assert log == [("three", NAME_A, 0.0), ("two", NAME_A, 0.25)]
    stats = pool.stats().token(NAME_A)
    assert (stats.leases, stats.units) == (2, 5.0)


async def test_lease_records_when_it_was_granted_and_how_long_it_waited(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(2, per=1, burst=1))
    async with pool.lease() as first:
        assert now() == 0.0
    async with pool.lease() as second:
        assert now() == 0.5
    assert (first.waited, round(second.waited, 6)) == (0.0, 0.5)


# -- choosing a token ------------------------------------------------------------------


async def test_head_gets_the_token_that_can_fire_soonest(clock) -> None:
    now = clock()
    slow = Token(A, limits=Limit(2, per=1, burst=1))  # every 0.5 s
    fast = Token(B, limits=Limit(5, per=1, burst=1))  # every 0.2 s
    pool = TokenPool([slow, fast], trial_in_flight=None)
    log: Log = []
    await asyncio.gather(*spawn(*(take(pool, log, str(i), now) for i in range(7))))
    assert [(name, t) for _, name, t in log] == [
        (NAME_A, 0.0),
        (NAME_B, 0.0),
        (NAME_B, 0.2),
        (NAME_B, 0.4),
        (NAME_A, 0.5),
        (NAME_B, 0.6),
        (NAME_B, 0.8),
    ]


async def test_among_ready_tokens_the_one_with_most_headroom_wins(clock) -> None:
    # A took 2 units at 0 and B 1 unit at 0.1. At 0.3 both can fire, A was used longest
    # ago, but B has had room the longest (A: 1.2 units of room, B: 1.8): B first.
    now = clock()
    pool = TokenPool([A, B], limits=Limit(4, per=1, burst=2), trial_in_flight=None)
    log: Log = []
    await take(pool, log, "two units", now, cost=2)
    await asyncio.sleep(0.1)
    await take(pool, log, "at 0.1", now)
    await asyncio.sleep(0.2)
    await take(pool, log, "at 0.3", now)
    await take(pool, log, "again at 0.3", now)
    assert log == [
        ("two units", NAME_A, 0.0),
        ("at 0.1", NAME_B, 0.1),
        ("at 0.3", NAME_B, 0.3),
        ("again at 0.3", NAME_A, 0.3),
    ]


# -- one queue, first come first served --------------------------------------------------


async def test_waiters_are_served_first_come_first_served(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(4, per=1, burst=1))
    log: Log = []
    await take(pool, log, "first", now)
    await asyncio.gather(*spawn(*(take(pool, log, f"w{i}", now) for i in range(5))))
    assert log == [
        ("first", NAME_A, 0.0),
        ("w0", NAME_A, 0.25),
        ("w1", NAME_A, 0.5),
        ("w2", NAME_A, 0.75),
        ("w3", NAME_A, 1.0),
        ("w4", NAME_A, 1.25),
    ]


async def test_cheap_waiters_backfill_other_tokens_without_delaying_the_head(clock) -> None:
    now = clock()
    big = Token(A, limits=Limit(1, per=1, burst=3))  # the only one that fits cost 3
    small = Token(B, limits=Limit(1, per=1, burst=1))
    pool = TokenPool([big, small], trial_in_flight=None)
    log: Log = []
    await take(pool, log, "fill big", now, cost=3)
    await take(pool, log, "fill small", now)
    await asyncio.gather(
        *spawn(
            take(pool, log, "head", now, cost=3),
            take(pool, log, "c1", now),
            take(pool, log, "c2", now),
            take(pool, log, "c3", now),
        )
    )
    # A could fire one unit at 1.0 and 2.0, but it is the head's reservation: the cheap
    # waiters go to B, and the head gets A at 3.0, exactly when A can fire 3 units.
    assert log == [
        ("fill big", NAME_A, 0.0),
        ("fill small", NAME_B, 0.0),
        ("c1", NAME_B, 1.0),
        ("c2", NAME_B, 2.0),
        ("head", NAME_A, 3.0),
        ("c3", NAME_B, 3.0),
    ]


async def test_cheap_waiter_does_not_overtake_a_costly_head_on_its_only_token(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(2, per=1), trial_in_flight=None, calibrate=False)
    log: Log = []
    await take(pool, log, "fill", now, cost=2)
    await asyncio.gather(
        *spawn(take(pool, log, "head", now, cost=2), take(pool, log, "cheap", now))
    )
    # One unit fits at 0.5, but that would push the head past 1.0.
    assert log == [("fill", NAME_A, 0.0), ("head", NAME_A, 1.0), ("cheap", NAME_A, 1.5)]


# -- in-flight caps ----------------------------------------------------------------------


async def test_max_in_flight_caps_leases_held_at_once(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(100, burst=100), max_in_flight=2, trial_in_flight=None)
    log: Log = []
    await asyncio.gather(*spawn(*(take(pool, log, str(i), now, hold=1.0) for i in range(5))))
    assert [t for _, _, t in log] == [0.0, 0.0, 1.0, 1.0, 2.0]


async def test_token_max_in_flight_overrides_the_pool_setting(clock) -> None:
    now = clock()
    pool = TokenPool(
        [Token(A, max_in_flight=1)], limits=Limit(100), max_in_flight=3, trial_in_flight=None
    )
    log: Log = []
    await asyncio.gather(*spawn(*(take(pool, log, str(i), now, hold=1.0) for i in range(3))))
    assert [t for _, _, t in log] == [0.0, 1.0, 2.0]


async def test_untried_token_carries_one_lease_until_one_ends_well(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(10, burst=10))  # trial_in_flight=1 by default
    log: Log = []
    await asyncio.gather(*spawn(*(take(pool, log, str(i), now, hold=1.0) for i in range(4))))
    assert [t for _, _, t in log] == [0.0, 1.0, 1.0, 1.0]
    assert pool.stats().token(NAME_A).proven is True


async def test_failed_trial_lease_does_not_lift_the_trial_cap(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(10, burst=10))
    log: Log = []

    async def failing() -> None:
        async with pool.lease() as lease:
            log.append(("fails", lease.name, now()))
            await asyncio.sleep(1.0)
            lease.failed()

    await asyncio.gather(
        *spawn(failing(), *(take(pool, log, str(i), now, hold=1.0) for i in range(3)))
    )
    assert [(label, t) for label, _, t in log] == [
        ("fails", 0.0),
        ("0", 1.0),  # still on trial: one at a time
        ("1", 2.0),  # "0" ended well at 2.0: the cap is lifted
        ("2", 2.0),
    ]


async def test_trial_in_flight_none_admits_the_burst_at_once(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(10, burst=10), trial_in_flight=None)
    log: Log = []
    await asyncio.gather(*spawn(*(take(pool, log, str(i), now, hold=1.0) for i in range(3))))
    assert [t for _, _, t in log] == [0.0, 0.0, 0.0]


# -- timeouts ----------------------------------------------------------------------------


async def test_timeout_raises_lease_timeout_exactly_at_the_deadline(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(1, per=1))
    log: Log = []
    await take(pool, log, "fill", now)
    with pytest.raises(LeaseTimeout) as info:
        await take(pool, log, "late", now, timeout=0.25)
    assert now() == 0.25
    assert isinstance(info.value, TimeoutError)
    # It consumed nothing: the next lease comes when the token can fire, at 1.0.
    await take(pool, log, "next", now)
    assert log == [("fill", NAME_A, 0.0), ("next", NAME_A, 1.0)]
    assert pool.stats().token(NAME_A).leases == 2


async def test_timeout_zero_takes_a_token_only_if_one_is_free_now(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(1, per=1))
    log: Log = []
    await take(pool, log, "free", now, timeout=0)
    with pytest.raises(LeaseTimeout):
        await take(pool, log, "busy", now, timeout=0)
    assert (log, now(), pool.stats().waiting) == ([("free", NAME_A, 0.0)], 0.0, 0)


async def test_grant_due_exactly_at_the_deadline_is_granted(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(1, per=1))
    log: Log = []
    await take(pool, log, "fill", now)
    await take(pool, log, "just in time", now, timeout=1.0)
    assert log[-1] == ("just in time", NAME_A, 1.0)


async def test_waiter_behind_the_head_times_out_at_its_own_deadline(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(1, per=1))
    log: Log = []
    await take(pool, log, "fill", now)
    head, impatient, last = spawn(
        take(pool, log, "head", now),
        take(pool, log, "impatient", now, timeout=0.25),
        take(pool, log, "last", now),
    )
    with pytest.raises(LeaseTimeout):
        await impatient
    assert now() == 0.25
    await asyncio.gather(head, last)
    assert log == [("fill", NAME_A, 0.0), ("head", NAME_A, 1.0), ("last", NAME_A, 2.0)]


# -- cancellation ------------------------------------------------------------------------


async def test_cancelled_waiter_consumes_nothing_and_delays_no_one(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(2, per=1, burst=1))
    log: Log = []
    await take(pool, log, "fill", now)
    first, second = spawn(take(pool, log, "cancelled", now), take(pool, log, "second", now))
    await asyncio.sleep(0.1)
    first.cancel()
    await second
    assert first.cancelled()
    assert log == [("fill", NAME_A, 0.0), ("second", NAME_A, 0.5)]
    assert pool.stats().token(NAME_A).leases == 2


async def test_cancelling_a_costly_head_lets_the_next_waiter_through(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(2, per=1), trial_in_flight=None, calibrate=False)
    log: Log = []
    await take(pool, log, "fill", now, cost=2)
    head, cheap = spawn(take(pool, log, "head", now, cost=2), take(pool, log, "cheap", now))
    await asyncio.sleep(0.25)
    head.cancel()
    await cheap
    assert log == [("fill", NAME_A, 0.0), ("cheap", NAME_A, 0.5)]


async def test_waiter_cancelled_as_the_release_grants_it_gives_the_token_back(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(100), max_in_flight=1, trial_in_flight=None)
    log: Log = []
    tasks: list[asyncio.Task[None]] = []

    async def holder() -> None:
        await take(pool, log, "holder", now, hold=1.0)
        # The release above granted "granted" its token; it has not resumed yet.
        tasks[0].cancel()

    hold = asyncio.create_task(holder())
    await asyncio.sleep(0)
    tasks += spawn(take(pool, log, "granted", now), take(pool, log, "next", now, hold=1.0))
    await hold
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]
    await tasks[1]
    assert log == [("holder", NAME_A, 0.0), ("next", NAME_A, 1.0)]
    stats = pool.stats()
    assert (stats.granted, stats.token(NAME_A).leases, stats.in_flight) == (2, 2, 0)


async def test_waiter_cancelled_at_its_grant_time_gives_the_capacity_back(clock) -> None:
    now = clock()
    loop = asyncio.get_running_loop()
    pool = TokenPool([A], limits=Limit(2, per=1, burst=1))
    log: Log = []
    await take(pool, log, "fill", now)
    doomed, second, third = spawn(
        take(pool, log, "doomed", now),
        take(pool, log, "second", now),
        take(pool, log, "third", now),
    )
    await asyncio.sleep(0)
    loop.call_at(loop.time() + 0.5, doomed.cancel)  # the same loop iteration as its grant
    await asyncio.gather(second, third)
    assert doomed.cancelled()
    # "second" takes the unit "doomed" gave back, at once; "third" is not served early.
    assert log == [("fill", NAME_A, 0.0), ("second", NAME_A, 0.5), ("third", NAME_A, 1.0)]
    assert pool.stats().token(NAME_A).leases == 3


# -- acquire / release by hand ---------------------------------------------------------


async def test_acquire_and_release_by_hand() -> None:
    pool = TokenPool([A])
    lease = await pool.acquire()
    assert (lease.name, lease.done, pool.stats().in_flight) == (NAME_A, False, 1)
    lease.release()
    lease.release()  # a second release does nothing
    stats = pool.stats().token(NAME_A)
    assert (lease.done, stats.in_flight, stats.ok, stats.leases) == (True, 0, 1, 1)


async def test_lease_not_yet_granted_has_no_token() -> None:
    pool = TokenPool([A])
    lease = pool.lease()
    with pytest.raises(RuntimeError, match="not been granted"):
        _ = lease.token
    with pytest.raises(RuntimeError, match="not been granted"):
        _ = lease.name


async def test_a_lease_can_be_entered_only_once() -> None:
    pool = TokenPool([A])
    lease: Lease = pool.lease()
    async with lease:
        pass
    with pytest.raises(RuntimeError, match="entered only once"):
        async with lease:
            pass
    assert pool.stats().token(NAME_A).leases == 1


@pytest.mark.looptime
async def test_start_full_means_no_opening_burst(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(4, per=1.0), start_full=True, trial_in_flight=None)
    times = []
    for _ in range(3):
        async with pool.lease():
            times.append(now())
    assert times == [0.25, 0.5, 0.75]
    pool.replace_tokens([A, B])  # a token that joins later starts full too
    async with pool.lease() as lease:
        assert (lease.name, now()) == (NAME_A, 1.0)


async def test_a_leases_exit_is_an_ordinary_coroutine_for_asyncio() -> None:
    # ``async with`` is not the only caller: gather, wait_for and tasks take the exit too.
    pool = TokenPool([A], limits=Limit(100), trial_in_flight=None)
    async with pool:
        first, second, third = [await pool.acquire() for _ in range(3)]
        await asyncio.gather(first.__aexit__(None, None, None))
        await asyncio.wait_for(second.__aexit__(None, None, None), 1.0)
        await asyncio.create_task(third.__aexit__(None, None, None))
        assert pool.stats().tokens[0].in_flight == 0
        assert pool.stats().tokens[0].ok == 3
