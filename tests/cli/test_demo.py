"""The demo: the same work through soonest-fire and round robin, on real time.

Only robust facts are asserted (the machine may be busy): soonest-fire is well ahead of
round robin (by a margin well inside what it measures), sends at most one request per
revoked token, and the setup is what it says.
"""

from __future__ import annotations

import io
import math
import re

import pytest
import structlog
from rich.console import Console

from aurora_async._cli.demo import ROUND_ROBIN, SOONEST_FIRE, DemoResult, RunResult, run_demo
from aurora_async._cli.demo_mix import REVOKED, TIER_RATES, make_mix
from aurora_async._cli.demo_view import PlainView, RichView, summary_notes, summary_rows
from aurora_async._cli.events import capture_events, describe
from aurora_async._cli.roundrobin import RoundRobin


def secrets_of(result: DemoResult) -> list[str]:
    return [*result.mix.live, *result.mix.revoked]


def assert_no_secret(text: str, result: DemoResult) -> None:
    for secret in secrets_of(result):
        assert secret[:12] not in text
        assert secret[-12:] not in text


async def test_soonest_fire_is_ahead_of_round_robin() -> None:
    out = io.StringIO()
    result = await run_demo(PlainView(out), seconds=2.0, tokens=6, concurrency=40)
    pool, rr = result.run(SOONEST_FIRE), result.run(ROUND_ROBIN)
    assert pool.done > rr.done > 0
    # "Well ahead", on the figures the summary shows: throughput as a share of what the
    # server admits, and the ratio of requests done. Measured on an idle machine: 96%
    # against 32%, 2.9x; the bounds leave room for a busy one.
    assert pool.share_of_allowed >= 0.75
    assert pool.share_of_allowed >= 1.5 * rr.share_of_allowed
    # A revoked token costs the pool one request (then it is disabled); round robin
    # keeps coming back to it.
    assert pool.most_per_revoked <= 1
    assert pool.unauthorized <= REVOKED
    assert rr.unauthorized > pool.unauthorized
    # The cooling token was refused at first, with a Retry-After of seconds.
    assert result.retry_after > 1.0
    assert pool.wait_p99 < rr.wait_p99
    text = out.getvalue()
    assert "| requests done (200)" in text
    row = re.search(
        r"\| throughput / capacity +\| [\d,]+/s = (\d+)% +\| [\d,]+/s = (\d+)% +\|", text
    )
    assert row is not None, text
    shown_pool, shown_rr = int(row[1]), int(row[2])
    assert shown_pool >= 75
    assert shown_pool >= 1.5 * shown_rr
    note = re.search(r"soonest-fire completed (\d+\.\d)x the requests of round robin", text)
    assert note is not None, text
    assert float(note[1]) >= 1.5
    assert "tolerance=0.02" in text
    assert "disabled:" in text  # the pool's events are shown
    assert_no_secret(text, result)


async def test_the_live_table_in_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=140)
    result = await run_demo(RichView(console), seconds=0.6, tokens=3, concurrency=10)
    text = out.getvalue()
    assert "soonest-fire vs round robin: the same work" in text
    assert "token states" in text
    assert "(round robin keeps none)" in text
    assert len(result.runs) == 2
    assert_no_secret(text, result)


async def test_bad_arguments() -> None:
    view = PlainView(io.StringIO())
    with pytest.raises(ValueError, match="--seconds"):
        await run_demo(view, seconds=0)
    with pytest.raises(ValueError, match="--concurrency"):
        await run_demo(view, seconds=1, concurrency=0)
    with pytest.raises(ValueError, match="at least 3 tokens"):
        await run_demo(view, seconds=1, tokens=2)


def test_the_mix() -> None:
    mix = make_mix(10)
    assert [len(t.secrets) for t in mix.tiers] == [3, 3, 4]
    assert [t.rate for t in mix.tiers] == list(TIER_RATES)
    assert mix.capacity == 3 * 5 + 3 * 20 + 4 * 50
    assert len(mix.revoked) == REVOKED
    assert mix.cooling in mix.tiers[0].secrets
    tokens = mix.tokens()
    assert len(tokens) == 12
    assert len({t.name for t in tokens}) == 12  # masked names are unique
    assert {t.value for t in tokens} == {*mix.live, *mix.revoked}
    assert "10 tokens (3 at 5/s, 3 at 20/s, 4 at 50/s; capacity 275/s), 2 revoked" in (
        mix.describe()
    )
    assert mix.rate_of("unknown") == 20.0


def test_round_robin_needs_tokens() -> None:
    with pytest.raises(ValueError, match="at least one token"):
        RoundRobin([])


def run(strategy: str, done: int, **kwargs: float) -> RunResult:
    values: dict[str, float] = {
        "seconds": 10.0,
        "failed": 0,
        "requests": 0,
        "rate_limited": 0,
        "unauthorized": 0,
        "most_per_revoked": 0,
        "wait_mean": math.nan,
        "wait_p50": math.nan,
        "wait_p99": math.nan,
        "capacity": 100.0,
        "bursts": 100.0,
    }
    values.update(kwargs)
    return RunResult(strategy=strategy, done=done, **values)  # type: ignore[arg-type]


def test_the_summary_of_a_run_with_nothing_measured() -> None:
    result = DemoResult(make_mix(3), 10, 0.0, (run(SOONEST_FIRE, 0), run(ROUND_ROBIN, 0)))
    rows = {row[0]: row[1:] for row in summary_rows(result)}
    assert rows["wait p50"] == ("-", "-")
    assert rows["answered 429"][0].startswith("0.0% (0 of 0 sent)")
    assert summary_notes(result)[-1] == "round robin completed no request in the time given."
    assert result.runs[0].allowed == 110.0


def test_the_summary_of_one_strategy_has_no_comparison() -> None:
    result = DemoResult(make_mix(3), 10, 2.0, (run(SOONEST_FIRE, 5, wait_p50=0.25),))
    notes = summary_notes(result)
    assert not any("completed" in note for note in notes)
    assert {r[0]: r[1] for r in summary_rows(result)}["wait p50"] == "250 ms"


@pytest.mark.parametrize(
    ("event", "line"),
    [
        ({"event": "aurora.token.disabled", "token": "a…b", "reason": "401"}, "a…b disabled: 401"),
        (
            {"event": "aurora.token.cooling", "token": "a…b", "seconds": 2.5, "why": "retry_after"},
            "a…b cooling down for 2.50 s (retry_after)",
        ),
        ({"event": "aurora.pool.low", "active": 1, "tokens": 9}, "pool low: 1 of 9 tokens active"),
        (
            {"event": "aurora.pool.recovered", "active": 9, "tokens": 9},
            "pool recovered: 9 of 9 tokens active",
        ),
        ({"event": "aurora.token.removed", "token": "a…b"}, "token.removed a…b"),
        ({"event": "aurora.tokens.reloaded"}, "tokens.reloaded"),
        ({"event": "aurora.http.retry", "token": "a…b"}, None),
    ],
)
def test_events_as_lines(event: dict[str, object], line: str | None) -> None:
    assert describe(event) == line


def test_capturing_events_restores_the_configuration() -> None:
    lines: list[str] = []
    assert not structlog.is_configured()
    with capture_events(lines.append):
        logger = structlog.get_logger("aurora_async")
        logger.info("aurora.pool.low", active=0, tokens=2)
        logger.debug("aurora.token.cooling", token="x", seconds=1.0, why="by_hand")
    assert lines == ["pool low: 0 of 2 tokens active"]
    assert not structlog.is_configured()

    structlog.configure(processors=[structlog.processors.KeyValueRenderer()])
    before = structlog.get_config()
    with capture_events(lines.append):
        pass
    assert structlog.is_configured()
    assert structlog.get_config()["processors"] == before["processors"]
