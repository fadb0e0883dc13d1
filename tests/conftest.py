"""Shared fixtures: a relative virtual clock with a watchdog, and structlog left as each
test found it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """No test leaves structlog configured for the next one."""
    yield
    structlog.reset_defaults()


#: Virtual seconds after which a test that called ``clock()`` is cancelled: a lost
#: wake-up would otherwise leave the loop with nothing scheduled, and the run would hang.
WATCHDOG = 600.0


@pytest.fixture
def clock() -> Iterator[Callable[[], Callable[[], float]]]:
    """``now = clock()`` inside a test: ``now()`` is the loop time since that call,
    rounded to looptime's microsecond tick, so it compares exactly with ``==``.

    It also arms a watchdog that cancels the test after :data:`WATCHDOG` virtual seconds,
    so a waiter that is never woken fails the test instead of hanging the run.
    """
    watchdogs: list[asyncio.TimerHandle] = []

    def start() -> Callable[[], float]:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        message = f"watchdog: the test still runs after {WATCHDOG:g} virtual seconds"
        watchdogs.append(loop.call_later(WATCHDOG, task.cancel, message))
        t0 = loop.time()
        return lambda: round(loop.time() - t0, 6)

    yield start
    for handle in watchdogs:
        handle.cancel()
