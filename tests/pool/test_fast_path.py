"""A lease with a plain timeout takes the same fast path as one without: the careful path
(``PoolCore.prepare``) is for odd arguments, ``timeout=0``, an unbound loop and a closed
pool."""

from __future__ import annotations

import asyncio

import pytest

from aurora_async import LeaseTimeout, Limit, TokenPool
from aurora_async._pool.core import PoolCore

pytestmark = pytest.mark.looptime

A = "tok-aaaa-fastpath-0001"


async def test_timed_leases_with_free_capacity_skip_the_careful_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[object] = []
    careful = PoolCore.prepare

    def counted(self: PoolCore, cost: float, timeout: float | None) -> object:
        calls.append(timeout)
        return careful(self, cost, timeout)

    monkeypatch.setattr(PoolCore, "prepare", counted)
    pool = TokenPool([A], limits=Limit(100, burst=100), trial_in_flight=None)
    async with pool:
        for timeout in (30, 0.5, 2):
            (await pool.acquire(timeout=timeout)).release()
        assert calls == []  # all three: free capacity, granted on the fast path
        with pytest.raises(ValueError, match="timeout"):
            await pool.acquire(timeout=float("nan"))  # odd: the careful path says why
        (await pool.acquire(timeout=0)).release()  # timeout=0: careful, free now
        assert len(calls) == 2
        assert calls[1] == 0


async def test_a_timed_lease_that_waits_times_out_exactly() -> None:
    pool = TokenPool([A], limits=Limit(1, per=10, burst=1), trial_in_flight=None)
    async with pool:
        loop = asyncio.get_running_loop()
        (await pool.acquire(timeout=5)).release()
        start = loop.time()
        with pytest.raises(LeaseTimeout):
            await pool.acquire(timeout=2.5)  # the fast path queues it with its deadline
        assert loop.time() - start == 2.5
        lease = await pool.acquire(timeout=8)  # the token frees at 10 s from its first use
        assert round(loop.time() - start, 6) == 10.0
        lease.release()
