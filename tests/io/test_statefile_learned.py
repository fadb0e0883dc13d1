"""The state file keeps the limits a pool learned: a rate calibrated from 429s and a
window an API's headers restated, with their levels, across a restart; a declaration
changed since wins; damaged learned fields are reported and left out; files saved before
these fields existed still load.

Virtual time (looptime) for the loop and MockAPI, a fake wall clock for the file."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from aurora_async import Limit, Token, TokenPool, TokenState
from aurora_async._core.tokens import mask
from aurora_async._io.statefile import FORMAT, VERSION, StateFile
from aurora_async._pool.core import core_of
from aurora_async.testing import LlmApi, MockAPI, NginxLimitReq

pytestmark = pytest.mark.looptime

KEY = "sk-paid-0123456789abcdef"
OTHER = "sk-paid-fedcba9876543210"
NAME, OTHER_NAME = mask(KEY), mask(OTHER)
T0 = 1_700_000_000.0
#: Declared twice what the server allows (nginx limit_req: 10 r/s, burst 3, no headers).
DECLARED = Limit(20)
SERVER = NginxLimitReq(10, burst=3)


class Wall:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def events(logs: Sequence[Mapping[str, Any]], prefix: str) -> list[Mapping[str, Any]]:
    return [e for e in logs if str(e["event"]).startswith(prefix)]


def saved_entry(path: Path, name: str = NAME) -> dict[str, Any]:
    tokens = json.loads(path.read_text())["tokens"]
    [entry] = [e for e in tokens.values() if e["name"] == name]
    return dict(entry)


async def crawl(pool: TokenPool, seconds: float, coroutines: int = 20) -> None:
    """``coroutines`` call ``pool.get`` for ``seconds`` (virtual)."""

    async def worker() -> None:
        while True:
            resp = await pool.get("/items")
            await resp.read()

    tasks = [asyncio.create_task(worker()) for _ in range(coroutines)]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def level(pool: TokenPool, secret: str, index: int = 0) -> float:
    window = core_of(pool).sched.slots[secret].windows[index]
    return window.level_at(asyncio.get_running_loop().time())


# -- (a) a save/load round trip ---------------------------------------------------------


async def test_a_calibrated_rate_its_level_and_calibrator_survive_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    state = StateFile(path, clock=Wall())
    token = Token(KEY, limits=DECLARED)
    async with MockAPI({KEY: SERVER}) as api:
        async with TokenPool([token], base_url=api.url, low_water=0) as first:
            await crawl(first, 10)
            before = first.stats().token(NAME)
            assert before.limit_source == "learned"
            assert before.limits[0].startswith(("9.", "10."))  # the server's 10/s, found
            state.save_from(first)
        saved = saved_entry(path)
        [learned] = saved["learned"]
        assert (learned["source"], learned["declared"]) == ("learned", {"rate": 20.0, "per": 1.0})
        assert learned["rate"] < 20
        assert saved["calibrator"]["slow"] is False
        [window] = saved["windows"]

        async with TokenPool([token], base_url=api.url, low_water=0) as second:
            with capture_logs() as logs:
                assert state.load_into(second) == 1
            after = second.stats().token(NAME)
            assert (after.limits, after.limit_source, after.limit_too_high) == (
                before.limits,
                "learned",
                True,
            )
            assert level(second, KEY) == window["level"]  # matched by the learned limit
            [restored] = events(logs, "aurora.token.limit_restored")
            assert restored["token"] == NAME
            assert restored["source"] == "learned"
            state.save_from(second)  # the calibrator took the memory: it saves it again
    again = saved_entry(path)
    assert (again["learned"], again["calibrator"]) == (saved["learned"], saved["calibrator"])


async def test_a_window_an_api_restated_and_its_level_survive_a_restart(
    tmp_path: Path, clock: Callable[[], Callable[[], float]]
) -> None:
    """Declared 2,000 tokens a minute, the key has 1,000 (``x-ratelimit-limit-tokens``):
    four calls of 250 spend it. After a restart the window is still 1,000 and full, so
    the fifth call waits 15 s for room instead of being refused by the server."""
    path = tmp_path / "state.json"
    state = StateFile(path, clock=Wall())
    limits = [Limit(600, per=60), Limit(2000, per=60, unit="tokens")]
    token = Token(KEY, limits=limits)
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}]}  # 10 in
    headers = {"X-Mock-Output-Tokens": "240"}  # 250 in all

    async def post(pool: TokenPool) -> None:
        resp = await pool.post(
            "/v1/chat/completions", json=body, headers=headers, cost={"tokens": 250}
        )
        assert resp.status == 200

    async with MockAPI([KEY], profile=LlmApi(rpm=600, tpm=1000, max_tokens=300)) as api:
        async with TokenPool([token], base_url=api.url) as first:
            for _ in range(4):
                await post(first)
            before = first.stats().token(NAME)
            assert (before.limits, before.limit_source) == (
                ("600/60s", "1000 tokens/60s"),
                "header",
            )
            state.save_from(first)
        [learned] = saved_entry(path)["learned"]
        assert learned == {
            "rate": 1000.0,
            "per": 60.0,
            "burst": 1000.0,
            "unit": "tokens",
            "source": "header",
            "declared": {"rate": 2000.0, "per": 60.0, "unit": "tokens"},
        }

        async with TokenPool([token], base_url=api.url) as second:
            state.load_into(second)
            after = second.stats().token(NAME)
            assert (after.limits, after.limit_source) == (before.limits, "header")
            assert level(second, KEY, 1) == pytest.approx(1000.0, abs=1e-9)
            now = clock()
            await post(second)
            assert now() == 15.0
        assert api.totals.rate_limited == 0


# -- (b) end to end: fewer 429s after a restart -------------------------------------------


async def restart_429s(tmp_path: Path, *, keep: bool) -> tuple[int, int, int, tuple[str, ...]]:
    """Three tokens declared 20/s against a server allowing 10/s: a pool calibrates for
    20 s and is closed; two seconds later a new pool, with the same state file if
    ``keep``, crawls for 10 s. The 429s of each run, the calls the second served, and
    the limits it started with."""
    path = tmp_path / "state.json"
    secrets = [f"sk-tier-{i:02d}-0123456789abcdef" for i in range(3)]
    tokens = [Token(secret, limits=DECLARED) for secret in secrets]
    async with MockAPI(dict.fromkeys(secrets, SERVER)) as api:
        async with TokenPool(tokens, base_url=api.url, low_water=0, state_file=path) as first:
            await crawl(first, 20)
        refused, served = api.totals.rate_limited, api.totals.ok
        await asyncio.sleep(2)
        kept = {"state_file": path} if keep else {}
        async with TokenPool(tokens, base_url=api.url, low_water=0, **kept) as second:
            started = tuple(t.limits[0] for t in second.stats().tokens)
            await crawl(second, 10)
        totals = api.totals
        return refused, totals.rate_limited - refused, totals.ok - served, started


async def test_a_restarted_pool_resumes_at_the_learned_rate_without_new_429s(
    tmp_path: Path,
) -> None:
    (tmp_path / "kept").mkdir()
    (tmp_path / "fresh").mkdir()
    first, kept, served, started = await restart_429s(tmp_path / "kept", keep=True)
    first_alone, fresh, _, fresh_start = await restart_429s(tmp_path / "fresh", keep=False)
    print(f"429s: first run {first}; after the restart {kept} with the file, {fresh} without")
    assert first == first_alone >= 3  # the first run is the same in both
    assert all(limit.startswith(("9.", "10.")) for limit in started)  # the server's 10/s
    assert fresh_start == ("20/1s (burst 1)",) * 3  # the declared rate, to learn again
    assert kept == 0  # measured: 0 with the file, 15 without (first run: 18)
    assert fresh >= 3 * 3  # at least three episodes a token to find the limit again
    assert served >= 0.95 * 3 * 10 * 10  # at the server's rate from the start


# -- (c) a declaration changed since the save wins ------------------------------------------


@pytest.mark.parametrize(
    ("now_declared", "shown"),
    [(Limit(15), "15/1s (burst 1)"), (Limit(20, burst=20), "20/1s")],
)
async def test_a_learned_limit_is_discarded_when_its_declaration_changed(
    tmp_path: Path, now_declared: Limit, shown: str
) -> None:
    """``Limit(20, burst=20)`` is equal to ``Limit(20)`` but trusts its burst: a change."""
    path = tmp_path / "state.json"
    state = StateFile(path, clock=Wall())
    async with (
        MockAPI({KEY: SERVER}) as api,
        TokenPool([Token(KEY, limits=DECLARED)], base_url=api.url) as first,
    ):
        await crawl(first, 5)
        assert first.stats().token(NAME).limit_source == "learned"
        first.cool(NAME, 30)
        state.save_from(first)
    async with TokenPool([Token(KEY, limits=now_declared)]) as second:
        with capture_logs() as logs:
            assert state.load_into(second) == 1
        token = second.stats().token(NAME)
        assert (token.limits, token.limit_source) == ((shown,), "declared")
        assert token.cooldown_left == 30  # the rest of its state is restored
        [discarded] = events(logs, "aurora.state.learned_discarded")
        assert discarded["token"] == NAME
        assert discarded["declared_then"] == "20/1s"
        assert "declared limit changed" in discarded["reason"]
        assert not events(logs, "aurora.token.limit_restored")


# -- (d) damaged learned fields ------------------------------------------------------------


def document(salt: bytes, entries: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": T0,
        "salt": salt.hex(),
        "tokens": {
            hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest(): entry
            for secret, entry in entries.items()
        },
    }


LEARNED = {
    "rate": 10.0,
    "per": 1.0,
    "burst": 1.0,
    "source": "learned",
    "declared": {"rate": 20, "per": 1},
}


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ({"rate": -1.0}, "learned window 1 (-1.0 per 1.0s): Limit rate must be a positive"),
        ({"rate": math.nan}, "learned window 1 (nan per 1.0s): Limit rate must be a positive"),
        ({"burst": "ten"}, "learned window 1 (10.0 per 1.0s): Limit burst must be a number"),
        ({"source": "sk-paid-0123"}, 'window 1 (10.0 per 1.0s): "source" must be "learned" or'),
        ({"rate": "sk-paid-0123"}, "learned window 1: Limit rate must be a number, not str"),
        ({"declared": None}, '"declared" must be an object'),
        ({"declared": {"rate": -20}}, '"declared": Limit rate must be a positive'),
        ({"per": 60.0}, "its window is not the declared one's"),
        # a text pasted where a resource, scope, time zone or time belongs (here the
        # token's own secret) is named by its length, never quoted (review)
        ({"unit": KEY, "declared": {"rate": 20, "per": 1, "unit": KEY}}, "a text of 24"),
        ({"scope": KEY}, "its window is not the declared one's"),  # (any text names a scope)
        ({"declared": {"rate": 20, "per": 1, "unit": KEY}}, '"declared": Limit unit'),
        ({"declared": {"rate": 20, "per": 1, "scope": KEY}}, "its window is not the declared"),
        ({"calendar": {"period": "day", "at": "00:00", "tz": KEY}}, "a text of 24"),
        ({"calendar": {"period": "day", "at": KEY, "tz": "UTC"}}, "a text of 24"),
    ],
)
async def test_a_damaged_learned_limit_is_reported_and_left_out(
    tmp_path: Path, damage: dict[str, object], reason: str
) -> None:
    """The token's other state (its cooldown, its window's level) and the other token's
    learned limit are restored all the same; the damaged window starts as declared."""
    path = tmp_path / "state.json"
    salt = bytes(range(16))
    path.write_text(
        json.dumps(
            document(
                salt,
                {
                    KEY: {
                        "name": NAME,
                        "cooldown": 30.0,
                        "learned": [{**LEARNED, **damage}],
                        "calibrator": {"served": 10, "step_of": 10, "patience": 1, "slow": False},
                    },
                    OTHER: {
                        "name": OTHER_NAME,
                        "learned": [LEARNED],
                        "windows": [{"rate": 10.0, "per": 1.0, "burst": 1.0, "level": 0.5}],
                    },
                },
            )
        )
    )
    async with TokenPool([KEY, OTHER], limits=DECLARED) as pool:
        with capture_logs() as logs:
            assert StateFile(path, clock=Wall()).load_into(pool) == 2
        [corrupt] = events(logs, "aurora.state.corrupt")
        assert corrupt["log_level"] == "warning"
        assert corrupt["reason"].startswith(f"token {NAME}, learned window 1")
        assert reason in corrupt["reason"]
        assert "sk-paid-0123" not in str(logs)  # no text of the file is echoed
        assert KEY not in str(logs)
        assert "ignored: this learned limit" in corrupt["hint"]
        assert [e["event"] for e in events(logs, "aurora.state.loaded")] == ["aurora.state.loaded"]
        damaged, sound = pool.stats().token(NAME), pool.stats().token(OTHER_NAME)
        assert (damaged.limits, damaged.limit_source) == (("20/1s (burst 1)",), "declared")
        assert damaged.state is TokenState.COOLING
        assert damaged.cooldown_left == 30
        assert (sound.limits, sound.limit_source) == (("10/1s (burst 1)",), "learned")
        assert level(pool, OTHER) == 0.5
        async with pool.lease(timeout=0.5) as lease:  # the pool works: the sound token
            assert lease.name == OTHER_NAME  # serves, once its half unit has drained


@pytest.mark.parametrize(
    ("calibrator", "reason"),
    [
        ({"served": -1}, '"served" must be finite and >= 0, got -1'),
        ({"refused_burst": math.nan}, '"refused_burst" must be >= 0 or none, got nan'),
        ({"slow": "no"}, '"slow" must be true or false'),
        ({"patience": 0}, '"patience" must be between 1 and 1024'),
        ({"probe": ["leap", 1.0]}, '"probe" must be burst, probe, climb or slow'),
        ([], "it is not an object"),
    ],
)
async def test_a_damaged_calibrator_memory_is_reported_and_the_limit_still_restored(
    tmp_path: Path, calibrator: object, reason: str
) -> None:
    path = tmp_path / "state.json"
    salt = bytes(range(16))
    memory = {"served": 10, "step_of": 10, "patience": 1, "slow": False}
    if isinstance(calibrator, dict):
        calibrator = {**memory, **calibrator}
    entry = {"name": NAME, "learned": [LEARNED], "calibrator": calibrator}
    path.write_text(json.dumps(document(salt, {KEY: entry})))
    async with TokenPool([KEY], limits=DECLARED) as pool:
        with capture_logs() as logs:
            assert StateFile(path, clock=Wall()).load_into(pool) == 1
        [corrupt] = events(logs, "aurora.state.corrupt")
        assert corrupt["reason"].startswith(f'token {NAME}, "calibrator": ')
        assert reason in corrupt["reason"]
        token = pool.stats().token(NAME)
        assert (token.limits, token.limit_source) == (("10/1s (burst 1)",), "learned")


# -- (e) a file saved before learned limits were kept ---------------------------------------


async def test_a_version_1_file_without_learned_fields_still_loads(tmp_path: Path) -> None:
    """Written as the previous release wrote it: no "learned", no "calibrator"."""
    path = tmp_path / "state.json"
    salt = bytes(range(16))
    old = {
        "name": NAME,
        "cooldown": 12.0,
        "backoff": 2.0,
        "windows": [{"rate": 20.0, "per": 1.0, "burst": 1.0, "level": 1.0}],
    }
    path.write_text(json.dumps(document(salt, {KEY: old, OTHER: {"name": "x", "disabled": "401"}})))
    async with TokenPool([KEY, OTHER], limits=DECLARED) as pool:
        with capture_logs() as logs:
            assert StateFile(path, clock=Wall()).load_into(pool) == 2
        assert [e["event"] for e in events(logs, "aurora.state.")] == ["aurora.state.loaded"]
        token = pool.stats().token(NAME)
        assert (token.limits, token.limit_source) == (("20/1s (burst 1)",), "declared")
        assert token.cooldown_left == 12.0
        assert level(pool, KEY) == 1.0
        assert pool.stats().token(OTHER_NAME).state is TokenState.DISABLED


# -- where learned limits are not the file's to keep ----------------------------------------


async def test_with_calibration_off_nothing_learned_is_saved_nor_restored(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    salt = bytes(range(16))
    path.write_text(json.dumps(document(salt, {KEY: {"name": NAME, "learned": [LEARNED]}})))
    async with TokenPool([KEY], limits=DECLARED, calibrate=False) as pool:
        with capture_logs() as logs:
            StateFile(path, clock=Wall()).load_into(pool)
        [skipped] = events(logs, "aurora.state.learned_skipped")
        assert skipped["tokens"] == 1
        assert "calibrate=False" in skipped["reason"]
        assert pool.stats().token(NAME).limits == ("20/1s",)
        pool.cool(NAME, 5)
        StateFile(path, clock=Wall()).save_from(pool)
    assert "learned" not in saved_entry(path)
