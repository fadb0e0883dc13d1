"""What the pool does with each outcome a lease reports, and with tokens managed by hand."""

from __future__ import annotations

import asyncio
import math

import pytest

from aurora_async import (
    LeaseTimeout,
    Limit,
    NoTokensAvailable,
    Token,
    TokenPool,
    TokenState,
    TokenStats,
)

pytestmark = pytest.mark.looptime

A, B = "aaaa-secret-0001", "bbbb-secret-0002"
NAME_A, NAME_B = "aaaa…0001", "bbbb…0002"


def counters(stats: TokenStats) -> tuple[int, int, int, int, int]:
    return (stats.leases, stats.ok, stats.rate_limited, stats.errors, stats.in_flight)


# -- counting ----------------------------------------------------------------------------


async def test_lease_that_ends_without_a_report_counts_ok() -> None:
    pool = TokenPool([A])
    async with pool.lease():
        assert counters(pool.stats().token(NAME_A)) == (1, 0, 0, 0, 1)
    assert counters(pool.stats().token(NAME_A)) == (1, 1, 0, 0, 0)


async def test_lease_left_by_an_exception_counts_as_error_not_rate_limited() -> None:
    pool = TokenPool([A])
    with pytest.raises(ZeroDivisionError):
        async with pool.lease():
            _ = 1 / 0
    stats = pool.stats().token(NAME_A)
    assert counters(stats) == (1, 0, 0, 1, 0)
    assert (stats.state, stats.cooldown_left, stats.proven) == (TokenState.ACTIVE, 0.0, False)


async def test_failed_counts_an_error_and_disables_nothing() -> None:
    pool = TokenPool([A])
    async with pool.lease() as lease:
        lease.failed()
    stats = pool.stats().token(NAME_A)
    assert counters(stats) == (1, 0, 0, 1, 0)
    assert stats.state is TokenState.ACTIVE


async def test_succeeded_overrides_an_earlier_failed() -> None:
    pool = TokenPool([A])
    async with pool.lease() as lease:
        lease.failed()
        lease.succeeded()
    assert counters(pool.stats().token(NAME_A)) == (1, 1, 0, 0, 0)


async def test_pool_stats_sum_up_the_tokens() -> None:
    pool = TokenPool([A, B], trial_in_flight=None)
    held = await pool.acquire()
    async with pool.lease() as lease:
        lease.revoked()
    stats = pool.stats()
    assert (stats.active, stats.cooling, stats.disabled, stats.removed) == (1, 0, 1, 0)
    assert (stats.in_flight, stats.waiting, stats.granted) == (1, 0, 2)
    assert [t.name for t in stats.tokens] == [NAME_A, NAME_B]
    held.release()


# -- rate limited ------------------------------------------------------------------------


async def test_rate_limited_with_retry_after_cools_the_token_until_then(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(100))
    async with pool.lease() as lease:
        lease.rate_limited(retry_after=2)
    stats = pool.stats().token(NAME_A)
    assert (stats.state, stats.cooldown_left) == (TokenState.COOLING, 2.0)
    assert counters(stats) == (1, 0, 1, 0, 0)
    await asyncio.sleep(0.5)
    assert pool.stats().token(NAME_A).cooldown_left == 1.5
    async with pool.lease():
        assert now() == 2.0
    assert pool.stats().token(NAME_A).state is TokenState.ACTIVE


async def test_leases_go_to_another_token_while_one_cools(clock) -> None:
    now = clock()
    pool = TokenPool([A, B], limits=Limit(100, burst=100))
    async with pool.lease() as lease:
        lease.rate_limited(retry_after=5)
    names = []
    for _ in range(3):
        async with pool.lease() as lease:
            names.append(lease.name)
    assert (names, now()) == ([NAME_B] * 3, 0.0)
    stats = pool.stats()
    assert (stats.active, stats.cooling) == (1, 1)


async def test_backoff_doubles_up_to_its_cap_and_an_ok_lease_resets_it(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(100), backoff=(1.0, 4.0), calibrate=False)
    seen = []
    for _ in range(4):
        async with pool.lease() as lease:
            start = now()
            lease.rate_limited()
            seen.append((start, pool.stats().token(NAME_A).cooldown_left))
    assert seen == [(0.0, 1.0), (1.0, 2.0), (3.0, 4.0), (7.0, 4.0)]
    async with pool.lease():
        assert now() == 11.0  # fine this time: the backoff starts over
    async with pool.lease() as lease:
        lease.rate_limited()
    assert pool.stats().token(NAME_A).cooldown_left == 1.0


async def test_rate_limited_waiters_wait_for_the_cooldown_to_end(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(100))
    lease = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.25)
    lease.rate_limited(retry_after=3)
    lease.release()
    second = await waiter
    assert (now(), second.name) == (3.25, NAME_A)
    second.release()


@pytest.mark.parametrize("retry_after", [-1, math.nan])
async def test_rate_limited_rejects_a_negative_retry_after(retry_after: float) -> None:
    pool = TokenPool([A])
    async with pool.lease() as lease:
        with pytest.raises(ValueError, match="retry_after"):
            lease.rate_limited(retry_after=retry_after)
    assert pool.stats().token(NAME_A).state is TokenState.ACTIVE


# -- revoked -----------------------------------------------------------------------------


async def test_revoked_disables_the_token_with_the_reason() -> None:
    pool = TokenPool([A, B])
    async with pool.lease() as lease:
        lease.revoked("401 invalid key")
    stats = pool.stats().token(NAME_A)
    assert (stats.state, stats.reason) == (TokenState.DISABLED, "401 invalid key")
    async with pool.lease() as lease:
        assert lease.name == NAME_B


async def test_revoked_without_a_reason_says_revoked() -> None:
    pool = TokenPool([A, B])
    async with pool.lease() as lease:
        lease.revoked()
    assert pool.stats().token(NAME_A).reason == "revoked"


async def test_revoking_the_last_token_fails_every_waiter_at_once(clock) -> None:
    now = clock()
    pool = TokenPool([A], limits=Limit(1, per=1))
    lease = await pool.acquire()
    waiters = [asyncio.create_task(pool.acquire()) for _ in range(3)]
    await asyncio.sleep(0.25)
    lease.revoked("dead")
    done, pending = await asyncio.wait(waiters, timeout=10)
    assert (len(done), pending, now()) == (3, set(), 0.25)
    assert all(isinstance(w.exception(), NoTokensAvailable) for w in waiters)
    assert pool.stats().waiting == 0
    lease.release()
    with pytest.raises(NoTokensAvailable, match="disabled or removed"):
        await pool.acquire()
    assert now() == 0.25


async def test_revoking_one_of_two_tokens_leaves_the_waiters_to_the_other(clock) -> None:
    now = clock()
    pool = TokenPool([A, B], limits=Limit(1, per=1), trial_in_flight=None)
    first, second = await pool.acquire(), await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.25)
    first.revoked()
    got = await waiter
    assert (got.name, now()) == (NAME_B, 1.0)
    for lease in (first, second, got):
        lease.release()


# -- by hand -----------------------------------------------------------------------------


async def test_disable_and_enable_by_hand() -> None:
    pool = TokenPool([A, B])
    pool.disable(NAME_A, "quota spent")
    stats = pool.stats().token(NAME_A)
    assert (stats.state, stats.reason) == (TokenState.DISABLED, "quota spent")
    async with pool.lease() as lease:
        assert lease.name == NAME_B
    pool.enable(NAME_A)
    stats = pool.stats().token(NAME_A)
    assert (stats.state, stats.reason) == (TokenState.ACTIVE, None)
    async with pool.lease() as lease:
        assert lease.name == NAME_A


async def test_enabling_a_token_serves_the_waiters(clock) -> None:
    now = clock()
    pool = TokenPool([A, B], limits=Limit(1, per=1))
    pool.disable(NAME_B)
    async with pool.lease():
        pass
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0.25)
    pool.enable(NAME_B)
    got = await waiter
    assert (got.name, now()) == (NAME_B, 0.25)
    got.release()


async def test_with_every_token_disabled_new_leases_fail_at_once(clock) -> None:
    now = clock()
    pool = TokenPool([A, B])
    pool.disable(NAME_A)
    pool.disable(NAME_B)
    with pytest.raises(NoTokensAvailable):
        async with pool.lease():
            pass
    assert now() == 0.0


async def test_cool_by_hand_keeps_the_token_from_firing(clock) -> None:
    now = clock()
    pool = TokenPool([A])
    pool.cool(NAME_A, 3)
    stats = pool.stats().token(NAME_A)
    assert (stats.state, stats.cooldown_left) == (TokenState.COOLING, 3.0)
    async with pool.lease():
        assert now() == 3.0


@pytest.mark.parametrize("seconds", [-1, math.nan, math.inf])
async def test_cool_rejects_seconds_that_are_not_a_finite_non_negative_number(
    seconds: float,
) -> None:
    pool = TokenPool([A])
    with pytest.raises(ValueError, match="seconds must be a non-negative finite number"):
        pool.cool(NAME_A, seconds)


@pytest.mark.parametrize("action", ["disable", "enable", "cool"])
async def test_unknown_token_name_raises_key_error(action: str) -> None:
    pool = TokenPool([A])
    args = (1,) if action == "cool" else ()
    with pytest.raises(KeyError, match="no token named 'nope'"):
        getattr(pool, action)("nope", *args)


# -- impossible costs --------------------------------------------------------------------


async def test_cost_above_every_burst_raises_value_error_at_once(clock) -> None:
    now = clock()
    pool = TokenPool([A, Token(B, limits=Limit(10, burst=5))], limits=Limit(3))
    with pytest.raises(ValueError, match=r"cost 6 exceeds the burst of every token \(largest: 5\)"):
        async with pool.lease(cost=6):
            pass
    async with pool.lease(cost=5) as lease:
        assert lease.name == NAME_B
    assert (now(), pool.stats().waiting) == (0.0, 0)


async def test_cost_only_a_disabled_token_could_take_raises_no_tokens_available() -> None:
    pool = TokenPool([A, Token(B, limits=Limit(10, burst=5))], limits=Limit(3))
    pool.disable(NAME_B)
    with pytest.raises(NoTokensAvailable, match="cost 5"):
        await pool.acquire(cost=5)


async def test_waiter_whose_cost_only_a_disabled_token_fits_fails_at_once(clock) -> None:
    now = clock()
    pool = TokenPool([A, Token(B, limits=Limit(10, burst=5))], limits=Limit(3))
    async with pool.lease(cost=5):
        pass
    big = asyncio.create_task(pool.acquire(cost=5))
    await asyncio.sleep(0.1)
    pool.disable(NAME_B)
    await asyncio.wait([big], timeout=10)
    assert isinstance(big.exception(), NoTokensAvailable)
    assert now() == 0.1


@pytest.mark.parametrize(
    ("cost", "error", "message"),
    [
        (0, ValueError, "cost must be a positive finite number, got 0"),
        (-1, ValueError, "cost must be a positive finite number, got -1"),
        (math.nan, ValueError, "cost must be a positive finite number, got nan"),
        (math.inf, ValueError, "cost must be a positive finite number, got inf"),
        ("1", TypeError, "cost must be a number, not str"),
        (None, TypeError, "cost must be a number, not NoneType"),
    ],
)
async def test_invalid_cost_is_rejected_with_a_clear_message(
    cost: object, error: type[Exception], message: str
) -> None:
    pool = TokenPool([A])
    with pytest.raises(error) as info:
        async with pool.lease(cost=cost):  # type: ignore[arg-type]
            pass
    assert str(info.value) == message
    assert pool.stats().token(NAME_A).leases == 0


async def test_bool_cost_is_rejected() -> None:
    pool = TokenPool([A])
    with pytest.raises(TypeError, match="cost must be a number, not bool"):
        async with pool.lease(cost=True):
            pass


async def test_timeout_of_the_wrong_type_is_rejected_with_a_clear_message() -> None:
    pool = TokenPool([A])
    with pytest.raises(TypeError, match="timeout must be"):
        async with pool.lease(timeout="1"):  # type: ignore[arg-type]
            pass


@pytest.mark.parametrize("busy", [False, True])
@pytest.mark.parametrize("timeout", [-1, math.nan])
async def test_negative_or_nan_timeout_is_rejected(clock, busy: bool, timeout: float) -> None:
    clock()  # arms the watchdog
    pool = TokenPool([A], limits=Limit(1, per=1))
    if busy:
        async with pool.lease():
            pass
    with pytest.raises(ValueError, match=f"timeout must be None or >= 0 seconds, got {timeout}"):
        async with pool.lease(timeout=timeout):
            pass
    assert (pool.stats().waiting, pool.stats().granted) == (0, int(busy))


async def test_lease_timeout_is_a_timeout_error() -> None:
    assert issubclass(LeaseTimeout, TimeoutError)


@pytest.mark.looptime
async def test_after_a_429_the_token_resumes_at_its_steady_rate_not_with_a_burst(clock) -> None:
    """The server's bucket is full when it says 429: one call may go when Retry-After
    ends, then one per interval (not a fresh burst it would refuse again)."""
    now = clock()
    pool = TokenPool([A], limits=Limit(20, per=1.0), trial_in_flight=None, calibrate=False)
    async with pool.lease() as lease:
        lease.rate_limited(retry_after=2)
    times = []
    for _ in range(4):
        async with pool.lease():
            times.append(now())
    assert times == [2.0, 2.05, 2.1, 2.15]
