"""A pytest plugin: give synchronous tests an event loop that is closed afterwards.

looptime's plugin asks the event-loop policy for "the" loop around every test, which
for a synchronous test creates a loop that nobody closes; with warnings as errors, the
ResourceWarning then fails whichever test the garbage collector happens to run in.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Generator
from typing import Any

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, Any, Any]:
    if pyfuncitem.get_closest_marker("asyncio") is not None or inspect.iscoroutinefunction(
        pyfuncitem.function
    ):
        return (yield)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return (yield)
    finally:
        asyncio.set_event_loop(None)
        loop.close()
