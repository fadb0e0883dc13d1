"""A token's secret never shows: not in reprs, stats, exception messages or log events.

Every check scans for the whole secret and for each 9-character piece of it (a masked
name shows at most 8 characters), so a partial leak fails too.
"""

from __future__ import annotations

import asyncio
import random
import string
import traceback
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from aurora_async import (
    LeaseTimeout,
    Limit,
    NoTokensAvailable,
    PoolClosed,
    Token,
    TokenFileError,
    TokenPool,
)


def _secret(seed: int) -> str:
    rng = random.Random(seed)
    return "sk-live-" + "".join(rng.choices(string.ascii_letters + string.digits, k=40))


S1, S2, S3 = (_secret(seed) for seed in (1, 2, 3))
SECRETS = (S1, S2, S3)
N1, N2, N3 = (f"{s[:4]}…{s[-4:]}" for s in SECRETS)


def leaks(text: str, secrets: tuple[str, ...] = SECRETS) -> list[str]:
    """Every 9-character piece of a secret found in ``text`` (empty: no leak)."""
    return [s[i : i + 9] for s in secrets for i in range(len(s) - 8) if s[i : i + 9] in text]


def exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args)


def test_the_secrets_are_long_and_distinct() -> None:
    assert len({S1, S2, S3}) == 3
    assert all(len(s) == 48 for s in SECRETS)
    assert leaks(S1) != []  # the scanner finds what it looks for


# -- the Token itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "name"),
    [
        (S1, N1),
        ("abcdefghijklmnop", "abcd…mnop"),
        ("abcdefgh", "ab…gh"),
        ("abcd", "a…d"),
        ("abc", "…(3)"),
    ],
)
def test_masked_name_shows_at_most_a_quarter_at_each_end(secret: str, name: str) -> None:
    assert Token(secret).name == name


def test_token_str_and_repr_show_only_the_masked_name() -> None:
    token = Token(S1, limits=Limit(3), max_in_flight=2)
    assert str(token) == N1
    assert repr(token) == (
        f"Token('{N1}', limits=[Limit(rate=3.0, per=1.0, burst=3.0)], max_in_flight=2)"
    )
    assert leaks(str(token) + repr(token) + repr(Token(S2)) + repr([Token(S3)])) == []


def test_invalid_token_error_does_not_carry_the_secret() -> None:
    with pytest.raises(ValueError, match="white space or control characters") as info:
        Token(f"{S1[:20]} {S1[20:]}")
    assert leaks(exception_text(info.value)) == []


def test_token_file_error_does_not_carry_the_secret(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text(f"{S1}\n{S2[:20]}\t{S2[20:]}\n")
    with pytest.raises(TokenFileError) as info:
        TokenPool.from_file(path)
    assert (info.value.path, info.value.line) == (str(path), 2)
    assert leaks(exception_text(info.value)) == []


# -- reprs and stats ---------------------------------------------------------------------


@pytest.mark.looptime
async def test_pool_lease_and_stats_reprs_never_show_a_secret() -> None:
    pool = TokenPool([S1, S2, S3], limits=Limit(2, per=1), trial_in_flight=None)
    texts = [repr(pool)]
    lease = pool.lease()
    texts.append(repr(lease))
    async with lease:
        texts += [repr(lease), str(lease)]
        lease.rate_limited(retry_after=3)
    texts.append(repr(lease))
    async with pool.lease() as lease:
        lease.revoked(f"401 Unauthorized: {lease.token} was revoked")
    held = await pool.acquire()
    pool.replace_tokens([S1, S2])  # S3 is removed but still in flight
    stats = pool.stats()
    texts += [repr(pool), repr(stats), str(stats), repr(held)]
    texts += [repr(t) for t in stats.tokens]
    held.release()
    assert [t.state.value for t in stats.tokens] == ["cooling", "disabled", "removed"]
    assert leaks("\n".join(texts)) == []


@pytest.mark.looptime
async def test_a_secret_in_a_revoke_reason_is_replaced_by_its_name() -> None:
    pool = TokenPool([S1, S2])
    async with pool.lease() as lease:
        assert lease.token == S1
        lease.revoked(f"401 for {S1}; {S2} may be next")
    assert pool.stats().token(N1).reason == f"401 for {N1}; {N2} may be next"


def test_a_secret_in_a_reason_given_by_hand_is_replaced_by_its_name() -> None:
    pool = TokenPool([S1, S2])
    pool.disable(N2, reason=S2)
    assert pool.stats().token(N2).reason == N2


def test_redaction_hides_a_secret_that_extends_another() -> None:
    longer = S1 + "-" + S2[8:]
    pool = TokenPool([S1, longer])
    pool.disable(N1, reason=f"both dead: {longer}")
    assert leaks(repr(pool.stats()), (S1, longer)) == []


# -- exception messages ------------------------------------------------------------------


@pytest.mark.looptime
async def test_pool_exceptions_never_carry_a_secret(clock) -> None:
    clock()  # arms the watchdog
    pool = TokenPool([S1, S2], limits=Limit(1, per=1))
    raised: list[BaseException] = []
    with pytest.raises(ValueError, match="exceeds the burst") as cost_error:
        await pool.acquire(cost=5)
    raised.append(cost_error.value)
    async with pool.lease(), pool.lease():
        with pytest.raises(LeaseTimeout) as timeout:
            await pool.acquire(timeout=0.25)
        raised.append(timeout.value)
        with pytest.raises(LeaseTimeout) as timeout_now:
            await pool.acquire(timeout=0)
        raised.append(timeout_now.value)
        waiter = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.25)
        pool.disable(N1, reason=f"revoked: {S1}")
        pool.disable(N2, reason=f"revoked: {S2}")
        await asyncio.wait([waiter], timeout=10)
        raised.append(waiter.exception())  # type: ignore[arg-type]
    with pytest.raises(NoTokensAvailable) as none_left:
        await pool.acquire()
    raised.append(none_left.value)
    with pytest.raises(KeyError) as unknown:
        pool.disable("unknown")
    raised.append(unknown.value)
    await pool.aclose()
    with pytest.raises(PoolClosed) as closed:
        await pool.acquire()
    raised.append(closed.value)
    assert [type(e).__name__ for e in raised] == [
        "ValueError",
        "LeaseTimeout",
        "LeaseTimeout",
        "NoTokensAvailable",
        "NoTokensAvailable",
        "KeyError",
        "PoolClosed",
    ]
    assert leaks("\n".join(exception_text(e) for e in raised)) == []


@pytest.mark.parametrize("action", ["disable", "enable", "cool"])
def test_passing_a_secret_instead_of_a_name_does_not_echo_it(action: str) -> None:
    pool = TokenPool([S1])
    args = (1,) if action == "cool" else ()
    with pytest.raises(KeyError) as info:
        getattr(pool, action)(S1, *args)
    assert leaks(exception_text(info.value)) == []


# -- log events --------------------------------------------------------------------------


@pytest.mark.looptime
async def test_log_events_never_carry_a_secret(clock, tmp_path: Path) -> None:
    clock()  # arms the watchdog
    path = tmp_path / "tokens.txt"
    path.write_text(f"{S1}\n{S2}\n{S1}\n{S3}\n")
    with capture_logs() as logs:
        pool = TokenPool.from_file(path, limits=Limit(1, per=1), low_water=0.5)  # duplicate
        async with pool.lease() as lease:
            lease.rate_limited()  # S1 cooling
        async with pool.lease() as lease:
            lease.revoked(f"token {lease.token} revoked")  # S2 disabled: the pool is low
        held = await pool.acquire()  # S3
        waiter = asyncio.create_task(pool.acquire())
        await asyncio.sleep(0.25)
        pool.replace_tokens([S1, S2])  # S3 removed while in flight
        pool.disable(N1, reason=S1)  # nothing usable left: the waiter fails
        await asyncio.wait([waiter], timeout=10)
        held.release()
        pool.enable(N2)
        async with pool.lease():  # waits for S2 until 1.0
            pass
        await pool.aclose()
    assert isinstance(waiter.exception(), NoTokensAvailable)
    events = {e["event"] for e in logs}
    assert events >= {
        "aurora.tokens.duplicate",
        "aurora.token.cooling",
        "aurora.token.disabled",
        "aurora.token.enabled",
        "aurora.token.removed",
        "aurora.pool.low",
        "aurora.pool.exhausted",
        "aurora.lease.waited",
    }
    assert leaks(repr(logs)) == []
