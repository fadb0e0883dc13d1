"""Self-calibrating limits against server models: issue 11's targets, as assertions.

The simulation (``calibration_sim.py``) is pure and deterministic, so the figures below
are what a run gives today, each asserted with a margin for later tuning, and never
weaker than issue 11's target. ``python benchmarks/sim_calibrate.py`` prints the table.
"""

from __future__ import annotations

import math

import pytest

from aurora_async import Limit
from aurora_async._core.calibrate import Calibrator

from .calibration_sim import (
    MIX,
    SCENARIOS,
    TIERS,
    Answer,
    FixedWindow,
    NginxLimitReq,
    Result,
    Scenario,
    exact,
    run_token,
    simulate,
    too_high,
)

BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}

# -- the server models --------------------------------------------------------------------


def test_nginx_lets_a_new_key_through_with_its_burst_and_one_more() -> None:
    server = NginxLimitReq(5, 2)
    # the first request creates the key at excess 0, then 1000, 2000: 2000 > 2000 fails
    assert [server.request(0.0).ok for _ in range(4)] == [True, True, True, False]
    assert server.excess == 2000  # a refused request leaves the state alone
    # 200 ms later one unit has drained: 2000 - 5 * 200 + 1000 = 2000, accepted
    assert server.request(0.2).ok
    assert not server.request(0.2).ok


def test_nginx_counts_whole_milliseconds_and_clamps_at_zero() -> None:
    server = NginxLimitReq(300, 0)  # burst 0: one request per 3.33 ms, in whole ms
    assert server.request(0.0).ok
    assert not server.request(0.0034).ok  # 3 ms: 0 - 900 + 1000 = 100 > 0
    assert server.request(0.0040).ok  # 4 ms: max(0, 0 - 1200 + 1000) = 0
    assert server.excess == 0
    assert server.capacity(1.0) == 301.0


def test_nginx_changes_its_rate_when_told() -> None:
    server = NginxLimitReq(10, 0, [(1.0, 5.0)])
    assert server.capacity(2.0) == 1 + 10 + 5
    assert (server.rate_at(0.5), server.rate_at(1.0)) == (10, 5.0)
    assert server.request(0.9).ok
    assert not server.request(1.05).ok  # 150 ms at 5/s: 750 drained, not 1000
    assert server.request(1.1).ok


def test_a_fixed_window_states_its_quota_remaining_and_reset() -> None:
    server = FixedWindow(2, 10.0, announce_window=True)
    assert server.request(1.0) == Answer(True, 2, 1, 9.0, 10.0)
    assert server.request(2.0).remaining == 0
    refused = server.request(3.0)
    assert (refused.ok, refused.remaining, refused.reset_after) == (False, 0, 7.0)
    assert server.request(10.0).ok  # a new window
    assert FixedWindow(2, 10.0, announce_window=False).request(0.0).window is None
    assert server.capacity(20.0) == 4


# -- issue 11's scenarios -----------------------------------------------------------------

#: (scenario, rtt) -> (least share of capacity, most 429s), from today's runs with a margin
FIGURES = {
    ("declared exact", 0.001): (0.995, 0),
    ("declared exact", 0.05): (0.995, 0),
    ("right rates, default burst", 0.001): (0.99, 12),
    ("right rates, default burst", 0.05): (0.99, 12),
    ("rates 2x too high", 0.001): (0.98, 100),
    ("rates 2x too high", 0.05): (0.98, 110),
    ("rates 5x too high", 0.001): (0.98, 125),
    ("rates 5x too high", 0.05): (0.98, 240),
    ("nothing declared", 0.001): (0.93, 100),
    ("nothing declared", 0.05): (0.93, 90),
    ("server halves rates at 10 s", 0.001): (0.98, 80),
    ("server halves rates at 10 s", 0.05): (0.98, 80),
    ("quota by headers, window stated", 0.001): (0.985, 0),
    ("quota by headers, window stated", 0.05): (0.985, 0),
    ("quota by headers, window not", 0.001): (0.985, 0),
    ("quota by headers, window not", 0.05): (0.985, 0),
}


def run(scenario: Scenario, rtt: float, duration: float = 20.0) -> Result:
    return simulate(scenario.declare, rtt=rtt, servers=scenario.servers, duration=duration)


@pytest.mark.parametrize(("name", "rtt"), list(FIGURES))
def test_scenario_figures(name: str, rtt: float) -> None:
    scenario = BY_NAME[name]
    result = run(scenario, rtt)
    least, most = FIGURES[name, rtt]
    assert result.capacity_share >= least
    assert result.refused <= most
    capacity = sum(token.capacity for token in result.tokens)
    assert result.fired >= 0.95 * capacity  # the tokens were kept busy
    if scenario.target is not None:  # issue 11's target
        least_share, most_share = scenario.target
        assert result.capacity_share >= least_share
        assert result.refused_share <= most_share
    for rate, _ in TIERS:  # no tier is sacrificed for the others
        assert result.tier(rate).capacity_share >= least - 0.07


@pytest.mark.parametrize(("rtt", "bound"), [(0.001, 6.0), (0.05, 9.0)])
def test_a_halved_server_rate_is_followed_within_seconds(rtt: float, bound: float) -> None:
    scenario = BY_NAME["server halves rates at 10 s"]
    result = run(scenario, rtt)
    assert scenario.changed_at == 10.0
    assert result.converged_after(10.0, 0.5) <= bound  # the slowest token, within 3%
    for token in result.tokens:  # the first steps come at once
        assert token.converged_after(10.0, token.tier[0] * 0.5 * 1.5 / 1.03) <= 1.5
        assert token.refused_after(10.0) <= 10


def test_probing_costs_well_under_one_percent_once_settled() -> None:
    result = run(BY_NAME["rates 2x too high"], 0.05, duration=200.0)
    late_fired = sum(t.fired for t in result.tokens) - 6000  # after the first 20 s
    late_refused = sum(t.refused_after(20.0) for t in result.tokens)
    assert late_refused <= 0.0015 * late_fired
    assert result.capacity_share >= 0.995


def test_tokens_of_one_tier_share_a_few_limit_values() -> None:
    """Learned rates sit on the grid: a tier's tokens end up with a handful of equal
    ``Limit`` values (the scheduler serves equal limits from one lane)."""
    result = run(BY_NAME["rates 2x too high"], 0.05)
    for rate, _ in TIERS:
        finals = {token.final for token in result.tokens if token.tier[0] == rate}
        assert len(finals) <= 3


def test_declared_limits_never_draw_a_429_whatever_the_phase() -> None:
    for start in (0.0, 0.0003, 0.0107, 0.4999):
        for rate, burst in MIX[::4]:
            limits, trusted = exact(rate, burst)
            calibrator = Calibrator(limits, trusted=trusted, now=0.0)
            token = run_token(
                calibrator, NginxLimitReq(rate, burst), rtt=0.02, duration=5.0, start=start
            )
            assert token.refused == 0
            assert token.changes == []


@pytest.mark.parametrize(("prior", "other"), [(45, 0), (0, 20), (0, 45)])
@pytest.mark.parametrize("announce", [True, False])
def test_headers_resync_a_restarted_client_and_one_sharing_the_key(
    prior: int, other: int, announce: bool
) -> None:
    """A fixed window of 50 calls per 10 s, of which ``prior`` were used before the
    client started and ``other`` go to another client at the start of every window."""

    class Shared(FixedWindow):
        def request(self, t: float) -> Answer:
            index = math.floor(t / self.window)
            if index != self.index:
                self.index, self.count = index, (prior if index == 0 else 0) + other
            return super().request(t)

    server = Shared(50, 10.0, announce_window=announce)
    calibrator = Calibrator([Limit(10)], trusted=False, now=0.0)
    token = run_token(calibrator, server, rtt=0.05, duration=60.0)
    assert token.refused == 0
    assert token.accepted >= 6 * (50 - other) - prior - 6 * 2  # all but ~2 a window
    assert calibrator.effective == (Limit(49, per=10, burst=1),)


@pytest.mark.parametrize("factor", [2, 5])
@pytest.mark.parametrize("rtt", [0.001, 0.05])
def test_rates_declared_too_high_converge_within_seconds(factor: int, rtt: float) -> None:
    """Seconds until a token's rate is within 25%, then within 3%, of its server's: the
    5/s tier measures the server more slowly (fewer calls a second)."""
    result = simulate(too_high(factor), rtt=rtt, duration=20.0)
    for token in result.tokens:
        rate = token.tier[0]
        assert token.converged_after(0.0, rate * 1.25 / 1.03) <= 1.7
        assert token.converged_after(0.0, rate) <= (8.0 if rate == 5 else 1.7)


@pytest.mark.parametrize("rtt", [0.001, 0.05])
def test_a_declared_burst_too_large_for_volleys_is_halved_until_it_fits(rtt: float) -> None:
    """Volleys of 10 calls every 5 s at a server of 10/s with nginx burst 2 (3 at once):
    the declared burst of 10 is refused, halved to 5, refused again and halved to 2,
    and then every volley goes through. The rate, never at fault, is kept."""
    arrivals = [float(second) for second in range(0, 60, 5) for _ in range(10)]
    calibrator = Calibrator([Limit(10, burst=10)], trusted=True, now=0.0)
    token = run_token(calibrator, NginxLimitReq(10, 2), rtt=rtt, duration=60.0, arrivals=arrivals)
    assert [change.reason for _, change in token.changes] == ["burst refused"] * 2
    assert calibrator.effective == (Limit(10, burst=2),)
    assert token.refused == 7 + 2  # 10 - 3 of the first volley, 5 - 3 of the second
    assert all(at < 5.1 + rtt for at in token.refusals)
    assert token.fired == 120
    assert calibrator.limit_too_high
