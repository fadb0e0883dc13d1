"""Regressions found in review: each test reproduces a bug that was fixed."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from aurora_async import HealthChecker, Limit, Token, TokenPool, TokenState


@pytest.mark.looptime
async def test_a_refund_does_not_erase_a_probe_charge() -> None:
    """A health probe charged between a grant and its refund must stay charged."""
    y = Token("tokY-yyyyyyyyyyyy", limits=[Limit(3, per=30)], max_in_flight=1)
    pool = TokenPool([y], trial_in_flight=None)
    loop = asyncio.get_running_loop()
    calls: list[float] = []

    async def probe(token: str) -> bool:
        calls.append(loop.time())
        return True

    checker = HealthChecker(pool, probe)
    first = await pool.acquire()
    calls.append(loop.time())
    waiter = asyncio.create_task(pool.acquire())
    checking = asyncio.create_task(checker.check(y.name))
    await asyncio.sleep(0)
    first.release()  # the waiter is granted...
    waiter.cancel()  # ...and cancelled before it resumes: its grant comes back
    await checking
    with pytest.raises(asyncio.CancelledError):
        await waiter
    for _ in range(3):
        try:
            lease = await pool.acquire(timeout=0)
        except TimeoutError:
            break
        calls.append(loop.time())
        lease.release()
    assert len(calls) == 3  # the lease, the probe, and one more: the burst of 3


@pytest.mark.looptime
async def test_a_refund_does_not_revive_a_stale_index_entry() -> None:
    """A token cooled between a grant and its refund must not be leased."""
    y = Token("tokY-yyyyyyyyyyyy", limits=[Limit(3, per=1)], max_in_flight=1)
    x = Token("tokX-xxxxxxxxxxxx", limits=[Limit(3, per=1)])
    pool = TokenPool([y, x], trial_in_flight=None)
    held = await pool.acquire()  # y, now at its in-flight cap
    (await pool.acquire(cost=3)).release()  # x, to the brim
    pool.cool(y.name, 0.5)
    await asyncio.sleep(0.55)
    task = asyncio.create_task(pool.acquire(cost=2))
    await asyncio.sleep(0)
    held.release()  # y goes to the waiter
    pool.cool(y.name, 60)  # cooled by hand before the waiter resumes
    task.cancel()  # and the waiter is cancelled: refund
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.stats().token(y.name).state is TokenState.COOLING
    names = []
    for _ in range(2):
        try:
            lease = await pool.acquire(timeout=0)
        except TimeoutError:
            continue
        names.append(lease.name)
    assert y.name not in names


def test_start_full_and_cooldowns_set_before_the_loop_runs_are_kept() -> None:
    """A pool built at import time (no loop yet) keeps what it recorded on "time 0"."""
    full = TokenPool(["tok-aaaaaaaa-1"], limits=Limit(5), start_full=True, trial_in_flight=None)
    cooled = TokenPool(["tok-bbbbbbbb-1"], limits=Limit(5), trial_in_flight=None)
    name = cooled.stats().tokens[0].name
    cooled.cool(name, 3600)

    async def free_now(pool: TokenPool) -> int:
        granted = 0
        for _ in range(10):
            try:
                async with pool.lease(timeout=0):
                    granted += 1
            except TimeoutError:
                break
        return granted

    async def main() -> tuple[int, int, float]:
        return await free_now(full), await free_now(cooled), cooled.stats().tokens[0].cooldown_left

    full_burst, cooled_burst, left = asyncio.run(main())
    assert (full_burst, cooled_burst) == (0, 0)
    assert 3599 < left <= 3600


@pytest.mark.looptime
async def test_a_refunded_lease_on_a_removed_token_is_not_counted() -> None:
    pool = TokenPool([Token("tok-a-aaaaaaaaaaaa", max_in_flight=1)], trial_in_flight=None)
    first = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    first.release()  # the waiter is granted...
    pool.replace_tokens(["tok-b-bbbbbbbbbbbb"])  # ...a reload drops its token...
    waiter.cancel()  # ...and it is cancelled before resuming
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.stats().granted == 1


async def test_retired_tokens_are_bounded() -> None:
    pool = TokenPool(["tok-gen-000000-xxxx"], limits=Limit(5))
    for gen in range(1, 2001):
        pool.disable(pool.stats().tokens[-1].name, "rotated")
        pool.replace_tokens([f"tok-gen-{gen:06d}-xxxx"])
    assert len(pool.stats().tokens) == 1
    assert len(pool._sched._retired) <= 1000


@pytest.mark.looptime
async def test_an_infinite_retry_after_is_refused() -> None:
    pool = TokenPool(["tok-aaaaaaaa-1"], limits=Limit(5))
    async with pool.lease() as lease:
        with pytest.raises(ValueError, match="retry_after must be"):
            lease.rate_limited(retry_after=math.inf)


async def test_entering_an_open_pool_again_is_an_error() -> None:
    pool = TokenPool(["tok-aaaaaaaa-1"])
    async with pool:
        with pytest.raises(RuntimeError, match="already open"):
            async with pool:
                pass  # pragma: no cover
        assert not pool.closed


async def test_watching_a_file_from_a_list_pool_applies_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text("tok-from-file-bbbbbbbb\n")
    pool = TokenPool(["tok-from-list-aaaaaaaa"], limits=Limit(5))
    pool.watch(path, poll_interval=0.02, use_events=False)
    async with pool:
        for _ in range(500):  # bounded wait for the first poll
            serving = [t.name for t in pool.stats().tokens if t.state is not TokenState.REMOVED]
            if serving == ["tok-…bbbb"]:
                break
            await asyncio.sleep(0.01)
        assert serving == ["tok-…bbbb"]
