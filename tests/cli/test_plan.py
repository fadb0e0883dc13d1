"""``aurora-async plan``: the arithmetic of sizing a pool, exact on simple cases, and the
limit syntax of the command line."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from aurora_async import Limit
from aurora_async._cli.app import app
from aurora_async._cli.plan import (
    MEASURED_IF_WRONG,
    at_target,
    make_plan,
    render_plan,
    saturated_rate,
)
from aurora_async._core.limitspec import parse_limit


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


# -- the limit syntax ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("5/1s", Limit(5, per=1)),
        ("5/s", Limit(5, per=1)),
        ("5 / 1 sec", Limit(5, per=1)),
        ("5000/3600s", Limit(5000, per=3600)),
        ("5000/1h", Limit(5000, per=3600)),
        ("5000/hour", Limit(5000, per=3600)),
        ("30/min", Limit(30, per=60)),
        ("30/2mins", Limit(30, per=120)),
        ("30/1m", Limit(30, per=60)),
        ("100/500ms", Limit(100, per=0.5)),
        ("10000/day", Limit(10000, per=86400)),
        ("0.5/s", Limit(0.5, per=1)),
        ("5/1s,burst=2", Limit(5, per=1, burst=2)),
        ("5/1S, Burst = 2.5", Limit(5, per=1, burst=2.5)),
    ],
)
def test_limit_syntax(text: str, limit: Limit) -> None:
    assert parse_limit(text) == limit


def test_burst_applies_unless_the_spec_has_its_own() -> None:
    assert parse_limit("5/1s", burst=1) == Limit(5, per=1, burst=1)
    assert parse_limit("5/1s,burst=3", burst=1) == Limit(5, per=1, burst=3)


@pytest.mark.parametrize(
    "text", ["", "5", "5/", "/1s", "5/1x", "five/s", "5/0s", "0/1s", "5/s,b=2"]
)
def test_limit_syntax_errors(text: str) -> None:
    with pytest.raises(ValueError, match="limit"):
        parse_limit(text)


# -- the simulation --------------------------------------------------------------------


def test_one_token_sustains_its_rate_exactly() -> None:
    rate, grants = saturated_rate(1, (Limit(5, per=1),), 1.0, 3600.0)
    assert (rate, grants) == (5.0, 18_000)


def test_a_fresh_token_adds_its_burst() -> None:
    _, grants = saturated_rate(2, (Limit(5, per=1),), 1.0, 10.0, full=False)
    assert grants == 2 * (5 + 50)


def test_cost_divides_the_rate() -> None:
    rate, _ = saturated_rate(3, (Limit(10, per=1),), 2.0, 100.0)
    assert rate == 15.0


def test_at_target_grants_every_arrival_when_there_is_room() -> None:
    achieved, leases, waits = at_target(4, (Limit(5, per=1),), 1.0, 10.0, 60.0)
    assert achieved == pytest.approx(10.0, rel=1e-3)
    assert sum(leases) == len(waits)
    assert max(leases) - min(leases) <= 1  # spread over the tokens
    assert max(waits) < 0.2


def test_100_per_second_with_5_per_second_tokens_needs_20() -> None:
    plan = make_plan(100, [Limit(5, per=1)])
    assert plan.tokens == 20
    assert plan.per_token == 5.0
    assert plan.binding == Limit(5, per=1)
    assert plan.achieved == pytest.approx(100.0, rel=1e-3)
    assert plan.utilization == pytest.approx(1.0, rel=1e-3)
    assert plan.short_by == pytest.approx(5.0)
    assert plan.simulated_seconds == 3600.0


def test_a_second_window_that_binds() -> None:
    # 5/s alone would need 2 tokens for 10/s; 5000 an hour is 1.39/s: 8 tokens.
    plan = make_plan(10, [Limit(5, per=1), Limit(5000, per=3600)])
    assert plan.per_token == pytest.approx(5000 / 3600)
    assert plan.binding == Limit(5000, per=3600)
    assert plan.tokens == 8 == math.ceil(10 / (5000 / 3600))
    assert plan.utilization == pytest.approx(10 / (8 * 5000 / 3600), rel=1e-3)
    assert plan.achieved == pytest.approx(10.0, rel=1e-3)
    # From idle, the hourly bucket's burst doubles the first hour: the caveat.
    assert plan.fresh_per_token == pytest.approx((5000 + 5000) / 3600)


def test_a_second_window_that_does_not_bind() -> None:
    plan = make_plan(100, [Limit(5, per=1), Limit(100_000, per=3600)])
    assert (plan.tokens, plan.binding) == (20, Limit(5, per=1))


def test_a_target_below_one_token() -> None:
    plan = make_plan(2, [Limit(10, per=1)])
    assert (plan.tokens, plan.short_by) == (1, 0.0)
    assert plan.utilization == pytest.approx(0.2, rel=1e-3)


def test_cost_above_one() -> None:
    plan = make_plan(10, [Limit(10, per=1)], cost=2)
    assert (plan.tokens, plan.per_token) == (2, 5.0)


def test_a_big_pool_is_simulated_as_a_slice() -> None:
    plan = make_plan(50_000, [Limit(1000, per=1)], hours=0.01)
    assert plan.tokens == 50
    assert plan.simulated_tokens < plan.tokens
    assert plan.achieved == pytest.approx(50_000, rel=1e-3)
    assert plan.cpu_seconds < 30


def test_a_busy_token_is_simulated_for_less_than_the_horizon() -> None:
    plan = make_plan(3000, [Limit(2000, per=1)], budget=20_000)
    assert plan.simulated_tokens == 1
    assert plan.simulated_seconds == pytest.approx(10.0)
    assert plan.tokens == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target": 10, "limits": []}, "at least one limit"),
        ({"target": 0, "limits": [Limit(5)]}, "target rate"),
        ({"target": math.inf, "limits": [Limit(5)]}, "target rate"),
        ({"target": 10, "limits": [Limit(5)], "hours": 0}, "--hours"),
        ({"target": 10, "limits": [Limit(5, burst=2)], "cost": 3}, "smallest burst is 2"),
    ],
)
def test_impossible_plans(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_plan(**kwargs)  # type: ignore[arg-type]


def test_the_report_says_what_matters() -> None:
    limits = [Limit(5, per=1, burst=5), Limit(5000, per=3600, burst=5000)]  # bursts given
    text = render_plan(make_plan(10, limits))
    assert "Tokens needed: 8\n" in text
    assert "One token sustains 1.39 requests/s (the 5000/3600s window binds)." in text
    assert "7 would give 9.72/s, short by 0.278/s" in text
    assert "Per-token utilization: 90%" in text
    assert "Burst caveat: an idle token starts with full buckets, so it can fire 5 at once" in text
    assert "averages up to 2.78 requests/s instead of 1.39" in text
    assert "Slow start" not in text
    text = render_plan(make_plan(100, [Limit(5, per=1)]))
    assert "No headroom" in text
    assert "16 of 20 identical tokens" in text or "20 token(s)" in text
    one = render_plan(make_plan(2, [Limit(10, per=1)], cost=1.5))
    assert "would give" not in one
    assert "of cost 1.5" in one


def test_a_burst_left_at_its_default_starts_at_one_unit() -> None:
    text = render_plan(make_plan(10, [Limit(5, per=1)]))
    assert (
        "Slow start: the burst is left at its default, so calibration (the default) starts it "
        "at 1 unit, and it grows back with clean service: a fresh token opens at its steady "
        "rate, not with a volley (with calibrate=False an idle token starts with full buckets "
        "and can fire 5 at once). A server that counts"
    ) in text
    assert "Burst caveat" not in text
    # Only the fastest window starts at one unit: the hourly one starts full.
    two = render_plan(make_plan(10, [Limit(5, per=1), Limit(5000, per=3600)]))
    assert "Slow start: the burst of 5/1s is left at its default" in two
    assert (
        "can fire 5 at once). Its slower windows start full: over its first 1 h from idle it "
        "averages up to 2.78 requests/s instead of 1.39"
    ) in two
    given = render_plan(make_plan(10, [Limit(5, per=1, burst=2), Limit(5000, per=3600)]))
    assert "Slow start" not in given
    assert "Burst caveat: an idle token starts with full buckets, so it can fire 2 at once" in (
        given
    )


def test_the_report_says_what_happens_when_the_limits_are_wrong() -> None:
    text = render_plan(make_plan(100, [Limit(5, per=1)]))
    tail = text[text.index("If these limits are wrong:") :].splitlines()
    assert tail[1:] == [
        "  rate right, burst left at its default: 99.6% of capacity, 0.00% answered 429",
        "  rate declared 2x too high: 99.4% of capacity, 1.32% answered 429",
        "  no limits declared: 93.6% of capacity, 1.37% answered 429",
        "  (strict round robin at the right rates: 60.5%, 15.90% answered 429 or 401)",
        "A rate declared too low stays that low: plan with the server's real rate, or "
        "TokenPool(..., calibrate=False) to enforce the declared limits exactly.",
    ]
    assert "never raises it above what is declared" in tail[0]
    assert "Measured by benchmarks/bench_calibrate.py" in tail[0]  # not simulated
    assert len(MEASURED_IF_WRONG) == 3


# -- the command ----------------------------------------------------------------------


def test_plan_command(runner: CliRunner) -> None:
    result = runner.invoke(app, ["plan", "--rate", "100", "--limit", "5/1s"])
    assert result.exit_code == 0, result.stderr
    assert "Tokens needed: 20\n" in result.stdout
    assert "Slow start: the burst is left at its default" in result.stdout
    assert "  rate declared 2x too high: 99.4% of capacity" in result.stdout


def test_plan_command_json_and_burst(runner: CliRunner) -> None:
    args = ["plan", "--rate", "10", "--limit", "5/1s", "--limit", "5000/3600s", "--burst", "2"]
    result = runner.invoke(app, [*args, "--json", "--hours", "0.5"])
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["tokens_needed"] == 8
    assert plan["limits"] == ["5/1s (burst 2)", "5000/3600s"]
    assert plan["binding_limit"] == "5000/3600s"
    assert plan["hours"] == 0.5


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--limit", "5/1s"],  # no rate
        ["plan", "--rate", "10"],  # no limit
        ["plan", "--rate", "10", "--limit", "5 per second"],
        ["plan", "--rate", "10", "--limit", "5/1s", "--cost", "9"],
        ["plan", "--rate", "-1", "--limit", "5/1s"],
    ],
)
def test_plan_usage_errors(runner: CliRunner, args: list[str]) -> None:
    assert runner.invoke(app, args).exit_code == 2
