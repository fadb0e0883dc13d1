"""What a pool shows of itself: tokens from the environment (and what a bad variable
says), ``stats().granted_per_second``, and the one timer that serves the whole queue.

Timed tests run on virtual time (looptime), so every time and rate is exact.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from aurora_async import LeaseTimeout, Limit, TokenFileError, TokenPool
from aurora_async._core.tokens import mask
from aurora_async._pool.core import core_of

S1, S2, S3 = "envA-first-secret-0001", "envB-second-secret-0002", "envC-third-secret-0003"
ALL = (S1, S2, S3)


def assert_secret_free(text: str, *secrets: str) -> None:
    for secret in secrets or ALL:
        assert secret not in text
        # nor more of it than its masked name shows (4 characters at each end)
        assert secret[:5] not in text
        assert secret[-5:] not in text


# -- TokenPool.from_env --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        f"{S1},{S2},{S3}",
        f"{S1}\n{S2}\n{S3}\n",
        f"  {S1}   {S2},\t{S3}  ",
        f"# the three tokens\n{S1}, {S2}\n\n{S3}",
    ],
)
def test_from_env_reads_the_tokens_in_order(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AURORA_TOKENS", value)
    pool = TokenPool.from_env(limits=Limit(3))
    stats = pool.stats()
    assert [t.name for t in stats.tokens] == [mask(S1), mask(S2), mask(S3)]
    assert [t.declared_limits for t in stats.tokens] == [("3/1s",)] * 3
    assert [t.limits for t in stats.tokens] == [("3/1s (burst 1)",)] * 3  # burst not given
    assert repr(pool) == "<TokenPool unopened tokens=3 usable=3 waiting=0>"
    assert_secret_free(repr(stats))


def test_from_env_takes_the_variable_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AURORA_TOKENS", raising=False)
    monkeypatch.setenv("MY_APP_TOKENS", f"{S2},{S1}")
    pool = TokenPool.from_env("MY_APP_TOKENS")
    assert [t.name for t in pool.stats().tokens] == [mask(S2), mask(S1)]


@pytest.mark.looptime
async def test_tokens_from_env_are_leased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AURORA_TOKENS", f"{S1},{S2}")
    async with TokenPool.from_env(limits=Limit(1, per=60)) as pool:
        leased = []
        for _ in range(2):
            async with pool.lease(timeout=0) as lease:
                leased.append(lease.token)
    assert leased == [S1, S2]


def test_a_token_listed_twice_is_kept_once_with_a_warning_that_names_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AURORA_TOKENS", f"{S1},{S2},{S1}")
    with capture_logs() as logs:
        pool = TokenPool.from_env()
    assert [t.name for t in pool.stats().tokens] == [mask(S1), mask(S2)]
    duplicates = [e for e in logs if e["event"] == "aurora.tokens.duplicate"]
    assert len(duplicates) == 1
    assert duplicates[0]["source"] == "$AURORA_TOKENS"
    assert duplicates[0]["token"] == mask(S1)
    assert duplicates[0]["lines"] == [1, 3]
    assert_secret_free(repr(logs))


def error_text(error: BaseException) -> str:
    """Everything an error shows: message, repr, and the traceback a user would see."""
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


@pytest.mark.parametrize(
    ("value", "line", "message"),
    [
        (None, None, "the environment variable is not set"),
        ("", None, "no tokens found: it is empty"),
        (" ,\n , ", None, "no tokens found: it is empty or holds only separators"),
        ("# only a comment\n", None, "no tokens found"),
        (f"{S1},{S2[:8]}\x07{S2[8:]}", 2, r"control character U\+0007 \(BELL\) inside a token"),
        (f"{S1} {S2[:8]}\u200b{S2[8:]}", 2, r"invisible character U\+200B"),
        (f"{S1} #{S2}", 2, "a '#' comment after a token"),
    ],
)
def test_a_bad_variable_is_a_clear_error_that_names_it_and_no_secret(
    monkeypatch: pytest.MonkeyPatch, value: str | None, line: int | None, message: str
) -> None:
    if value is None:
        monkeypatch.delenv("AURORA_TOKENS", raising=False)
    else:
        monkeypatch.setenv("AURORA_TOKENS", value)
    with pytest.raises(TokenFileError, match=message) as caught:
        TokenPool.from_env()
    error = caught.value
    assert (error.path, error.line) == ("$AURORA_TOKENS", line)
    where = "$AURORA_TOKENS" if line is None else f"$AURORA_TOKENS:{line}"
    assert str(error).startswith(f"{where}: ")
    assert_secret_free(error_text(error))


def test_an_error_names_the_variable_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AURORA_TOKENS", S1)  # not the one asked for
    monkeypatch.delenv("OTHER_TOKENS", raising=False)
    with pytest.raises(TokenFileError, match=r"^\$OTHER_TOKENS: the environment variable") as e:
        TokenPool.from_env("OTHER_TOKENS")
    assert "AURORA_TOKENS_FILE" in str(e.value)  # the other way to give tokens
    assert_secret_free(error_text(e.value))


# -- stats().granted_per_second --------------------------------------------------------------


@pytest.mark.looptime
async def test_granted_per_second_over_a_known_window(clock: Callable[[], Any]) -> None:
    """One token that fires 4 times a second, leased back to back: grants at 0, 0.25,
    ..., 2.25. The rate counts the grants after the oldest mark (the first grant, at 0)
    over the time since it: 9 in 2.25 s, then the same 9 over 4.5 s once idle."""
    now = clock()
    pool = TokenPool(["rate-token-0001"], limits=Limit(4, per=1, burst=1), trial_in_flight=None)
    assert pool.stats().granted_per_second == 0.0
    times = []
    for _ in range(10):
        async with pool.lease():
            times.append(now())
    assert times == [k * 0.25 for k in range(10)]
    stats = pool.stats()
    assert (stats.granted, stats.granted_per_second) == (10, 4.0)
    await asyncio.sleep(2.25)
    assert now() == 4.5
    assert pool.stats().granted_per_second == 2.0


@pytest.mark.looptime
async def test_granted_per_second_forgets_what_is_older_than_its_window(
    clock: Callable[[], Any],
) -> None:
    """A burst of 100 at 0, then one grant a second. The pool marks (time, granted) at
    most once a second and keeps the last twelve marks: the burst counts until its mark
    (at 0) falls out of the window, at 12 s; from then on the rate is the steady 1/s."""
    now = clock()
    pool = TokenPool(["rate-token-0002"], limits=Limit(100, per=1, burst=100), trial_in_flight=None)
    for _ in range(100):
        async with pool.lease(timeout=0):
            pass
    assert pool.stats().granted_per_second == 0.0  # no time has passed since the mark
    rates = {}
    for k in range(1, 21):
        await asyncio.sleep(1)
        async with pool.lease(timeout=0):
            assert now() == k
        rates[k] = pool.stats().granted_per_second
    # marks at 0 (1 granted), then at k (100 + k granted)
    assert rates[1] == 100 / 1  # 101 - 1 over 1 s
    assert rates[5] == 104 / 5
    assert rates[11] == 110 / 11
    assert rates[12] == 11 / 11  # the mark at 0 is gone: (112 - 101) / (12 - 1)
    assert all(rates[k] == 1.0 for k in range(12, 21))
    assert pool.stats().granted == 120


# -- one timer for the whole pool ----------------------------------------------------------


class TimerLog:
    """Wraps ``loop.call_at`` to log the pool's own timer (its ``_on_timer``): when each
    is armed, how many leases each wake granted, and how many were pending at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pool: TokenPool) -> None:
        self.loop = loop
        self.pool = pool
        self.armed: list[float] = []
        self.wakes: list[tuple[float, int]] = []  # (time, leases granted in that wake)
        self.handles: list[asyncio.TimerHandle] = []
        self.fired: set[int] = set()  # indices in handles of the timers that went off
        self.most_pending = 0  # the most armed at once, neither gone off nor cancelled
        self._call_at = loop.call_at

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        if getattr(callback, "__self__", None) is not core_of(self.pool) or (
            getattr(callback, "__name__", "") != "_on_timer"
        ):
            return self._call_at(when, callback, *args, **kw)
        fire = callback
        number = len(self.handles)

        def wake() -> None:
            self.fired.add(number)
            before = self.pool.stats().granted
            fire()
            self.wakes.append((round(self.loop.time(), 6), self.pool.stats().granted - before))

        self.armed.append(round(when, 6))
        handle = self._call_at(when, wake, *args, **kw)
        self.handles.append(handle)
        pending = sum(
            1 for n, h in enumerate(self.handles) if not h.cancelled() and n not in self.fired
        )
        self.most_pending = max(self.most_pending, pending)
        return handle


async def queue_behind_busy_tokens(
    monkeypatch: pytest.MonkeyPatch, tokens: int, waiters: int, stagger: float
) -> tuple[TimerLog, dict[float, int]]:
    """``tokens`` tokens of 1 a second, each used once (token i at ``i * stagger``), then
    ``waiters`` leases queued behind them; returns the timer log and grants per instant."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    secrets = [f"t{i:03d}-one-timer-secret-{i:04d}" for i in range(tokens)]
    pool = TokenPool(secrets, limits=Limit(1, per=1), trial_in_flight=None)
    timers = TimerLog(loop, pool)
    monkeypatch.setattr(loop, "call_at", timers.call_at)
    for i in range(tokens):
        if stagger:
            await asyncio.sleep(start + i * stagger - loop.time())
        async with pool.lease(timeout=0):
            pass
    grants: dict[float, int] = {}

    async def one() -> None:
        async with pool.lease():
            t = round(loop.time() - start, 6)
            grants[t] = grants.get(t, 0) + 1

    tasks = [asyncio.create_task(one()) for _ in range(waiters)]
    await asyncio.sleep(0)  # every waiter is queued
    assert pool.stats().waiting == waiters
    await asyncio.gather(*tasks)
    timers.armed = [round(t - start, 6) for t in timers.armed]
    timers.wakes = [(round(t - start, 6), n) for t, n in timers.wakes]
    return timers, grants


@pytest.mark.looptime
async def test_one_wake_serves_every_token_that_frees_at_that_instant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Eight tokens free up together every second: each wake of the pool's one timer
    grants eight leases; five wakes serve forty waiters, and never two timers pending."""
    timers, grants = await queue_behind_busy_tokens(monkeypatch, tokens=8, waiters=40, stagger=0)
    assert grants == {1.0: 8, 2.0: 8, 3.0: 8, 4.0: 8, 5.0: 8}
    assert timers.armed == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert timers.wakes == [(1.0, 8), (2.0, 8), (3.0, 8), (4.0, 8), (5.0, 8)]
    assert timers.most_pending == 1


@pytest.mark.looptime
async def test_the_timer_wakes_once_per_instant_something_is_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four tokens used an eighth of a second apart free up an eighth apart: one wake
    (and one grant) per instant, one timer armed after another, never two at once."""
    timers, grants = await queue_behind_busy_tokens(monkeypatch, tokens=4, waiters=8, stagger=0.125)
    instants = [1.0, 1.125, 1.25, 1.375, 2.0, 2.125, 2.25, 2.375]
    assert grants == dict.fromkeys(instants, 1)
    # queued at 0.375, the first wake is for token 0, free again at 1.0
    assert timers.armed == instants
    assert timers.wakes == [(t, 1) for t in instants]
    assert timers.most_pending == 1


@pytest.mark.looptime
async def test_the_pool_keeps_one_timer_however_the_queue_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two tokens busy until 1.0 and five waiters. The head is cancelled at 0.25 (the
    pool looks again, and keeps its timer for 1.0); a waiter with a deadline of 0.75
    arrives at 0.5 (the timer moves earlier, and back once it has expired)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    pool = TokenPool(
        ["aaaa-one-timer-0001", "bbbb-one-timer-0002"], limits=Limit(1), trial_in_flight=None
    )
    timers = TimerLog(loop, pool)
    monkeypatch.setattr(loop, "call_at", timers.call_at)
    for _ in range(2):
        async with pool.lease(timeout=0):
            pass
    granted: list[tuple[int, float]] = []

    async def one(i: int, timeout: float | None = None) -> None:
        async with pool.lease(timeout=timeout):
            granted.append((i, round(loop.time() - start, 6)))

    waiters = [asyncio.create_task(one(i)) for i in range(5)]
    await asyncio.sleep(0.25)
    waiters[0].cancel()
    await asyncio.sleep(0.25)
    hurried = asyncio.create_task(one(5, timeout=0.25))
    with pytest.raises(LeaseTimeout):
        await hurried
    assert round(loop.time() - start, 6) == 0.75
    await asyncio.gather(*waiters[1:])
    assert waiters[0].cancelled()
    assert granted == [(1, 1.0), (2, 1.0), (3, 2.0), (4, 2.0)]
    assert [round(t - start, 6) for t in timers.armed] == [1.0, 0.75, 1.0, 2.0]
    assert [(round(t - start, 6), n) for t, n in timers.wakes] == [(0.75, 0), (1.0, 2), (2.0, 2)]
    assert timers.most_pending == 1
