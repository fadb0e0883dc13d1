"""``Limit(..., scope="*")``: a window of its own for each scope a lease names (per-model
or per-endpoint limits without a list of the scopes), made on the scope's first lease
and forgotten once drained when a token has many. Virtual time, exact times."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from aurora_async import Limit, Token, TokenPool
from aurora_async._core.slot import SCOPES_KEPT, SCOPES_MAX
from aurora_async._pool.core import core_of

KEY = "sk-secret-template-000001"
#: 2 a minute in each scope; 100 a minute over all of them.
EACH = [Limit(100, per=60), Limit(2, per=60, scope="*")]


def pool_of(limits: list[Limit]) -> TokenPool:
    return TokenPool([Token(KEY, limits=limits)], trial_in_flight=None, calibrate=False)


@pytest.mark.looptime
async def test_each_scope_gets_its_own_window_from_the_template(
    clock: Callable[[], Callable[[], float]],
) -> None:
    pool = pool_of(EACH)
    async with pool:
        now = clock()
        for scope in ("gpt-4o", "gpt-4o-mini", "o1"):
            for _ in range(2):
                async with pool.lease(scope=scope):
                    assert now() == 0.0
        for _ in range(10):  # no scope: the template windows count nothing
            async with pool.lease():
                assert now() == 0.0
        async with pool.lease(scope="gpt-4o-mini"):
            assert now() == 30.0  # its own window: 2 a minute
        slot = next(iter(core_of(pool).sched.slots.values()))
        assert sorted(slot.scoped or {}) == ["gpt-4o", "gpt-4o-mini", "o1"]
        assert pool.stats().tokens[0].limits == ("100/60s", "2/60s [*]")


@pytest.mark.looptime
async def test_a_scope_the_token_declares_is_not_made_from_the_template(
    clock: Callable[[], Callable[[], float]],
) -> None:
    pool = pool_of([*EACH, Limit(4, per=60, scope="search")])
    async with pool:
        now = clock()
        for _ in range(4):
            async with pool.lease(scope="search"):
                assert now() == 0.0
        async with pool.lease(scope="search"):
            assert now() == 15.0
        slot = next(iter(core_of(pool).sched.slots.values()))
        assert slot.scoped is None


@pytest.mark.looptime
async def test_a_cost_beyond_the_templates_burst_is_refused_at_once() -> None:
    """(As for a declared scope: a token's largest cost is its smallest requests
    burst, scoped windows included.)"""
    pool = pool_of([Limit(100, per=60), Limit(2, per=60, scope="*")])
    async with pool:
        with pytest.raises(ValueError, match="cost 3 requests in a exceeds the burst"):
            await pool.acquire(cost=3, scope="a")
        (await pool.acquire(cost=2, scope="a", timeout=0)).release()


@pytest.mark.looptime
async def test_settling_in_one_scope_leaves_every_other_scope_alone(
    clock: Callable[[], Callable[[], float]],
) -> None:
    """A lease in scope "a" settled for more (and one settled for less) changes scope
    "a"'s windows only: scope "b", declared or made from the template, keeps its room."""
    limits = [
        Limit(100, per=60),
        Limit(100, per=60, unit="tokens", scope="*"),
        Limit(100, per=60, unit="tokens", scope="b"),
    ]
    pool = pool_of(limits)
    async with pool:
        now = clock()
        async with pool.lease(cost={"tokens": 50}, scope="a") as lease:
            lease.settle(tokens=80)
        async with pool.lease(cost={"tokens": 50}, scope="c") as lease:
            lease.settle(tokens=10)
        async with pool.lease(cost={"tokens": 100}, scope="b"):
            assert now() == 0.0  # b's window: untouched by a's debt or c's refund
        async with pool.lease(cost={"tokens": 90}, scope="c"):
            assert now() == 0.0  # c's refund came back to c
        async with pool.lease(cost={"tokens": 30}, scope="a"):
            assert now() == pytest.approx(6.0, abs=1e-6)  # a holds 80: 10 to drain


@pytest.mark.looptime
async def test_a_429_in_a_scope_fills_that_scopes_own_window(
    clock: Callable[[], Callable[[], float]],
) -> None:
    pool = pool_of(EACH)
    async with pool:
        now = clock()
        async with pool.lease(scope="a") as lease:
            lease.rate_limited(retry_after=10)
        async with pool.lease(scope="b"):
            assert now() == 0.0
        async with pool.lease(scope="a"):
            assert now() == 10.0  # one call when the cooldown ends ...
        async with pool.lease(scope="a"):
            assert now() == 40.0  # ... then the steady rate


@pytest.mark.looptime
async def test_a_cancelled_waiter_gives_back_a_scope_window_made_for_it() -> None:
    """The grant made scope "a"'s window and charged it; the waiter is cancelled before
    it resumes: the charge comes back (the token's state before the grant had no such
    window to restore, so the window's part is given back)."""
    key = Token(KEY, limits=[Limit(10, per=60), Limit(1, per=60, scope="*")], max_in_flight=1)
    pool = TokenPool([key], trial_in_flight=None, calibrate=False)
    held = await pool.acquire()  # the token's one call in flight
    waiting = asyncio.create_task(pool.acquire(scope="a"))
    await asyncio.sleep(0)
    held.release()  # the waiter is granted: "a"'s window is made and charged ...
    waiting.cancel()  # ... and cancelled before it resumes
    with pytest.raises(asyncio.CancelledError):
        await waiting
    lease = await pool.acquire(scope="a", timeout=0)  # "a" has its one call back
    lease.release()


@pytest.mark.looptime
async def test_scopes_made_from_the_template_are_forgotten_once_drained() -> None:
    pool = pool_of([Limit(10_000, per=60, burst=10_000), Limit(2, per=60, scope="*")])
    async with pool:
        slot = next(iter(core_of(pool).sched.slots.values()))
        for n in range(SCOPES_KEPT):
            async with pool.lease(scope=f"s{n}"):
                pass
        assert len(slot.scoped or {}) == SCOPES_KEPT
        async with pool.lease(scope="one-more"):  # none drained yet: kept
            pass
        assert len(slot.scoped or {}) == SCOPES_KEPT + 1
        await asyncio.sleep(31)  # 1 of 2 drains in 30 s: all the old ones are empty
        async with pool.lease(scope="after"):
            pass
        assert sorted(slot.scoped or {}) == ["after"]


@pytest.mark.looptime
async def test_a_token_holds_at_most_scopes_max_scopes_and_a_new_one_waits_for_a_drain(
    clock: Callable[[], Callable[[], float]],
) -> None:
    """However many scopes are asked, a token keeps windows for SCOPES_MAX at once: one
    more waits until the first of them has drained (never over any scope's limit: a
    forgotten scope was empty), and takes its place."""
    pool = pool_of([Limit(10_000, per=60, burst=10_000), Limit(2, per=60, scope="*")])
    async with pool:
        now = clock()
        slot = next(iter(core_of(pool).sched.slots.values()))
        (await pool.acquire(scope="s0")).release()  # 1 of 2: drains at 30 s
        await asyncio.sleep(1)
        for n in range(1, SCOPES_MAX):  # the rest at 1 s: they drain at 31 s
            (await pool.acquire(scope=f"s{n}", timeout=0)).release()
        assert len(slot.scoped or {}) == SCOPES_MAX
        with pytest.raises(TimeoutError):
            await pool.acquire(scope="new", timeout=0)  # no room for one more now
        others = asyncio.create_task(pool.acquire(scope="s7"))  # a known scope: at once
        assert (await others).waited == 0.0
        (await others).release()
        lease = await pool.acquire(scope="new")
        assert now() == 30.0  # s0 drained, was forgotten, and "new" took its place
        lease.release()
        assert "s0" not in (slot.scoped or {})
        assert len(slot.scoped or {}) == SCOPES_MAX
        lease = await pool.acquire(scope="newer")
        assert now() == 31.0  # then the others drained at 31 s and were forgotten, but
        lease.release()  # s7, used twice (drains at 61 s)
        assert sorted(slot.scoped or {}) == ["new", "newer", "s7"]


def test_the_template_is_taken_on_redis() -> None:
    """Shared through Redis (``tests/redis/test_templates.py``), no longer refused."""
    from aurora_async import RedisBackend

    pool = TokenPool(
        [Token(KEY, limits=EACH)],
        backend=RedisBackend("redis://127.0.0.1:1", namespace="templates"),
    )
    assert pool.stats().tokens[0].limits == ("100/60s", "2/60s [*]")


def test_a_lease_may_not_name_the_template() -> None:
    pool = pool_of(EACH)
    with pytest.raises(ValueError, match="scope must name an endpoint group"):
        pool.lease(scope="*")
    assert repr(Limit(2, per=60, scope="*")) == "Limit(rate=2.0, per=60.0, burst=2.0, scope='*')"


@pytest.mark.looptime
async def test_a_refund_after_a_grant_that_made_and_forgot_scopes_lines_up() -> None:
    """A grant for a new scope, on a token holding SCOPES_KEPT scopes, forgets a drained
    one and makes its own (the same number of windows): its refund must give back that
    grant's parts, not lay saved states over shifted windows (which let a full scope
    fire again)."""
    limits = [Limit(10_000, per=60, burst=10_000), Limit(2, per=60, scope="*")]
    pool = TokenPool([Token(KEY, limits=limits, max_in_flight=1)], trial_in_flight=None)
    async with pool:
        slot = next(iter(core_of(pool).sched.slots.values()))
        (await pool.acquire(scope="s0")).release()  # drained by 31 s
        await asyncio.sleep(31)
        for n in range(1, SCOPES_KEPT):  # each used to the brim at 31 s
            for _ in range(2):
                (await pool.acquire(scope=f"s{n}", timeout=0)).release()
        held = await pool.acquire()  # the one call in flight
        waiting = asyncio.create_task(pool.acquire(scope="new"))
        await asyncio.sleep(0)
        held.release()  # granted: "new" made, "s0" forgotten ...
        waiting.cancel()  # ... and cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert "s0" not in (slot.scoped or {})
        with pytest.raises(TimeoutError):
            await pool.acquire(scope="s1", timeout=0)  # still full: 2 of 2
        (await pool.acquire(scope="new", timeout=0)).release()  # its part came back
        (await pool.acquire(scope="new", timeout=0)).release()


@pytest.mark.looptime
async def test_new_limits_start_a_scopes_windows_full_too() -> None:
    """A reload that changes the token's limits starts every window full, those made for
    its scopes included: a used-up scope does not fire again at once."""
    pool = pool_of(EACH)
    async with pool:
        for _ in range(2):
            (await pool.acquire(scope="a", timeout=0)).release()
        pool.replace_tokens([Token(KEY, limits=[Limit(200, per=60), *EACH[1:]])])
        with pytest.raises(TimeoutError):
            await pool.acquire(scope="a", timeout=1)


def test_a_reload_that_brings_a_template_is_taken_on_redis() -> None:
    from aurora_async import RedisBackend

    pool = TokenPool(
        [Token(KEY, limits=[Limit(100, per=60)])],
        backend=RedisBackend("redis://127.0.0.1:1", namespace="templates"),
    )
    pool.replace_tokens([KEY, Token("sk-secret-template-000002", limits=EACH)])
    assert pool.stats().tokens[1].limits == ("100/60s", "2/60s [*]")
