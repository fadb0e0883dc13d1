"""The state file: a restart keeps a daily quota, a cooldown and a disabled token; a
corrupt file is reported and ignored; no secret is ever written.

Virtual time (looptime) for the loop, and a fake wall clock for the file."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from aurora_async import LeaseTimeout, Limit, TokenPool, TokenState
from aurora_async._core.tokens import mask
from aurora_async._io.statefile import FORMAT, VERSION, StateFile
from aurora_async._pool.core import core_of

pytestmark = pytest.mark.looptime

A, B, C = (f"{c * 4}-secret-{i:04d}" for i, c in enumerate("abc", start=1))
NA, NB, NC = map(mask, (A, B, C))
DAILY = Limit(1000, per=86400, burst=1000)  # the whole day's quota may go at once
T0 = 1_700_000_000.0  # the wall clock when the first process saves


class Wall:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def state_events(logs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in logs if str(e["event"]).startswith("aurora.state.")]


async def spend(pool: TokenPool, units: int, *, cost: int = 100) -> None:
    for _ in range(units // cost):
        async with pool.lease(cost=cost, timeout=0):
            pass


# -- what a restart keeps ------------------------------------------------------------------


async def test_a_restart_keeps_a_daily_quota(tmp_path: Path) -> None:
    wall = Wall()
    state = StateFile(tmp_path / "state.json", clock=wall)
    loop = asyncio.get_running_loop()
    async with TokenPool([A], limits=DAILY) as first:
        await spend(first, 1000)  # the whole day's quota, at once
        assert state.save_from(first) == 1

    await asyncio.sleep(5)  # the new process's loop clock has nothing to do with the old
    wall.now += 3600  # an hour later by the wall clock
    async with TokenPool([A], limits=DAILY) as second:
        assert state.load_into(second) == 1
        # An hour drained 3600 * 1000/86400 = 41.67 units: that, and no more, is free.
        assert second.stats().token(NA).headroom == pytest.approx(1000 / 24, abs=1e-9)
        async with second.lease(cost=41, timeout=0):
            pass
        with pytest.raises(LeaseTimeout):
            await second.lease(cost=1, timeout=0).__aenter__()
        t0 = loop.time()
        async with second.lease(cost=1):
            # A third of a unit must drain first, at 1000 units a day: 28.8 s.
            assert loop.time() - t0 == pytest.approx(86.4 / 3, abs=1e-5)


async def test_without_the_state_file_the_quota_would_start_afresh(tmp_path: Path) -> None:
    """The control for the test above: a new pool alone admits a whole new day."""
    async with TokenPool([A], limits=DAILY) as first:
        await spend(first, 1000)
    async with TokenPool([A], limits=DAILY) as second:
        await spend(second, 1000)  # raises LeaseTimeout if anything was remembered


async def test_a_restart_keeps_a_cooldown_in_progress(tmp_path: Path) -> None:
    wall = Wall()
    state = StateFile(tmp_path / "state.json", clock=wall)
    loop = asyncio.get_running_loop()
    async with TokenPool([A], limits=Limit(10)) as first:
        async with first.lease() as lease:
            lease.rate_limited(retry_after=600)
        await asyncio.sleep(20)  # 580 s left
        state.save_from(first)

    wall.now += 100  # the restart took 100 s of wall time: 480 s left
    async with TokenPool([A], limits=Limit(10)) as second:
        with capture_logs() as logs:
            state.load_into(second)
        token = second.stats().token(NA)
        assert token.state is TokenState.COOLING
        assert token.cooldown_left == pytest.approx(480, abs=1e-6)
        assert {
            "event": "aurora.token.cooling",
            "log_level": "info",
            "token": NA,
            "seconds": pytest.approx(480, abs=1e-6),
            "why": "restored",
        } in logs
        t0 = loop.time()
        async with second.lease():
            assert loop.time() - t0 == pytest.approx(480, abs=1e-5)


async def test_a_cooldown_that_ran_out_during_the_restart_is_gone(tmp_path: Path) -> None:
    wall = Wall()
    state = StateFile(tmp_path / "state.json", clock=wall)
    async with TokenPool([A], limits=Limit(10)) as first:
        first.cool(NA, 60)
        state.save_from(first)
    wall.now += 61
    async with TokenPool([A], limits=Limit(10)) as second:
        state.load_into(second)
        assert second.stats().token(NA).state is TokenState.ACTIVE


async def test_a_restart_keeps_a_disabled_token_disabled(tmp_path: Path) -> None:
    wall = Wall()
    state = StateFile(tmp_path / "state.json", clock=wall)
    async with TokenPool([A, B], limits=Limit(10)) as first:
        async with first.lease() as lease:
            lease.revoked("HTTP 401 Unauthorized")
        dead = lease.name
        state.save_from(first)

    wall.now += 7 * 86400  # a week later: disabled is not a matter of time
    async with TokenPool([A, B], limits=Limit(10)) as second:
        state.load_into(second)
        token = second.stats().token(dead)
        assert (token.state, token.reason) == (TokenState.DISABLED, "HTTP 401 Unauthorized")
        for _ in range(20):  # every lease goes to the other token
            async with second.lease() as lease:
                assert lease.name != dead


async def test_the_backoff_step_is_kept(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.json", clock=Wall())
    # the legacy backoff (a calibrating pool rests a token instead: no step to keep)
    async with TokenPool([A], limits=Limit(10), backoff=(1.0, 60.0), calibrate=False) as first:
        for _ in range(3):  # backs off 1, 2, 4
            async with first.lease() as lease:
                lease.rate_limited()
        state.save_from(first)
    async with TokenPool([A], limits=Limit(10), backoff=(1.0, 60.0), calibrate=False) as second:
        state.load_into(second)
        async with second.lease() as lease:
            lease.rate_limited()
        assert second.stats().token(NA).cooldown_left == 8.0  # the doubling goes on


async def test_a_wall_clock_that_went_back_counts_as_no_time(tmp_path: Path) -> None:
    wall = Wall()
    state = StateFile(tmp_path / "state.json", clock=wall)
    async with TokenPool([A], limits=DAILY) as first:
        await spend(first, 500)
        first.cool(NA, 30)
        state.save_from(first)
    wall.now -= 3600
    async with TokenPool([A], limits=DAILY) as second:
        state.load_into(second)
        token = second.stats().token(NA)
        assert token.headroom == 500
        assert token.cooldown_left == 30


async def test_only_windows_of_the_same_limit_are_restored(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.json", clock=Wall())
    async with TokenPool([A], limits=[Limit(10, burst=10), DAILY]) as first:
        await spend(first, 10, cost=10)
        state.save_from(first)
    async with TokenPool([A], limits=[Limit(20, burst=20), DAILY]) as second:
        state.load_into(second)
        token = second.stats().token(NA)
        assert token.headroom == 20 - 0  # the per-second limit changed: it starts empty
        window = core_of(second).sched.slots[A].windows[1]
        assert window.level_at(asyncio.get_running_loop().time()) == 10


async def test_loading_twice_counts_the_usage_once(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.json", clock=Wall())
    async with TokenPool([A], limits=DAILY) as first:
        await spend(first, 600)
        state.save_from(first)
    async with TokenPool([A], limits=DAILY) as second:
        state.load_into(second)
        state.load_into(second)
        assert second.stats().token(NA).headroom == 400


async def test_tokens_not_in_the_pool_are_ignored_and_others_untouched(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.json", clock=Wall())
    async with TokenPool([A, B], limits=Limit(10)) as first:
        first.disable(NA, "gone")
        first.disable(NB, "also gone")
        state.save_from(first)
    async with TokenPool([B, C], limits=Limit(10)) as second:
        with capture_logs() as logs:
            assert state.load_into(second) == 1
        assert second.stats().token(NB).state is TokenState.DISABLED
        assert second.stats().token(NC).state is TokenState.ACTIVE
        [loaded] = [e for e in logs if e["event"] == "aurora.state.loaded"]
        assert (loaded["restored"], loaded["unknown"]) == (1, 1)


async def test_a_waiter_is_served_when_loading_lifts_nothing_but_wakes_the_queue(
    tmp_path: Path,
) -> None:
    state = StateFile(tmp_path / "state.json", clock=Wall())
    async with TokenPool([A], limits=Limit(10)) as first:
        first.cool(NA, 5)
        state.save_from(first)
    loop = asyncio.get_running_loop()
    async with TokenPool([A], limits=Limit(10)) as second:
        second.cool(NA, 1)
        t0 = loop.time()
        waiter = asyncio.create_task(second.acquire())
        await asyncio.sleep(0)
        assert second.stats().waiting == 1
        state.load_into(second)  # the cooldown grows to 5 s while the lease waits
        lease = await waiter
        assert loop.time() - t0 == 5
        lease.release()


# -- what the file holds, and how it is written --------------------------------------------


async def test_the_file_holds_no_secret_and_keys_differ_per_save(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = StateFile(path, clock=Wall())
    async with TokenPool([A, B, C], limits=Limit(10)) as pool:
        pool.disable(NA, "revoked")
        async with pool.lease():
            pass
        state.save_from(pool)
        first = path.read_text()
        state.save_from(pool)
        second = path.read_text()
    for text in (first, second):
        assert not any(secret in text for secret in (A, B, C))
        assert not any(secret[:-4] in text for secret in (A, B, C))
    doc1, doc2 = json.loads(first), json.loads(second)
    assert (doc1["format"], doc1["version"], doc1["saved_at"]) == (FORMAT, VERSION, T0)
    assert set(doc1["tokens"]).isdisjoint(doc2["tokens"])  # a fresh salt every save
    assert len(doc1["tokens"]) == 2  # the idle token is left out
    assert {entry["name"] for entry in doc1["tokens"].values()} <= {NA, NB, NC}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_removed_tokens_are_not_saved(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.json", clock=Wall())
    async with TokenPool([A, B], limits=Limit(10)) as pool:
        pool.disable(NA)
        held = await pool.acquire()  # B, in flight
        pool.replace_tokens([A])
        assert state.save_from(pool) == 1
        assert state.load_into(pool) == 1  # the removed token is passed over
        held.release()


async def test_saving_is_atomic_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    state = StateFile(path, clock=Wall())
    async with TokenPool([A], limits=Limit(10)) as pool:
        pool.disable(NA)
        state.save_from(pool)
        before = path.read_bytes()
        pool.enable(NA)
        pool.cool(NA, 10)

        def fail(src: object, dst: object) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", fail)
        with pytest.raises(OSError, match="No space left"):
            state.save_from(pool)
        monkeypatch.undo()
        assert path.read_bytes() == before  # the old state stands, whole
        assert os.listdir(tmp_path) == ["state.json"]
        assert await state.save(pool) == 1  # the async variant writes from a thread
        assert path.read_bytes() != before
    assert os.listdir(tmp_path) == ["state.json"]


async def test_a_missing_directory_is_an_error_when_saving(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "nope" / "state.json")
    async with TokenPool([A]) as pool:
        with pytest.raises(FileNotFoundError):
            state.save_from(pool)


class InlineStateFile(StateFile):
    """Saves on the loop instead of a worker thread, so virtual time stays exact."""

    saves: list[float]

    async def save(self, pool: TokenPool) -> int:
        self.saves.append(asyncio.get_running_loop().time())
        return self.save_from(pool)


async def test_autosave_saves_on_schedule_and_survives_failures(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    state = InlineStateFile(directory / "state.json", clock=Wall())
    state.saves = []
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with TokenPool([A], limits=Limit(10)) as pool:
        pool.disable(NA)
        with capture_logs() as logs:
            saver = asyncio.create_task(state.autosave(pool, every=60))
            await asyncio.sleep(61)  # the first save fails: no directory yet
            assert state_events(logs) == [
                {
                    "event": "aurora.state.save_failed",
                    "log_level": "error",
                    "path": str(state.path),
                    "error": "No such file or directory",
                }
            ]
            directory.mkdir()
            await asyncio.sleep(60)  # the task goes on: the next save works
            saver.cancel()
            with pytest.raises(asyncio.CancelledError):
                await saver
        assert [round(t - t0, 6) for t in state.saves] == [60, 120]
        assert json.loads(state.path.read_text())["tokens"]
    with pytest.raises(ValueError, match="every"):
        await state.autosave(pool, every=0)


# -- a file that cannot be used --------------------------------------------------------------


def valid_document() -> dict[str, object]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": T0,
        "salt": "00" * 16,
        "tokens": {
            "0" * 64: {
                "name": "x",
                "disabled": "why",
                "cooldown": 1.0,
                "windows": [{"rate": 1, "per": 1, "burst": 1, "level": 1}],
            }
        },
    }


def corrupt(path: list[str], value: object) -> bytes:
    doc = valid_document()
    target: dict[str, object] = doc
    for key in path[:-1]:
        target = target[key]  # type: ignore[assignment]
    target[path[-1]] = value
    return json.dumps(doc).encode()


ENTRY = ["tokens", "0" * 64]
WINDOW = [*ENTRY, "windows"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"garbage", "it is not valid JSON (line 1, column 1: Expecting value)"),
        (b'{"format": "aurora', "it is not valid JSON"),
        (b'{"format": "\xff"}', "it is not UTF-8 text"),
        (b"[1, 2]", "it is not a JSON object"),
        (b"", "it is not valid JSON"),
        (corrupt(["format"], "other"), "it is not an aurora_async state file"),
        (corrupt(["version"], 2), "it has version 2; this aurora_async reads version 1"),
        (corrupt(["saved_at"], "yesterday"), '"saved_at" must be a number'),
        (corrupt(["saved_at"], float("nan")), '"saved_at" must be finite and >= 0'),
        (corrupt(["salt"], "zz"), '"salt" must be at least 16 bytes in hex'),
        (corrupt(["salt"], 5), '"salt" must be at least 16 bytes in hex'),
        (corrupt(["tokens"], []), '"tokens" must be an object'),
        (corrupt(["tokens"], {"short": {}}), "token entry 1: the key is not an HMAC"),
        (corrupt(ENTRY, 5), "token entry 1 is not an object"),
        (corrupt([*ENTRY, "disabled"], True), '"disabled" must be a reason'),
        (corrupt([*ENTRY, "cooldown"], -1), '"cooldown" must be finite and >= 0'),
        (corrupt([*ENTRY, "backoff"], None), '"backoff" must be a number'),
        (corrupt(WINDOW, {}), '"windows" must be a list'),
        (corrupt(WINDOW, [1]), "token entry 1, window 1 is not an object"),
        (corrupt(WINDOW, [{"rate": 0, "per": 1, "level": 0}]), "Limit rate must be a positive"),
        (corrupt(WINDOW, [{"per": 1, "level": 0}]), "Limit rate must be a number"),
        (corrupt(WINDOW, [{"rate": 1, "per": 1}]), 'window 1: "level" must be a number'),
        (
            corrupt(WINDOW, [{"rate": 1, "per": 1, "scope": "*", "for": 5, "level": 0}]),
            'window 1: "for" must be a str naming a scope',
        ),
        (
            corrupt(WINDOW, [{"rate": 1, "per": 1, "scope": "*", "for": "a b", "level": 0}]),
            'window 1: "for" must name an endpoint group or a model',
        ),
        # a text where a resource or a time zone belongs (a secret, here) is not quoted
        (
            corrupt(WINDOW, [{"rate": 1, "per": 1, "unit": A, "level": 0}]),
            f"'tokens', 'input_tokens'), got <a text of {len(A)} characters>",
        ),
        (
            corrupt(
                WINDOW,
                [{"rate": 1, "calendar": {"period": "day", "at": "00:00", "tz": A}, "level": 0}],
            ),
            f"<a text of {len(A)} characters>",
        ),
    ],
)
async def test_a_corrupt_file_is_reported_and_ignored(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(data)
    async with TokenPool([A], limits=Limit(10)) as pool:
        with capture_logs() as logs:
            assert StateFile(path).load_into(pool) == 0
        [event] = state_events(logs)
        assert event["event"] == "aurora.state.corrupt"
        assert event["log_level"] == "warning"
        assert event["path"] == str(path)
        assert reason in str(event["reason"])
        assert A not in str(logs)
        assert pool.stats().token(NA).state is TokenState.ACTIVE


async def test_the_valid_document_of_the_corrupt_cases_is_valid(tmp_path: Path) -> None:
    """So each case above fails for its own reason only."""
    path = tmp_path / "state.json"
    path.write_bytes(json.dumps(valid_document()).encode())
    async with TokenPool([A]) as pool:
        with capture_logs() as logs:
            assert StateFile(path).load_into(pool) == 0  # no token of ours in it
        assert [e["event"] for e in state_events(logs)] == ["aurora.state.loaded"]


async def test_an_unreadable_file_is_reported_and_ignored(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.mkdir()  # e.g. Docker made a directory where a file was expected
    async with TokenPool([A]) as pool:
        with capture_logs() as logs:
            assert StateFile(path).load_into(pool) == 0
        [event] = state_events(logs)
        assert event["event"] == "aurora.state.corrupt"
        assert event["reason"] == "it is a directory, not a regular file: not read"


async def test_a_missing_file_is_a_first_start(tmp_path: Path) -> None:
    async with TokenPool([A]) as pool:
        with capture_logs() as logs:
            assert StateFile(tmp_path / "state.json").load_into(pool) == 0
        assert state_events(logs) == [
            {
                "event": "aurora.state.missing",
                "log_level": "info",
                "path": str(tmp_path / "state.json"),
                "hint": "starting with no saved state",
            }
        ]


def test_loading_needs_the_event_loop(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "state.json")
    assert repr(state) == f"StateFile({str(tmp_path / 'state.json')!r})"
    with pytest.raises(RuntimeError, match="inside the event loop"):
        state.load_into(TokenPool([A]))


@pytest.mark.looptime
async def test_the_pool_saves_on_close_and_loads_on_open(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    pool = TokenPool([A, B], limits=Limit(10), state_file=path)
    async with pool:
        pool.disable(pool.stats().tokens[1].name, "rotated out")
    assert path.exists()
    again = TokenPool([A, B], limits=Limit(10), state_file=path)
    async with again:
        states = [(t.state.value, t.reason) for t in again.stats().tokens]
    assert states == [("active", None), ("disabled", "rotated out")]


# -- quotas on the calendar and windows of other resources -------------------------------


async def test_a_restart_keeps_todays_calendar_quota_and_forgets_yesterdays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aurora_async._pool import core as pool_core

    limits = [Limit(100, burst=100), Limit.daily(3), Limit(900, per=60, unit="tokens", scope="m")]
    noon = 1_796_565_600.0  # 2026-12-06 12:00 UTC
    wall = Wall(noon)
    monkeypatch.setattr(pool_core, "wall_clock", wall)
    state = StateFile(tmp_path / "state.json", clock=wall)
    async with TokenPool([A], limits=limits) as first:
        for _ in range(3):
            async with first.lease(cost={"tokens": 300}, scope="m", timeout=0):
                pass
        assert state.save_from(first) == 1
    saved = json.loads((tmp_path / "state.json").read_text())["tokens"]
    windows = next(iter(saved.values()))["windows"]
    assert windows[1]["calendar"] == {"period": "day", "at": "00:00", "tz": "UTC", "day": 1}
    assert windows[2]["unit"] == "tokens"
    assert windows[2]["scope"] == "m"

    wall.now = noon + 3600  # the same day
    async with TokenPool([A], limits=limits) as second:
        assert state.load_into(second) == 1
        with pytest.raises(LeaseTimeout):  # today's three are spent
            await second.lease(timeout=0).__aenter__()

    wall.now = noon + 13 * 3600  # 01:00 the next day: a new quota
    async with TokenPool([A], limits=limits) as third:
        assert state.load_into(third) == 1
        for _ in range(3):
            async with third.lease(timeout=0):
                pass


async def test_a_restart_keeps_the_windows_made_for_each_scope_from_a_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Limit(..., scope="*")``: the windows made for "a" (2 of 2 used) and "b" (1 of
    2) are saved under their template's limit with the scope they count, and made again
    for those scopes on load; a scope never used starts empty."""
    from aurora_async._pool import core as pool_core

    limits = [Limit(100, per=60), Limit(2, per=60, scope="*"), Limit.daily(5, scope="*")]
    wall = Wall()
    monkeypatch.setattr(pool_core, "wall_clock", wall)
    state = StateFile(tmp_path / "state.json", clock=wall)
    loop = asyncio.get_running_loop()
    async with TokenPool([A], limits=limits) as first:
        for scope in ("a", "a", "b"):
            async with first.lease(scope=scope, timeout=0):
                pass
        assert state.save_from(first) == 1
    saved = json.loads((tmp_path / "state.json").read_text())["tokens"]
    made = [
        (w["for"], w["scope"], w["per"], w["level"])
        for w in next(iter(saved.values()))["windows"]
        if "for" in w
    ]
    assert made == [
        ("a", "*", 60.0, 2.0),
        ("a", "*", 86400.0, 2.0),
        ("b", "*", 60.0, 1.0),
        ("b", "*", 86400.0, 1.0),
    ]

    wall.now = T0 + 15  # 15 s later: each scope's minute window leaked half a call
    async with TokenPool([A], limits=limits) as second:
        assert state.load_into(second) == 1
        start = loop.time()
        async with second.lease(scope="b", timeout=0):  # 0.5 + 1 of 2
            pass
        with pytest.raises(LeaseTimeout):  # "a": 1.5 of 2, no room for a whole call
            await second.lease(scope="a", timeout=0).__aenter__()
        async with second.lease(scope="a"):
            assert loop.time() - start == 15.0  # 1 of 2 after 30 s in all
        for _ in range(2):
            async with second.lease(scope="c", timeout=0):  # never used: a full burst
                pass
