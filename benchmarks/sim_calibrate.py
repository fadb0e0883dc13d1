"""Self-calibrating limits in a pure simulation: issue 11's table, in about a second.

    python benchmarks/sim_calibrate.py

The 12-token mix of issue 11 (tiers of 5, 20 and 50 requests a second with nginx bursts
2, 3 and 5, four tokens each), each token a saturating client whose limits its
``Calibrator`` moves, against its own nginx ``limit_req`` (modelled exactly, see
``tests/core/calibration_sim.py``) or a fixed-window API that states its quota in
headers; 20 simulated seconds at round trips of 1 ms and 50 ms. No asyncio: this is the
calibrator's logic alone (``bench_calibrate.py`` runs the real pool against MockAPI and
nginx).

Columns: share of what the servers could have accepted; share of requests answered 429
(and how many); the least share of one tier; for a server that changes its limits, how
long after the change the slowest token's rate came down to the new one, and the 429s
after the change; issue 11's target.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.core.calibration_sim import SCENARIOS, TIERS, Scenario, simulate

RTTS = (0.001, 0.05)
DURATION = 20.0


def row(scenario: Scenario, rtt: float) -> str:
    result = simulate(scenario.declare, rtt=rtt, servers=scenario.servers, duration=DURATION)
    tiers = min(result.tier(rate).capacity_share for rate, _ in TIERS)
    settle = ""
    if scenario.changed_at is not None:
        slowest = result.converged_after(scenario.changed_at, scenario.changed_by)
        late = sum(t.refused_after(scenario.changed_at) for t in result.tokens)
        settle = f"{slowest:.2f} s, {late} 429s"
    target = ""
    verdict = ""
    if scenario.target is not None:
        least, most = scenario.target
        target = f">= {least:.0%}, <= {most:.0%}"
        met = result.capacity_share >= least and result.refused_share <= most
        verdict = "ok" if met else "MISSED"
    return (
        f"| {scenario.name:34} | {rtt * 1000:4.0f} ms | {result.capacity_share:7.1%} "
        f"| {result.refused_share:6.2%} ({result.refused:3}) | {tiers:7.1%} | {settle:16} "
        f"| {target:16} {verdict:6} |"
    )


def main() -> int:
    started = time.perf_counter()
    print(
        f"| {'scenario':34} | {'rtt':7} | {'capacity':7} | {'429s':12} | {'least tier':7} "
        f"| {'converged':16} | {'target':23} |"
    )
    print(f"|{'-' * 36}|{'-' * 9}|{'-' * 9}|{'-' * 14}|{'-' * 12}|{'-' * 18}|{'-' * 25}|")
    missed = 0
    for scenario in SCENARIOS:
        for rtt in RTTS:
            line = row(scenario, rtt)
            missed += line.rstrip(" |").endswith("MISSED")
            print(line)
    print(f"\n{DURATION:g} simulated seconds per run, {time.perf_counter() - started:.1f} s in all")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
