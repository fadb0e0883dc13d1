"""``async with pool`` on a pool that is already open is an error and leaves it open."""

from __future__ import annotations

import pytest

from aurora_async import TokenPool


async def test_entering_an_open_pool_again_is_an_error() -> None:
    pool = TokenPool(["tok-aaaaaaaa-1"])
    async with pool:
        with pytest.raises(RuntimeError, match="already open"):
            async with pool:
                pass  # pragma: no cover
        assert not pool.closed
