import asyncio

import pytest


@pytest.mark.looptime
async def test_virtual_time() -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.sleep(100)
    assert loop.time() - t0 == 100
