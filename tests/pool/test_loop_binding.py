"""A pool built before any event loop runs binds to the loop later, keeping what it recorded."""

from __future__ import annotations

import asyncio

from aurora_async import Limit, TokenPool


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
