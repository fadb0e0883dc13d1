"""Health probes (revive, disable, time out) and the token monitor, on virtual time."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from aurora_async import Limit, Outcome, TokenPool, TokenState, Verdict
from aurora_async._core.tokens import mask
from aurora_async._pool.core import core_of
from aurora_async._pool.health import (
    HealthChecker,
    MonitorReport,
    ProbeAction,
    ProbeReport,
    TokenMonitor,
    is_fatal,
)

pytestmark = pytest.mark.looptime

A, B, C, D, E = (f"{c * 4}-secret-{i:04d}" for i, c in enumerate("abcde", start=1))
NA, NB, NC, ND, NE = map(mask, (A, B, C, D, E))
SECRETS = (A, B, C, D, E)


def revoke(pool: TokenPool, name: str, reason: str = "HTTP 401 Unauthorized") -> None:
    """Disable a token the way a 401 does (probes revive those; not ones disabled by hand)."""
    core = core_of(pool)
    core.disable(core.slot(name), reason)


def events(
    logs: Sequence[Mapping[str, Any]], prefix: str = "aurora.health."
) -> list[Mapping[str, Any]]:
    return [e for e in logs if str(e["event"]).startswith(prefix)]


def no_secret_in(logs: object) -> bool:
    text = repr(logs)
    return not any(s in text for s in SECRETS)


class answers:
    """A probe answering from ``table`` (secret -> bool or Outcome), recording its calls
    as (loop time, secret)."""

    def __init__(self, table: Mapping[str, Any]) -> None:
        self.table = table
        self.calls: list[tuple[float, str]] = []

    async def __call__(self, token: str) -> Any:
        self.calls.append((asyncio.get_running_loop().time(), token))
        return self.table[token]


def running(checker: HealthChecker | TokenMonitor) -> bool:
    return checker.running


# -- revive, disable, time out -------------------------------------------------------------


async def test_a_disabled_token_that_works_again_is_revived() -> None:
    pool = TokenPool([A, B], limits=Limit(10))
    async with pool:
        revoke(pool, NA, "HTTP 401 Unauthorized")
        checker = HealthChecker(pool, answers({A: True, B: True}), probe_active=False)
        with capture_logs() as logs:
            reports = await checker.run_once()
        assert reports == [ProbeReport(NA, Verdict.OK, ProbeAction.REVIVED, None, 0.0)]
        assert pool.stats().token(NA).state is TokenState.ACTIVE
        assert events(logs) == [
            {"event": "aurora.health.revived", "log_level": "info", "token": NA,
             "verdict": "ok", "was": "HTTP 401 Unauthorized", "seconds": 0.0},
        ]  # fmt: skip
        assert {"event": "aurora.token.enabled", "log_level": "info", "token": NA} in logs


async def test_a_token_that_fails_fatally_is_disabled() -> None:
    pool = TokenPool([A, B], limits=Limit(10))
    async with pool:
        checker = HealthChecker(
            pool, answers({A: Outcome.revoked("HTTP 401 Unauthorized"), B: True})
        )
        with capture_logs() as logs:
            reports = await checker.run_once()
        assert sorted(reports, key=lambda r: r.name) == [
            ProbeReport(NA, Verdict.REVOKED, ProbeAction.DISABLED, "HTTP 401 Unauthorized", 0.0),
            ProbeReport(NB, Verdict.OK, ProbeAction.NONE, None, 0.0),
        ]
        a = pool.stats().token(NA)
        assert (a.state, a.reason) == (TokenState.DISABLED, "health probe: HTTP 401 Unauthorized")
        assert pool.stats().token(NB).state is TokenState.ACTIVE
        assert events(logs) == [
            {"event": "aurora.health.failed", "log_level": "warning", "token": NA,
             "verdict": "revoked", "reason": "HTTP 401 Unauthorized", "fatal": True,
             "action": "disabled"},
        ]  # fmt: skip


async def test_false_means_dead() -> None:
    pool = TokenPool([A], limits=Limit(10))
    async with pool:
        await HealthChecker(pool, answers({A: False})).run_once()
        stats = pool.stats().token(NA)
        assert (stats.state, stats.reason) == (
            TokenState.DISABLED,
            "health probe: health probe failed",
        )


async def test_a_probe_that_hangs_is_timed_out_and_cancelled() -> None:
    pool = TokenPool([A, B], limits=Limit(10))
    cancelled: list[str] = []

    async def probe(token: str) -> bool:
        if token == B:
            return True
        try:
            await asyncio.Event().wait()  # never answers
        except asyncio.CancelledError:
            cancelled.append(mask(token))
            raise
        return True  # pragma: no cover

    async with pool:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        checker = HealthChecker(pool, probe, timeout=5, budget=Limit(100))
        with capture_logs() as logs:
            reports = await checker.run_once()
        assert loop.time() - t0 == 5
        assert cancelled == [NA]
        hung = next(r for r in reports if r.name == NA)
        assert hung == ProbeReport(NA, None, ProbeAction.NONE, "timed out after 5s", 5.0, True)
        assert pool.stats().token(NA).state is TokenState.ACTIVE  # a timeout proves nothing
        assert events(logs) == [
            {"event": "aurora.health.timeout", "log_level": "warning", "token": NA,
             "timeout": 5.0, "state": "active"},
        ]  # fmt: skip
        assert checker._probing == set()


async def test_a_disabled_token_whose_probe_hangs_is_reported_quietly() -> None:
    pool = TokenPool([A], limits=Limit(10))

    async def probe(token: str) -> bool:
        await asyncio.sleep(3600)
        return True  # pragma: no cover

    async with pool:
        revoke(pool, NA, "dead")
        with capture_logs() as logs:
            [report] = await HealthChecker(pool, probe, timeout=1).run_once()
        assert report.timed_out
        assert [(e["event"], e["log_level"]) for e in events(logs)] == [
            ("aurora.health.timeout", "info")
        ]
        assert pool.stats().token(NA).state is TokenState.DISABLED


async def test_a_failure_that_is_not_fatal_changes_nothing() -> None:
    pool = TokenPool([A], limits=Limit(10))
    async with pool:
        probe = answers({A: Outcome.server_error("HTTP 503 Service Unavailable")})
        with capture_logs() as logs:
            [report] = await HealthChecker(pool, probe).run_once()
        assert report.action is ProbeAction.NONE
        assert report.verdict is Verdict.SERVER_ERROR
        assert pool.stats().token(NA).state is TokenState.ACTIVE
        assert events(logs) == [
            {"event": "aurora.health.failed", "log_level": "info", "token": NA,
             "verdict": "server_error", "reason": "HTTP 503 Service Unavailable",
             "fatal": False, "action": "none"},
        ]  # fmt: skip


async def test_the_fatal_policy_is_pluggable() -> None:
    pool = TokenPool([A], limits=Limit(10))
    async with pool:
        probe = answers({A: Outcome.client_error("HTTP 403 Forbidden")})

        def fatal(outcome: Outcome) -> bool:
            return is_fatal(outcome) or outcome.verdict is Verdict.CLIENT_ERROR

        [report] = await HealthChecker(pool, probe, fatal=fatal).run_once()
        assert report.action is ProbeAction.DISABLED
        assert pool.stats().token(NA).reason == "health probe: HTTP 403 Forbidden"


async def test_a_rate_limited_probe_cools_the_token() -> None:
    pool = TokenPool([A, B], limits=Limit(10), backoff=(2.0, 60.0))
    async with pool:
        probe = answers({A: Outcome.rate_limited(30.0), B: Outcome.rate_limited()})
        reports = await HealthChecker(pool, probe, budget=Limit(10)).run_once()
        assert {r.action for r in reports} == {ProbeAction.COOLED}
        assert pool.stats().token(NA).cooldown_left == 30.0
        assert pool.stats().token(NB).cooldown_left == 2.0  # the pool's first backoff step
        assert pool.stats().token(NA).rate_limited == 0  # a probe is not a lease


async def test_ok_with_a_cooldown_rests_the_token() -> None:
    pool = TokenPool([A], limits=Limit(10))
    async with pool:
        revoke(pool, NA)
        [report] = await HealthChecker(pool, answers({A: Outcome.ok(cooldown=12.0)})).run_once()
        assert report.action is ProbeAction.REVIVED
        stats = pool.stats().token(NA)
        assert (stats.state, stats.cooldown_left) == (TokenState.COOLING, 12.0)


async def test_a_disabled_token_still_failing_stays_disabled_quietly() -> None:
    pool = TokenPool([A], limits=Limit(10, burst=10))  # room for a probe each round
    async with pool:
        revoke(pool, NA, "HTTP 401 Unauthorized")
        for answer in (False, Outcome.rate_limited(5.0), Outcome.server_error()):
            with capture_logs() as logs:
                [report] = await HealthChecker(pool, answers({A: answer})).run_once()
            assert report.action is ProbeAction.NONE
            assert [e["log_level"] for e in events(logs)] == ["debug"]
            stats = pool.stats().token(NA)
            assert (stats.state, stats.reason) == (TokenState.DISABLED, "HTTP 401 Unauthorized")


async def test_a_probe_that_raises_is_not_fatal_and_its_error_is_redacted() -> None:
    pool = TokenPool([A], limits=Limit(10))

    async def probe(token: str) -> bool:
        raise ConnectionError(f"cannot reach https://api.example/whoami?key={token}")

    async with pool:
        with capture_logs() as logs:
            [report] = await HealthChecker(pool, probe).run_once()
        assert report.detail == f"ConnectionError: cannot reach https://api.example/whoami?key={NA}"
        assert report.verdict is None
        assert not report.timed_out
        assert pool.stats().token(NA).state is TokenState.ACTIVE
        assert [e["event"] for e in events(logs)] == ["aurora.health.failed"]
        assert no_secret_in(logs)
        assert no_secret_in(report)


async def test_a_probe_returning_nonsense_is_reported() -> None:
    pool = TokenPool([A], limits=Limit(10))
    async with pool:
        [report] = await HealthChecker(pool, answers({A: 200})).run_once()
        assert report.detail == "the probe returned int, not bool or Outcome"
        assert pool.stats().token(NA).state is TokenState.ACTIVE


async def test_reasons_are_redacted_in_reports_logs_and_the_pool() -> None:
    pool = TokenPool([A], limits=Limit(10))
    async with pool:
        probe = answers({A: Outcome.revoked(f"token {A} was revoked")})
        with capture_logs() as logs:
            [report] = await HealthChecker(pool, probe).run_once()
        assert report.detail == f"token {NA} was revoked"
        assert pool.stats().token(NA).reason == f"health probe: token {NA} was revoked"
        assert no_secret_in(logs)
        assert no_secret_in(report)
        assert no_secret_in(pool.stats())


# -- which tokens, how fast, how many at once ----------------------------------------------


async def test_probes_keep_to_their_own_budget() -> None:
    pool = TokenPool(SECRETS, limits=Limit(10))
    async with pool:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        probe = answers(dict.fromkeys(SECRETS, True))
        await HealthChecker(pool, probe, budget=Limit(1, per=2.0)).run_once()
        assert [round(t - t0, 6) for t, _ in probe.calls] == [0, 2, 4, 6, 8]


async def test_disabled_tokens_go_first() -> None:
    pool = TokenPool(SECRETS, limits=Limit(10))
    async with pool:
        revoke(pool, ND)
        probe = answers(dict.fromkeys(SECRETS, True))
        await HealthChecker(pool, probe, budget=Limit(100)).run_once()
        assert [t for _, t in probe.calls] == [D, A, B, C, E]


async def test_concurrency_is_capped() -> None:
    pool = TokenPool(SECRETS, limits=Limit(10))
    running = 0
    most = 0

    async def probe(token: str) -> bool:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(5)
        finally:
            running -= 1
        return True

    async with pool:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        checker = HealthChecker(pool, probe, budget=Limit(100), concurrency=2)
        reports = await checker.run_once()
        assert len(reports) == 5
        assert most == 2
        assert loop.time() - t0 == 15  # three waves of five seconds


async def test_never_two_probes_of_one_token_at_once() -> None:
    pool = TokenPool([A], limits=Limit(10))
    calls = 0

    async def probe(token: str) -> bool:
        nonlocal calls
        calls += 1
        await asyncio.sleep(5)
        return True

    async with pool:
        checker = HealthChecker(pool, probe, budget=Limit(100))
        first = asyncio.create_task(checker.check(NA))
        await asyncio.sleep(1)
        assert await checker.check(NA) is None  # already being probed
        assert await checker.run_once() == []  # the round skips it too
        assert (await first) is not None
        assert calls == 1
        assert (await checker.check(NA)) is not None  # free again
        assert calls == 2


async def test_busy_cooling_and_recently_proven_tokens_are_not_probed() -> None:
    pool = TokenPool([A, B, C, D], limits=Limit(10, burst=10), trial_in_flight=None)
    async with pool:
        probe = answers(dict.fromkeys(SECRETS, True))
        checker = HealthChecker(pool, probe, budget=Limit(100))
        pool.cool(NB, 60)
        held = await pool.acquire()  # one token busy
        busy = held.name
        await checker.run_once()
        probed = {mask(t) for _, t in probe.calls}
        assert probed == {NA, NC, ND} - {busy}
        held.release()  # a call gone well: traffic proved it
        probe.calls.clear()
        await checker.run_once()
        assert {mask(t) for _, t in probe.calls} == {NA, NC, ND} - {busy}


async def test_probe_active_false_probes_only_disabled_tokens() -> None:
    pool = TokenPool([A, B], limits=Limit(10))
    async with pool:
        revoke(pool, NB)
        probe = answers({A: True, B: False})
        await HealthChecker(pool, probe, probe_active=False).run_once()
        assert [t for _, t in probe.calls] == [B]


async def test_a_probe_is_charged_to_its_token_and_waits_for_room() -> None:
    """A probe is a call with the token: it never pushes the token over its limit."""
    pool = TokenPool([A], limits=Limit(1, per=10.0))
    async with pool:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        probe = answers({A: True})
        checker = HealthChecker(pool, probe, budget=Limit(100))
        async with pool.lease():
            pass  # the bucket is full until t=10
        assert await checker.run_once() == []  # no room: not probed
        assert await checker.check(NA) is None
        await asyncio.sleep(10)
        [report] = await checker.run_once()
        assert report.verdict is Verdict.OK
        async with pool.lease():  # the probe filled the bucket again
            assert loop.time() - t0 == 20


async def test_a_token_removed_while_probed_is_left_alone() -> None:
    pool = TokenPool([A, B], limits=Limit(10))

    async def probe(token: str) -> bool:
        await asyncio.sleep(1)
        return True

    async with pool:
        revoke(pool, NA)
        checker = HealthChecker(pool, probe, probe_active=False)
        round_ = asyncio.create_task(checker.run_once())
        await asyncio.sleep(0.5)
        pool.replace_tokens([B])  # a reload drops A while its probe runs
        [report] = await round_
        assert report.action is ProbeAction.GONE
        assert NA not in {t.name for t in pool.stats().tokens}


async def test_tokens_that_change_while_waiting_for_the_budget_are_skipped() -> None:
    pool = TokenPool([A, B, C], limits=Limit(10))
    async with pool:
        probe = answers(dict.fromkeys(SECRETS, True))
        checker = HealthChecker(pool, probe, budget=Limit(1, per=10.0))
        round_ = asyncio.create_task(checker.run_once())
        await asyncio.sleep(1)  # A probed at once; B and C wait for the budget
        pool.cool(NB, 60)  # B starts cooling
        pool.replace_tokens([A, B])  # C leaves the pool (it was idle: forgotten)...
        pool.replace_tokens([A, B, C])  # ...and comes back as a new slot
        reports = await round_
        assert [r.name for r in reports] == [NA]
        assert checker._capacity.borrowed_tokens == 0


async def test_removed_tokens_with_calls_in_flight_are_not_probed() -> None:
    pool = TokenPool([A, B], limits=Limit(10))
    async with pool:
        probe = answers(dict.fromkeys(SECRETS, True))
        checker = HealthChecker(pool, probe, budget=Limit(100))
        monitor = TokenMonitor(pool)
        await checker.run_once()
        probe.calls.clear()
        held = await pool.acquire()
        other = B if held.name == NA else A
        pool.replace_tokens([other])  # the held token is removed, its call still out
        assert [r.name for r in await checker.run_once()] == [mask(other)]
        assert monitor.sweep() == MonitorReport((), ())
        held.release()
        probe.calls.clear()
        await checker.run_once()
        assert set(checker._ok_seen) == {other}  # the departed token is forgotten


async def test_stopping_while_a_round_waits_for_the_budget_returns_its_capacity() -> None:
    pool = TokenPool([A, B, C], limits=Limit(10))
    async with pool:
        checker = HealthChecker(
            pool, answers(dict.fromkeys(SECRETS, True)), budget=Limit(1, per=60.0)
        )
        checker.start()
        await asyncio.sleep(1)
        assert checker._capacity.borrowed_tokens == 1  # the round waits for the budget
        await checker.stop()
        assert checker._capacity.borrowed_tokens == 0


async def test_a_round_cancelled_as_it_admits_a_probe_leaves_nothing_held() -> None:
    """The round's scope is cancelled just as the last probe is admitted (before its task
    has run): every probe is cancelled, and no capacity or mark is left behind."""
    pool = TokenPool([A, B], limits=Limit(10))
    started: list[str] = []

    async def probe(token: str) -> bool:
        started.append(token)
        await asyncio.sleep(1)
        return True  # pragma: no cover

    checker = HealthChecker(pool, probe, budget=Limit(100))

    class CancelsOnTheSecondProbe:
        calls = 0

        async def acquire(self) -> None:
            self.calls += 1
            if self.calls == 2:
                scope.cancel()  # no checkpoint here: B is still admitted and started

    async with pool:
        checker._budget = CancelsOnTheSecondProbe()  # type: ignore[assignment]
        with anyio.CancelScope() as scope:
            await checker.run_once()
        assert scope.cancelled_caught
        assert started == [A, B]
        assert checker._probing == set()
        assert checker._capacity.borrowed_tokens == 0


async def test_check_by_hand_and_unknown_names() -> None:
    pool = TokenPool([A], limits=Limit(10))
    async with pool:
        revoke(pool, NA)
        checker = HealthChecker(pool, answers({A: True}))
        report = await checker.check(NA)
        assert report is not None
        assert report.action is ProbeAction.REVIVED
        with pytest.raises(KeyError):
            await checker.check("nope")


# -- the schedule --------------------------------------------------------------------------


async def test_rounds_run_every_so_often_until_stopped() -> None:
    pool = TokenPool([A], limits=Limit(10))
    async with pool:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        revoke(pool, NA)
        probe = answers({A: False})
        checker = HealthChecker(pool, probe, every=60)
        assert not running(checker)
        async with checker:
            assert running(checker)
            checker.start()  # idempotent
            await asyncio.sleep(150)
        assert not running(checker)
        assert [round(t - t0, 6) for t, _ in probe.calls] == [0, 60, 120]
        await checker.stop()  # stopping twice is fine


async def test_rounds_stop_when_the_pool_closes() -> None:
    pool = TokenPool([A], limits=Limit(10))
    probe = answers({A: True})
    async with pool:
        checker = HealthChecker(pool, probe, every=10)
        checker.start()
        await asyncio.sleep(25)
    assert checker._task is not None
    await asyncio.wait_for(checker._task, timeout=10)
    assert not running(checker)
    await checker.stop()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"every": 0}, ValueError),
        ({"every": float("inf")}, ValueError),
        ({"timeout": -1}, ValueError),
        ({"timeout": "5"}, TypeError),
        ({"timeout": True}, TypeError),
        ({"concurrency": 0}, ValueError),
        ({"concurrency": 1.5}, ValueError),
        ({"budget": 5}, TypeError),
        ({"cost": 0}, ValueError),
    ],
)
def test_settings_are_checked(kwargs: dict[str, object], error: type[Exception]) -> None:
    pool = TokenPool([A])
    with pytest.raises(error):
        HealthChecker(pool, answers({}), **kwargs)  # type: ignore[arg-type]


def test_the_probe_must_be_callable() -> None:
    with pytest.raises(TypeError, match="probe must be an async function"):
        HealthChecker(TokenPool([A]), "whoami")  # type: ignore[arg-type]


# -- the monitor: expiry and limits that look too high -------------------------------------


def jwt(exp: float, sub: str) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part({'sub': sub, 'exp': exp})}.c2ln"


async def test_tokens_expiring_soon_are_reported_once() -> None:
    wall = [1_000_000.0]
    soon, later, past = jwt(1_003_600, "soon"), jwt(1_000_000 + 10 * 86400, "later"), jwt(5, "p")
    pool = TokenPool([soon, later, past, A], limits=Limit(10))
    # JWTs share their first and last characters, so their masked names get #2, #3.
    name = {value: slot.name for value, slot in core_of(pool).sched.slots.items()}
    async with pool:
        monitor = TokenMonitor(pool, expiring_within=86400, clock=lambda: wall[0])
        assert monitor.expiry(A) is None
        assert monitor.expiry(soon) == 1_003_600
        with capture_logs() as logs:
            report = monitor.sweep()
            assert monitor.sweep().expiring == ()  # once per token
        assert report.expiring == (name[soon], name[past])
        assert events(logs, "aurora.token.") == [
            {"event": "aurora.token.expiring", "log_level": "warning", "token": name[soon],
             "expires_in": 3600.0, "expired": False, "state": "active"},
            {"event": "aurora.token.expiring", "log_level": "warning", "token": name[past],
             "expires_in": 5 - 1_000_000.0, "expired": True, "state": "active"},
        ]  # fmt: skip
        assert no_secret_in(logs)
        assert soon not in repr(logs)
        assert past not in repr(logs)
        wall[0] += 9 * 86400 + 1  # now the later one is within a day
        assert monitor.sweep().expiring == (name[later],)
        pool.replace_tokens([A])  # removed tokens are forgotten
        monitor.sweep()
        assert monitor._expiry == {A: None}
        assert monitor._warned_expiry == set()


async def rate_limited(pool: TokenPool, times: int, *, fine: int = 0) -> None:
    for _ in range(fine):
        async with pool.lease():
            pass
    for _ in range(times):
        async with pool.lease() as lease:
            lease.rate_limited(retry_after=0)


async def test_a_token_rate_limited_despite_the_limiter_is_reported() -> None:
    # The monitor's own finding, on limits taken as facts (a calibrating pool lowers them)
    pool = TokenPool([A], limits=Limit(5, per=1.0), calibrate=False)
    async with pool:
        monitor = TokenMonitor(pool, every=60, rate_limited_at_least=3)
        await rate_limited(pool, 2)
        with capture_logs() as logs:
            assert monitor.sweep().limit_too_high == ()  # two are not enough
            await asyncio.sleep(60)
            await rate_limited(pool, 3)
            assert monitor.sweep().limit_too_high == (NA,)
        assert events(logs, "aurora.token.limit_too_high") == [
            {"event": "aurora.token.limit_too_high", "log_level": "warning", "token": NA,
             # after each 429 the token goes at its steady pace: 0.2 s apart
             "rate_limited": 3, "leases": 3, "within": 60.2, "limits": ["5/1s"],
             "server_limit": None,
             "hint": "the server refused calls the configured limits allowed: lower this "
                     "token's Limit, or check that nothing else uses the same token"},
        ]  # fmt: skip
        await rate_limited(pool, 3)
        assert monitor.sweep().limit_too_high == ()  # the same episode
        assert monitor.sweep().limit_too_high == ()  # a sweep with no 429 ends it
        await rate_limited(pool, 4)
        assert monitor.sweep().limit_too_high == (NA,)


async def test_stats_flag_a_token_rate_limited_despite_the_limiter() -> None:
    pool = TokenPool([A, B], limits=Limit(5, per=1.0))
    async with pool:
        monitor = pool._monitor  # the pool's own, on by default
        assert monitor is not None
        await asyncio.sleep(0)  # its task's first sweep, at the start
        await rate_limited(pool, 6)  # three each: A and B take turns
        stats = pool.stats()  # calibration decides at once: no sweep needed
        assert (stats.token(NA).limit_too_high, stats.token(NB).limit_too_high) == (True, True)
        assert monitor.sweep().limit_too_high == (NA, NB)
        async with pool.lease():
            pass
        monitor.sweep()  # no 429 since the last sweep: the monitor's episode is over,
        # but the flag stays while A's effective limit is below its declared one
        assert pool.stats().token(NA).limit_too_high is True


async def test_a_few_429s_among_many_leases_are_not_reported() -> None:
    pool = TokenPool([A], limits=Limit(1000, per=1.0))
    async with pool:
        monitor = TokenMonitor(pool, rate_limited_at_least=3, rate_limited_share=0.01)
        await rate_limited(pool, 3, fine=500)  # 0.6%
        assert monitor.sweep().limit_too_high == ()
        await rate_limited(pool, 3, fine=100)  # 2.9%
        assert monitor.sweep().limit_too_high == (NA,)


async def test_the_monitor_runs_on_a_schedule() -> None:
    wall = [0.0]
    token = jwt(100, "x")
    pool = TokenPool([token], limits=Limit(10), expiring_within=None)  # no monitor of its own
    async with pool:
        monitor = TokenMonitor(pool, every=30, expiring_within=50, clock=lambda: wall[0])
        with capture_logs() as logs:
            async with monitor:
                await asyncio.sleep(1)
                assert events(logs, "aurora.token.expiring") == []
                wall[0] = 60.0
                await asyncio.sleep(30)
        assert [e["token"] for e in events(logs, "aurora.token.expiring")] == [mask(token)]
        assert await monitor.run_once() == MonitorReport(expiring=(), limit_too_high=())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"expiring_within": -1},
        {"rate_limited_at_least": 0},
        {"rate_limited_share": 1.5},
        {"every": 0},
    ],
)
def test_monitor_settings_are_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case names a different setting
        TokenMonitor(TokenPool([A]), **kwargs)  # type: ignore[arg-type]


@pytest.mark.looptime
async def test_a_token_disabled_by_hand_is_left_alone() -> None:
    calls: list[str] = []

    async def probe(token: str) -> bool:
        calls.append(token)
        return True

    pool = TokenPool([A], limits=Limit(10))
    async with pool:
        pool.disable(NA, "rotating it")
        checker = HealthChecker(pool, probe)
        assert await checker.run_once() == []
        assert calls == []
        assert pool.stats().token(NA).state is TokenState.DISABLED


@pytest.mark.looptime
async def test_the_pool_runs_its_own_monitor_and_probes_while_open() -> None:
    probed: list[str] = []

    async def probe(token: str) -> bool:
        probed.append(token)
        return True

    token = jwt(10**10, "x")  # expires in 2286
    pool = TokenPool([token, A], limits=Limit(10), probe=probe, probe_every=5)
    with capture_logs() as logs:
        async with pool:
            revoke(pool, NA)
            await asyncio.sleep(6)
            assert pool.stats().token(NA).state is TokenState.ACTIVE  # revived by the probe
    assert A in probed
    stats = pool.stats().token(mask(token))
    assert stats.expires_in is not None
    assert stats.expires_in > 0
    assert events(logs, "aurora.token.expiring") == []
