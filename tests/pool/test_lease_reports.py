"""What a lease reports (``rate_limited``, ``revoked``, ...) is checked before it is applied."""

from __future__ import annotations

import math

import pytest

from aurora_async import Limit, TokenPool


@pytest.mark.looptime
async def test_an_infinite_retry_after_is_refused() -> None:
    pool = TokenPool(["tok-aaaaaaaa-1"], limits=Limit(5))
    async with pool.lease() as lease:
        with pytest.raises(ValueError, match="retry_after must be"):
            lease.rate_limited(retry_after=math.inf)
