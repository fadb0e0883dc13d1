"""``pool.request`` gives its lease back when it fails before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest

from aurora_async import (
    Token,
    TokenPool,
)

from .support import A, ok, serve


@pytest.mark.looptime
@pytest.mark.parametrize(
    "bad",
    [
        {"auth": lambda token, headers, params: 1 / 0},
        {"headers": 42},
        {"params": object()},
    ],
)
async def test_a_failure_between_lease_and_send_releases_the_lease(bad: dict[str, Any]) -> None:
    auth = bad.pop("auth", None)
    async with serve(ok) as url:
        pool = TokenPool([Token(A, max_in_flight=1)], trial_in_flight=None, auth=auth)
        async with pool:
            with pytest.raises((ZeroDivisionError, TypeError)):
                await pool.get(url, **bad)
            assert pool.stats().in_flight == 0
