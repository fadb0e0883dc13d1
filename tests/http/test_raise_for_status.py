"""``raise_for_status=True``: the ``RequestFailed`` keeps the status and every attempt."""

from __future__ import annotations

import pytest
from aiohttp import web

from aurora_async import (
    RequestFailed,
    TokenPool,
)

from .support import A, B, serve


@pytest.mark.looptime
async def test_raise_for_status_keeps_the_attempts_and_the_status() -> None:
    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503)

    async with serve(unavailable) as url, TokenPool([A, B], max_attempts=3) as pool:
        with pytest.raises(RequestFailed) as failed:
            await pool.get(url, raise_for_status=True)
    assert failed.value.status == 503
    assert len(failed.value.attempts) == 3
