"""A pool's life: construction, replacing its tokens, and closing."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from aurora_async import Limit, NoTokensAvailable, PoolClosed, Token, TokenPool, TokenState

A, B, C = "aaaa-secret-0001", "bbbb-secret-0002", "cccc-secret-0003"
NAME_A, NAME_B, NAME_C = "aaaa…0001", "bbbb…0002", "cccc…0003"


def states(pool: TokenPool) -> list[tuple[str, TokenState, int]]:
    return [(t.name, t.state, t.in_flight) for t in pool.stats().tokens]


def run_in_a_new_loop(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` on a loop of its own (not asyncio.run, which resets the policy's loop)."""
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(coro)
    finally:
        loop.close()


# -- construction ------------------------------------------------------------------------


def test_tokens_are_kept_once_in_the_order_given() -> None:
    pool = TokenPool([A, B, A, Token(B), C])
    assert [t.name for t in pool.stats().tokens] == [NAME_A, NAME_B, NAME_C]


def test_tokens_with_the_same_masked_name_get_distinct_names() -> None:
    pool = TokenPool(["aaaa-first-x-0001", "aaaa-second-0001", "aaaa-third-x-0001"])
    assert [t.name for t in pool.stats().tokens] == ["aaaa…0001", "aaaa…0001#2", "aaaa…0001#3"]
    pool.disable("aaaa…0001#2")
    assert [t.state for t in pool.stats().tokens] == [
        TokenState.ACTIVE,
        TokenState.DISABLED,
        TokenState.ACTIVE,
    ]


def test_token_limits_override_the_pool_default() -> None:
    pool = TokenPool([A, Token(B, limits=[Limit(3), Limit(5000, per=3600)])], limits=Limit(7))
    stats = pool.stats().tokens
    assert [t.declared_limits for t in stats] == [("7/1s",), ("3/1s", "5000/3600s")]
    # in effect: a burst not given starts at one unit (calibration grows it)
    assert [t.limits for t in stats] == [
        ("7/1s (burst 1)",),
        ("3/1s (burst 1)", "5000/3600s"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_in_flight": 0}, ValueError, "max_in_flight must be a positive int or None, got 0"),
        ({"max_in_flight": True}, ValueError, "max_in_flight must be a positive int"),
        ({"trial_in_flight": 0}, ValueError, "trial_in_flight must be a positive int"),
        ({"low_water": 1.5}, ValueError, "low_water must be a share between 0 and 1, got 1.5"),
        ({"backoff": (0, 60)}, ValueError, r"backoff must be \(first, cap\) with 0 < first"),
        ({"backoff": (5, 1)}, ValueError, r"backoff must be \(first, cap\)"),
        ({"limits": []}, ValueError, "limits must hold at least one Limit"),
    ],
)
def test_invalid_pool_settings_are_rejected(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        TokenPool([A], **kwargs)


def test_tokens_must_be_str_or_token() -> None:
    with pytest.raises(TypeError, match="tokens must be str or Token, not int"):
        TokenPool([A, 42])  # type: ignore[list-item]


def test_repr_shows_the_pool_state_and_counts() -> None:
    pool = TokenPool([A, B])
    pool.disable(NAME_B)
    assert repr(pool) == "<TokenPool unopened tokens=2 usable=1 waiting=0>"


def test_pool_used_from_a_second_loop_raises_even_when_a_token_is_free() -> None:
    pool = TokenPool([A], limits=Limit(10))

    async def use() -> None:
        async with pool.lease():
            pass

    run_in_a_new_loop(use())
    with pytest.raises(RuntimeError, match="bound to another event loop"):
        run_in_a_new_loop(use())


def test_pool_used_from_a_second_loop_raises_when_the_lease_must_wait() -> None:
    pool = TokenPool([A], limits=Limit(1, per=60))

    async def use() -> None:
        async with pool.lease():
            pass

    run_in_a_new_loop(use())
    with pytest.raises(RuntimeError, match="bound to another event loop"):
        run_in_a_new_loop(use())


# -- closing -----------------------------------------------------------------------------


@pytest.mark.looptime
async def test_async_with_closes_the_pool_and_new_leases_raise_pool_closed() -> None:
    async with TokenPool([A]) as pool:
        assert repr(pool) == "<TokenPool open tokens=1 usable=1 waiting=0>"
        assert not pool.closed
    assert pool.closed
    assert repr(pool) == "<TokenPool closed tokens=1 usable=1 waiting=0>"
    with pytest.raises(PoolClosed, match="the pool is closed"):
        async with pool.lease():
            pass
    with pytest.raises(PoolClosed):
        await pool.acquire()
    assert pool.stats().granted == 0


@pytest.mark.looptime
async def test_closing_fails_every_waiter_with_pool_closed_at_once(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(1, per=1))
    held = await pool.acquire()
    waiters = [asyncio.create_task(pool.acquire()) for _ in range(3)]
    await asyncio.sleep(0.25)
    await pool.aclose()
    done, pending = await asyncio.wait(waiters, timeout=10)
    assert (len(done), pending, now()) == (3, set(), 0.25)
    assert [type(w.exception()) for w in waiters] == [PoolClosed] * 3
    assert pool.stats().waiting == 0
    held.release()


@pytest.mark.looptime
async def test_a_lease_in_flight_ends_normally_after_close() -> None:
    pool = TokenPool([A])
    async with pool:
        lease = await pool.acquire()
    assert lease.token == A
    lease.release()
    stats = pool.stats().token(NAME_A)
    assert (stats.leases, stats.ok, stats.in_flight) == (1, 1, 0)


@pytest.mark.looptime
async def test_a_lease_held_across_close_can_report_an_outcome() -> None:
    pool = TokenPool([A])
    async with pool.lease() as lease:
        await pool.aclose()
        lease.rate_limited(retry_after=2)
    stats = pool.stats().token(NAME_A)
    assert (stats.state, stats.rate_limited, stats.in_flight) == (TokenState.COOLING, 1, 0)


@pytest.mark.looptime
async def test_a_closed_pool_cannot_be_entered_again() -> None:
    pool = TokenPool([A])
    await pool.aclose()
    await pool.aclose()  # closing twice is harmless
    with pytest.raises(PoolClosed, match="create a new one"):
        async with pool:
            pass


# -- replacing tokens --------------------------------------------------------------------


@pytest.mark.looptime
async def test_new_tokens_join_and_serve_waiters_at_once(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(1, per=1))
    async with pool.lease():
        pass
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.25)
    pool.replace_tokens([A, B])
    lease = await waiter
    assert (lease.name, now()) == (NAME_B, 0.25)
    lease.release()


@pytest.mark.looptime
async def test_removed_token_finishes_its_lease_then_vanishes() -> None:
    pool = TokenPool([A, B], trial_in_flight=None)
    held = await pool.acquire()
    assert held.name == NAME_A
    pool.replace_tokens([B])
    assert states(pool) == [(NAME_A, TokenState.REMOVED, 1), (NAME_B, TokenState.ACTIVE, 0)]
    assert (pool.stats().removed, pool.stats().active) == (1, 1)
    async with pool.lease() as lease:
        assert lease.name == NAME_B
    held.release()
    assert states(pool) == [(NAME_B, TokenState.ACTIVE, 0)]


@pytest.mark.looptime
async def test_removed_idle_token_vanishes_at_once() -> None:
    pool = TokenPool([A, B])
    pool.replace_tokens([B, C])
    assert [t.name for t in pool.stats().tokens] == [NAME_B, NAME_C]
    with pytest.raises(KeyError):
        pool.disable(NAME_A)


@pytest.mark.looptime
async def test_kept_tokens_keep_their_bucket_state_and_cooldown(clock) -> None:
    now = clock()
    pool = TokenPool([A, B], limits=Limit(1, per=1))
    async with pool.lease() as lease:
        assert lease.name == NAME_A
    pool.cool(NAME_B, 5)
    await asyncio.sleep(0.25)
    pool.replace_tokens([A, B, C])
    assert pool.stats().token(NAME_B).cooldown_left == 4.75
    names = []
    for _ in range(3):
        async with pool.lease() as lease:
            names.append((lease.name, now()))
    # C is new and free; A's bucket still holds the unit it took at 0; B cools until 5.
    assert names == [(NAME_C, 0.25), (NAME_A, 1.0), (NAME_C, 1.25)]


@pytest.mark.looptime
async def test_kept_token_stays_disabled_with_its_reason() -> None:
    pool = TokenPool([A, B])
    pool.disable(NAME_A, "expired")
    pool.replace_tokens([A, B, C])
    stats = pool.stats().token(NAME_A)
    assert (stats.state, stats.reason) == (TokenState.DISABLED, "expired")


@pytest.mark.looptime
async def test_token_back_before_its_lease_ends_is_active_again() -> None:
    pool = TokenPool([A, B])
    held = await pool.acquire()
    pool.replace_tokens([B])
    pool.replace_tokens([A, B])
    assert states(pool) == [(NAME_A, TokenState.ACTIVE, 1), (NAME_B, TokenState.ACTIVE, 0)]
    held.release()
    stats = pool.stats().token(NAME_A)
    assert (stats.leases, stats.ok, stats.in_flight) == (1, 1, 0)


@pytest.mark.looptime
async def test_token_whose_limits_change_starts_with_a_full_bucket(clock) -> None:
    now = clock()
    pool = TokenPool([Token(A, limits=Limit(2, per=1))])
    async with pool.lease():
        pass
    pool.replace_tokens([Token(A, limits=Limit(4, per=1, burst=1))])
    assert [t.limits for t in pool.stats().tokens] == [("4/1s (burst 1)",)]
    async with pool.lease() as lease:
        assert (lease.token, now()) == (A, 0.25)


@pytest.mark.looptime
async def test_token_whose_limits_change_keeps_its_cooldown(clock) -> None:
    now = clock()
    pool = TokenPool([Token(A, limits=Limit(2, per=1))])
    async with pool.lease() as lease:
        lease.rate_limited(retry_after=5)
    pool.replace_tokens([Token(A, limits=Limit(4, per=1))])
    stats = pool.stats().tokens[0]
    assert (stats.state, stats.cooldown_left) == (TokenState.COOLING, 5.0)
    async with pool.lease() as lease:
        assert (lease.token, now()) == (A, 5.0)


@pytest.mark.looptime
async def test_token_keeps_its_name_when_its_limits_change() -> None:
    pool = TokenPool([Token(A, limits=Limit(2, per=1))])
    pool.replace_tokens([Token(A, limits=Limit(4, per=1))])
    assert [t.name for t in pool.stats().tokens] == [NAME_A]


@pytest.mark.looptime
async def test_replacing_every_token_fails_waiters_and_new_leases(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(1, per=1))
    async with pool.lease():
        pass
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.25)
    pool.replace_tokens([])
    await asyncio.wait([waiter], timeout=10)
    assert isinstance(waiter.exception(), NoTokensAvailable)
    assert now() == 0.25
    with pytest.raises(NoTokensAvailable, match="the pool has no tokens"):
        await pool.acquire()


@pytest.mark.looptime
async def test_an_invalid_token_set_leaves_the_pool_as_it_was() -> None:
    pool = TokenPool([A])
    with pytest.raises(TypeError):
        pool.replace_tokens([B, 42])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_in_flight"):
        pool.replace_tokens([B, Token(C, max_in_flight=0)])
    assert [t.name for t in pool.stats().tokens] == [NAME_A]


def test_pool_used_from_another_threads_loop_while_its_own_runs_raises() -> None:
    """The lease's check that it runs on the pool's loop asks that loop for the thread
    running it: a loop in another thread, while the pool's own runs, is refused."""
    import threading

    pool = TokenPool([A], limits=Limit(10))
    ready = threading.Event()
    held: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def own() -> None:
        async with pool.lease():
            pass
        stop = asyncio.Event()
        held.append((asyncio.get_running_loop(), stop))
        ready.set()
        await stop.wait()  # the pool's loop keeps running until the test is done

    thread = threading.Thread(target=lambda: asyncio.run(own()))
    thread.start()
    try:
        assert ready.wait(10)

        async def use() -> None:
            async with pool.lease():
                pass

        with pytest.raises(RuntimeError, match="bound to another event loop"):
            asyncio.run(use())
    finally:
        if held:
            loop, stop = held[0]
            loop.call_soon_threadsafe(stop.set)
        thread.join(10)
