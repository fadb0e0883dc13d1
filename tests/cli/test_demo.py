"""The demo: the same work through soonest-fire and round robin, on real time.

Only robust facts are asserted of the runs (the machine may be busy): soonest-fire is
well ahead of round robin (by a margin well inside what it measures), sends at most one
request per revoked token, brings the mis-declared tier down to the server's rate, and
the setup is what it says. What does not depend on time (the mix, the summary of given
results, the lines for events and limits) is asserted exactly.
"""

from __future__ import annotations

import io
import math
import re

import pytest
import structlog
from rich.console import Console

from aurora_async import Limit
from aurora_async._cli.demo import (
    ROUND_ROBIN,
    SOONEST_FIRE,
    DemoResult,
    Progress,
    RunResult,
    TierRow,
    run_demo,
    run_soonest_fire,
)
from aurora_async._cli.demo_limits import CONVERGED, Window, describe_limits, fastest, read_limit
from aurora_async._cli.demo_mix import MISDECLARED, REVOKED, TIER_RATES, make_mix, start_server
from aurora_async._cli.demo_view import PlainView, RichView, summary_notes, summary_rows
from aurora_async._cli.events import capture_events, condense, describe
from aurora_async._cli.roundrobin import RoundRobin
from aurora_async._core.tokens import mask
from aurora_async.testing import NginxLimitReq


def secrets_of(result: DemoResult) -> list[str]:
    return [*result.mix.live, *result.mix.revoked]


def assert_no_secret(text: str, result: DemoResult) -> None:
    for secret in secrets_of(result):
        assert secret[:12] not in text
        assert secret[-12:] not in text


async def test_soonest_fire_is_ahead_of_round_robin() -> None:
    out = io.StringIO()
    result = await run_demo(PlainView(out), seconds=3.0, tokens=6, concurrency=40)
    pool, rr = result.run(SOONEST_FIRE), result.run(ROUND_ROBIN)
    assert pool.done > rr.done > 0
    # "Well ahead", on the figures the summary shows: throughput as a share of what the
    # server admits, and the ratio of requests done. Measured on an idle machine: 72%
    # against 35%, 2.0x (the pool forgoes the opening bursts the share counts: its
    # limits declared without a burst start at one unit); the bounds leave room for a
    # busy one.
    assert pool.share_of_allowed >= 0.55
    assert pool.share_of_allowed >= 1.4 * rr.share_of_allowed
    # A revoked token costs the pool one request (then it is disabled); round robin
    # keeps coming back to it.
    assert pool.most_per_revoked <= 1
    assert pool.unauthorized <= REVOKED
    assert rr.unauthorized > pool.unauthorized
    # The cooling token was refused at first, with a Retry-After of seconds.
    assert result.retry_after > 1.0
    assert pool.wait_p99 < rr.wait_p99
    # The mis-declared tier: the pool learns from a few 429s, round robin never does.
    assert 0 < pool.misdeclared_429 < rr.misdeclared_429
    assert rr.misdeclared_rate == 20.0
    assert rr.converged_after is None
    text = out.getvalue()
    assert "| requests done (200)" in text
    row = re.search(
        r"\| throughput / capacity +\| [\d,]+/s = (\d+)% +\| [\d,]+/s = (\d+)% +\|", text
    )
    assert row is not None, text
    shown_pool, shown_rr = int(row[1]), int(row[2])
    assert shown_pool >= 55
    assert shown_pool >= 1.4 * shown_rr
    note = re.search(r"soonest-fire completed (\d+\.\d)x the requests of round robin", text)
    assert note is not None, text
    assert float(note[1]) >= 1.4
    assert "tolerance=0.02" in text
    assert "disabled:" in text  # the pool's events are shown
    assert "limit lowered: " in text  # ... the calibration's among them
    # Per tier, the live lines show declared and effective limits and the 429s.
    assert re.search(r"\[10/s declared 20/s × 1: [\d,]+/s, limit 20/s -> [\d.]+/s, burst", text)
    assert re.search(r"\[10/s declared 20/s × 1: [\d,]+/s, limit 20/s, 429s \d+\]", text)
    assert f"| tier declared 20/s, really 10/s | within {CONVERGED:.0%} in " in text or (
        "| tier declared 20/s, really 10/s | not within" in text
    )
    assert f"Round robin, configured alike, kept sending at 20/s: {rr.misdeclared_429} 429s." in (
        text.replace("\n", " ")
    )
    assert_no_secret(text, result)


async def test_the_mis_declared_tier_comes_down_to_near_its_real_rate() -> None:
    """Declared at 20/s, served at 10/s by nginx limit_req (429s without Retry-After):
    within four seconds of real time the demo's live lines show the tier's limit come
    down to within 10% of the real rate (a few steps of the 2% grid), learned from a few
    429s a token, not from a flood, and it never climbs back near the declared 20/s.

    Why not "within 3%" at the deadline, as the virtual-time tests hold it
    (``test_calibrate_sim``, ``tests/pool/test_calibration.py``): this is the real-time
    demo. On a machine with its cores taken by other work the client cannot keep the
    tier busy, so a token lowered to 10.4/s gets no more 429s and stays there (measured:
    with two busy loops beside it, 4 of 8 runs of six seconds ended at 10.405/s after
    four 429s a token). And once there, the calibrator climbs back toward the least rate
    refused (its rule 3), so the rate at the deadline is a moment of that climb (the
    demo once ended at 10.8/s after converging at 1.88 s)."""
    mix = make_mix(8)
    tier = mix.misdeclared
    assert tier is not None
    api, _ = await start_server(mix)
    out = io.StringIO()
    try:
        result = await run_soonest_fire(mix, api, seconds=4.0, concurrency=40, view=PlainView(out))
    finally:
        await api.close()
    # Each second's live line: the tier's effective limits, "-> 10.2/s" or a range.
    shown = re.findall(
        r"\[10/s declared 20/s × \d+: [\d,]+/s, limit 20/s -> ([\d.]+)(?:-([\d.]+))?/s",
        out.getvalue(),
    )
    assert len(shown) == 4, out.getvalue()
    highest = [float(high or low) for low, high in shown]
    assert min(highest) <= tier.rate * 1.10, highest
    assert result.misdeclared_rate is not None
    assert result.misdeclared_rate <= 0.75 * tier.declared_rate
    assert result.converged_after is None or result.converged_after <= 4.0  # (the deadline's look)
    # It learned from 429s, a few per token (measured: 4 or 5 each), not from a flood.
    assert len(tier.secrets) <= result.misdeclared_429 <= 20 * len(tier.secrets)


async def test_the_live_table_in_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    result = await run_demo(RichView(console), seconds=0.6, tokens=4, concurrency=10)
    text = out.getvalue()
    assert "soonest-fire vs round robin: the same work" in text
    assert "token states" in text
    assert "effective limit" in text
    assert "declared" in text
    assert "tier declared 20/s, really 10/s" in text
    assert "(round robin keeps none)" in text
    assert len(result.runs) == 2
    assert_no_secret(text, result)


async def test_bad_arguments() -> None:
    view = PlainView(io.StringIO())
    with pytest.raises(ValueError, match="--seconds"):
        await run_demo(view, seconds=0)
    with pytest.raises(ValueError, match="--concurrency"):
        await run_demo(view, seconds=1, concurrency=0)
    with pytest.raises(ValueError, match="at least 4 tokens"):
        await run_demo(view, seconds=1, tokens=3)


def test_the_mix() -> None:
    mix = make_mix(10)
    assert [len(t.secrets) for t in mix.tiers] == [2, 2, 4, 2]
    assert [t.rate for t in mix.tiers] == [*TIER_RATES, 10.0]
    assert [t.declared_rate for t in mix.tiers] == [*TIER_RATES, 20.0]
    assert MISDECLARED == (10.0, 20.0, 3)
    assert mix.capacity == 2 * 5 + 2 * 20 + 4 * 50 + 2 * 10
    assert mix.bursts == 2 * 5 + 2 * 20 + 4 * 50 + 2 * (3 + 1)  # nginx: burst + 1 at once
    assert len(mix.revoked) == REVOKED
    assert mix.cooling in mix.tiers[0].secrets
    wrong = mix.misdeclared
    assert wrong is mix.tiers[-1]
    assert wrong.label == "10/s declared 20/s"
    tokens = mix.tokens()
    assert len(tokens) == 12
    assert len({t.name for t in tokens}) == 12  # masked names are unique
    assert {t.value for t in tokens} == {*mix.live, *mix.revoked}
    declared = {t.value: t.limits for t in tokens}
    assert {declared[s] for s in wrong.secrets} == {(Limit(20),)}
    assert all(not lim.burst_given for t in tokens for lim in t.limits)  # burst left default
    server = mix.server_limits()
    assert {server[s] for s in wrong.secrets} == {NginxLimitReq(10, burst=3)}
    assert server[mix.tiers[1].secrets[0]] == Limit(20)
    assert mix.describe() == (
        "10 tokens (2 at 5/s, 2 at 20/s, 4 at 50/s, 2 declared 20/s that the server (nginx "
        "limit_req, burst 3, 429 without Retry-After) holds to 10/s; capacity 270/s), "
        f"2 revoked, and {mask(mix.cooling)} cooling down at first"
    )
    assert mix.rate_of("unknown") == mix.declared_of("unknown") == 20.0
    assert (mix.rate_of(wrong.secrets[0]), mix.declared_of(wrong.secrets[0])) == (10.0, 20.0)


def test_round_robin_needs_tokens() -> None:
    with pytest.raises(ValueError, match="at least one token"):
        RoundRobin([])


def run(strategy: str, done: int, **kwargs: float | None) -> RunResult:
    values: dict[str, float | None] = {
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
    result = DemoResult(make_mix(4), 10, 0.0, (run(SOONEST_FIRE, 0), run(ROUND_ROBIN, 0)))
    rows = {row[0]: row[1:] for row in summary_rows(result)}
    assert rows["wait p50"] == ("-", "-")
    assert rows["answered 429"][0].startswith("0.0% (0 of 0 sent)")
    assert rows["tier declared 20/s, really 10/s"] == (
        "not within 3% in 10 s, 0 429s; ends at -",
        "stays at -, 0 429s",
    )
    assert summary_notes(result)[-1] == "round robin completed no request in the time given."
    assert result.runs[0].allowed == 110.0


def test_the_summary_of_one_strategy_has_no_comparison() -> None:
    result = DemoResult(make_mix(4), 10, 2.0, (run(SOONEST_FIRE, 5, wait_p50=0.25),))
    notes = summary_notes(result)
    assert not any("completed" in note for note in notes)
    assert not any("Round robin, configured alike" in note for note in notes)
    assert {r[0]: r[1] for r in summary_rows(result)}["wait p50"] == "250 ms"


def test_the_summary_says_how_the_mis_declared_tier_converged() -> None:
    pool = run(SOONEST_FIRE, 4000, misdeclared_429=30, converged_after=1.86, misdeclared_rate=10.2)
    rr = run(ROUND_ROBIN, 1900, misdeclared_429=234, misdeclared_rate=20.0)
    result = DemoResult(make_mix(24), 300, 3.0, (pool, rr))
    rows = {row[0]: row[1:] for row in summary_rows(result)}
    assert rows["tier declared 20/s, really 10/s"] == (
        "within 3% in 1.86 s, 30 429s; ends at 10.2/s",
        "stays at 20/s, 234 429s",
    )
    notes = summary_notes(result)
    assert notes[-2] == (
        "mis-declared tier: 6 tokens the configuration declares at 20/s, which the server "
        "(nginx limit_req, burst 3) holds to 10/s, answering 429 without Retry-After. The "
        "pool lowered their effective limits to within 3% of 10/s 1.86 s into the run (they "
        "ended at 10.2/s); that cost 30 429s on the tier. Round robin, configured alike, "
        "kept sending at 20/s: 234 429s."
    )
    assert notes[-1].startswith("soonest-fire completed 2.1x the requests of round robin")
    slow = run(SOONEST_FIRE, 4000, misdeclared_429=8, misdeclared_rate=10.8264, seconds=1.5)
    notes = summary_notes(DemoResult(make_mix(4), 300, 3.0, (slow,)))
    assert notes[-1] == (
        "mis-declared tier: 1 tokens the configuration declares at 20/s, which the server "
        "(nginx limit_req, burst 3) holds to 10/s, answering 429 without Retry-After. The "
        "pool's effective limits did not come within 3% of 10/s in 1.5 s (they ended at "
        "10.8/s); that cost 8 429s on the tier."
    )


def test_a_progress_line_shows_declared_and_effective_limits() -> None:
    out = io.StringIO()
    label = "10/s declared 20/s × 2"
    pool_tiers = (
        TierRow(label, 2, 20.0, 90, 20.4, 7, 0, "2 active", "20/s", "10-10.2/s, burst 1"),
        TierRow("revoked × 2", 2, 0.0, 0, 0.0, 0, 2, "2 disabled"),
    )
    rr_tiers = (TierRow(label, 2, 20.0, 90, 20.4, 0, 0, "", "20/s", ""),)
    view = PlainView(out)
    view.update(Progress(SOONEST_FIRE, 2.0, 10.0, 90, 20.4, 20.0, 97, 7, 2, pool_tiers, ("x…1 a",)))
    view.update(Progress(ROUND_ROBIN, 2.0, 10.0, 90, 20.4, 20.0, 90, 0, 0, rr_tiers, ()))
    assert out.getvalue().splitlines() == [
        f"{'':>12} event: x…1 a",
        "soonest-fire   2.0/10s  done      90      20/s of 20/s  429s 7  401s 2  "
        "[10/s declared 20/s × 2: 20/s, limit 20/s -> 10-10.2/s, burst 1, 429s 7, 2 active]  "
        "[revoked × 2: 0/s, 2 disabled]",
        " round robin   2.0/10s  done      90      20/s of 20/s  429s 0  401s 0  "
        "[10/s declared 20/s × 2: 20/s, limit 20/s]",
    ]


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("20/1s", Window(20.0, 20.0, 1.0)),
        ("10.2005/1s (burst 1)", Window(10.2005, 1.0, 1.0)),
        ("5000/3600s (burst 2)", Window(5000 / 3600, 2.0, 3600.0)),
        ("1e+06/1s", Window(1e6, 1e6, 1.0)),
        ("20/1s,burst=2", None),
        ("fast", None),
        ("1.2.3/1s", None),
        ("5/0s", None),
    ],
)
def test_limits_read_back_from_stats(text: str, window: Window | None) -> None:
    assert read_limit(text) == window


def test_the_fastest_window_and_a_tier_in_a_few_characters() -> None:
    assert fastest(["5000/3600s", "20/1s (burst 1)", "junk"]) == Window(20.0, 1.0, 1.0)
    assert fastest([]) is None
    one = Window(10.2005, 1.0, 1.0)
    assert describe_limits([one, one]) == "10.2/s, burst 1"
    assert describe_limits([Window(9.8, 1.0, 1.0), one, Window(10, 2, 1)]) == (
        "9.8-10.2/s, burst 1-2"
    )
    assert describe_limits([Window(20, 20, 1)], burst=False) == "20/s"
    assert describe_limits([]) == ""


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
        (
            {
                "event": "aurora.token.limit_lowered",
                "token": "a…b",
                "limits": ["14/1s (burst 1)"],
                "was": ["20/1s (burst 1)"],
                "source": "learned",
                "reason": "rate refused",
            },
            "a…b limit lowered: 20/1s (burst 1) -> 14/1s (burst 1) (rate refused)",
        ),
        (
            {
                "event": "aurora.token.limit_raised",
                "token": "a…b",
                "limits": ["10.4/1s (burst 1)", "5000/3600s"],
                "was": ["10/1s (burst 1)", "5000/3600s"],
                "reason": "",
            },
            "a…b limit raised: 10/1s (burst 1) and 5000/3600s -> 10.4/1s (burst 1) and 5000/3600s",
        ),
        (
            {
                "event": "aurora.token.limit_from_header",
                "token": "a…b",
                "limits": ["19/1s (burst 1)"],
                "was": ["19/1s (burst 1)"],
                "reason": "the server counts more used",
            },
            "a…b limit from the server's headers: 19/1s (burst 1) (the server counts more used)",
        ),
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


def test_lines_about_several_tokens_are_condensed() -> None:
    lines = [
        "a…1 limit lowered: 20/1s -> 14/1s (rate refused)",
        "pool low: 1 of 9 tokens active",
        "a…2 limit lowered: 20/1s -> 14/1s (rate refused)",
        "a…3 limit lowered: 20/1s -> 14/1s (rate refused)",
        "a…4 limit lowered: 20/1s -> 14/1s (rate refused)",
        "a…1 cooling down for 0.05 s (calibrating)",
        "a…2 cooling down for 0.05 s (calibrating)",
        "b…9 disabled: HTTP 401",
        "pool low: 1 of 9 tokens active",
    ]
    assert condense(lines) == [
        "a…1, a…2 and 2 more: limit lowered: 20/1s -> 14/1s (rate refused)",
        "pool low: 1 of 9 tokens active",
        "a…1, a…2: cooling down for 0.05 s (calibrating)",
        "b…9 disabled: HTTP 401",
        "pool low: 1 of 9 tokens active",
    ]
    assert condense([]) == []
