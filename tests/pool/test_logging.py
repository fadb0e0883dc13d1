"""The pool's structlog events: stable names and fields, and silence when unconfigured."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from aurora_async import Limit, TokenPool

A, B, C, D = (f"{c * 4}-secret-000{i}" for i, c in enumerate("abcd", start=1))
NAME_A, NAME_B, NAME_C, NAME_D = (f"{c * 4}…000{i}" for i, c in enumerate("abcd", start=1))


# -- event names and fields ----------------------------------------------------------------


@pytest.mark.looptime
async def test_cooling_says_how_long_and_why() -> None:
    pool = TokenPool([A, B], limits=Limit(100), backoff=(1.0, 60.0), calibrate=False)
    with capture_logs() as logs:
        async with pool.lease() as lease:
            lease.rate_limited(retry_after=2.5)
        async with pool.lease() as lease:
            lease.rate_limited()
        pool.cool(NAME_A, 4)
    assert logs == [
        {"event": "aurora.token.cooling", "log_level": "info", "token": NAME_A, "seconds": 2.5,
         "why": "retry_after"},
        {"event": "aurora.token.cooling", "log_level": "info", "token": NAME_B, "seconds": 1.0,
         "why": "backoff"},
        {"event": "aurora.token.cooling", "log_level": "info", "token": NAME_A, "seconds": 4.0,
         "why": "by_hand"},
    ]  # fmt: skip


@pytest.mark.looptime
async def test_disabling_enabling_and_the_low_water_mark() -> None:
    pool = TokenPool([A, B, C, D, "eeee-secret-0005"], low_water=0.25)
    with capture_logs() as logs:
        async with pool.lease() as lease:
            lease.revoked("401 Unauthorized")
        for name in (NAME_B, NAME_C):
            pool.disable(name)
        pool.disable(NAME_D, "quota")  # 1 of 5 active: below a quarter
        pool.enable(NAME_B)
    assert logs == [
        {"event": "aurora.token.disabled", "log_level": "warning", "token": NAME_A,
         "reason": "401 Unauthorized"},
        {"event": "aurora.token.disabled", "log_level": "warning", "token": NAME_B,
         "reason": "disabled by hand"},
        {"event": "aurora.token.disabled", "log_level": "warning", "token": NAME_C,
         "reason": "disabled by hand"},
        {"event": "aurora.token.disabled", "log_level": "warning", "token": NAME_D,
         "reason": "quota"},
        {"event": "aurora.pool.low", "log_level": "warning", "active": 1, "tokens": 5,
         "low_water": 0.25},
        {"event": "aurora.token.enabled", "log_level": "info", "token": NAME_B},
        {"event": "aurora.pool.recovered", "log_level": "info", "active": 2, "tokens": 5},
    ]  # fmt: skip


@pytest.mark.looptime
async def test_every_token_cooling_at_once_logs_the_pool_low(clock) -> None:
    clock()  # arms the watchdog
    pool = TokenPool([A, B, C, D], limits=Limit(100), trial_in_flight=None)
    with capture_logs() as logs:
        for _ in range(4):
            async with pool.lease() as lease:
                lease.rate_limited(retry_after=10)
        await asyncio.sleep(1)
    assert pool.stats().cooling == 4
    assert [e for e in logs if e["event"] == "aurora.pool.low"] == [
        {"event": "aurora.pool.low", "log_level": "warning", "active": 0, "tokens": 4,
         "low_water": 0.25},
    ]  # fmt: skip


@pytest.mark.looptime
async def test_exhausted_pool_says_how_many_waiters_failed(clock) -> None:
    clock()  # arms the watchdog
    pool = TokenPool([A], limits=Limit(1, per=1))
    held = await pool.acquire()
    waiters = [asyncio.create_task(pool.acquire()) for _ in range(2)]
    await asyncio.sleep(0.25)
    with capture_logs() as logs:
        held.revoked("gone")
        await asyncio.wait(waiters, timeout=10)
    held.release()
    assert [e for e in logs if e["event"] == "aurora.pool.exhausted"] == [
        {"event": "aurora.pool.exhausted", "log_level": "error", "failed_waiters": 2,
         "why": "every token is disabled or removed"},
    ]  # fmt: skip


@pytest.mark.looptime
async def test_removed_token_says_how_many_calls_it_still_has_in_flight() -> None:
    pool = TokenPool([A, B, C], trial_in_flight=None)
    held = await pool.acquire()
    with capture_logs() as logs:
        pool.replace_tokens([C])
    held.release()
    assert logs == [
        {"event": "aurora.token.removed", "log_level": "info", "token": NAME_A, "in_flight": 1},
        {"event": "aurora.token.removed", "log_level": "info", "token": NAME_B, "in_flight": 0},
    ]


@pytest.mark.looptime
async def test_a_lease_that_waited_logs_how_long_at_debug(clock) -> None:
    clock()  # arms the watchdog
    pool = TokenPool([A], limits=Limit(4, per=1, burst=1))
    with capture_logs() as logs:
        async with pool.lease():  # free: no event
            pass
        async with pool.lease(cost=1):
            pass
    assert logs == [
        {"event": "aurora.lease.waited", "log_level": "debug", "token": NAME_A, "cost": 1,
         "waited": 0.25},
    ]  # fmt: skip


def test_duplicate_tokens_in_a_file_name_the_lines(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(f"{A}\n{B}\n\n{A}\n{A}\n")
    with capture_logs() as logs:
        pool = TokenPool.from_file(path)
    assert [t.name for t in pool.stats().tokens] == [NAME_A, NAME_B]
    assert logs == [
        {"event": "aurora.tokens.duplicate", "log_level": "warning", "source": str(path),
         "token": NAME_A, "lines": [1, 4, 5], "kept_line": 1},
    ]  # fmt: skip


# -- without any logging configuration ---------------------------------------------------


@pytest.mark.looptime
async def test_unconfigured_events_go_to_the_aurora_async_stdlib_logger(
    clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock()  # arms the watchdog
    structlog.reset_defaults()
    caplog.set_level(logging.DEBUG, logger="aurora_async")
    pool = TokenPool([A, B], limits=Limit(4, per=1, burst=1), calibrate=False)
    async with pool.lease() as lease:
        lease.rate_limited(retry_after=1)
    async with pool.lease() as lease:
        lease.revoked()
    async with pool.lease():  # waits for A
        pass
    assert [(r.name, r.levelname, r.getMessage().split()[0]) for r in caplog.records] == [
        ("aurora_async", "INFO", "event='aurora.token.cooling'"),
        ("aurora_async", "WARNING", "event='aurora.token.disabled'"),
        ("aurora_async", "WARNING", "event='aurora.pool.low'"),
        ("aurora_async", "DEBUG", "event='aurora.lease.waited'"),
        ("aurora_async", "INFO", "event='aurora.pool.recovered'"),  # A's cooldown ended
    ]
    assert not structlog.is_configured()


SCRIPT = textwrap.dedent(
    """
    import asyncio, logging
    import structlog
    from aurora_async import Limit, NoTokensAvailable, TokenPool

    structlog.reset_defaults()

    async def main():
        pool = TokenPool({tokens!r}, limits=Limit(1000, per=1, burst=1))
        async with pool:
            async with pool.lease() as lease:
                lease.rate_limited(retry_after=60)      # info: cooling
            async with pool.lease() as lease:
                pass
            async with pool.lease() as lease:           # waits 1 ms: debug
                lease.revoked("401 for " + lease.token) # warning: disabled, pool low
            waiter = asyncio.create_task(pool.acquire())
            await asyncio.sleep(0)
            pool.disable(pool.stats().tokens[0].name)   # warning: disabled; error: exhausted
            try:
                await waiter
            except NoTokensAvailable:
                pass
            else:
                raise AssertionError("the waiter was served")
            pool.enable(pool.stats().tokens[1].name)    # info: enabled
            pool.replace_tokens({kept!r})               # info: removed

    asyncio.run(main())
    assert not structlog.is_configured()
    assert logging.getLogger().handlers == []
    assert logging.getLogger("aurora_async").handlers == []
    """
)


def test_unconfigured_logging_prints_nothing_on_stdout_and_only_warnings_on_stderr() -> None:
    secrets = ["sk-live-" + "7Hq2" * 10, "sk-live-" + "Zt9w" * 10]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    script = SCRIPT.format(tokens=secrets, kept=secrets[1:])
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, ""), done.stderr
    assert [line.split()[0] for line in done.stderr.splitlines()] == [
        "event='aurora.token.disabled'",
        "event='aurora.pool.low'",
        "event='aurora.token.disabled'",
        "event='aurora.pool.exhausted'",
    ]
    assert "sk-live-7Hq" not in done.stderr
    assert "sk-live-Zt9" not in done.stderr
