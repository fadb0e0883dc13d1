"""A grant handed back (its waiter cancelled before it resumed) undoes exactly that grant:
not a probe's charge, not a cooldown, not a token a reload removed."""

from __future__ import annotations

import asyncio

import pytest

from aurora_async import HealthChecker, Limit, Token, TokenPool, TokenState


@pytest.mark.looptime
async def test_a_refund_does_not_erase_a_probe_charge() -> None:
    """A health probe charged between a grant and its refund must stay charged."""
    y = Token("tokY-yyyyyyyyyyyy", limits=[Limit(3, per=30, burst=3)], max_in_flight=1)
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
