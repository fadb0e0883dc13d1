"""``aurora-async plan``: how many tokens a target request rate needs, by simulation.

The pure :class:`~aurora_async._core.scheduler.Scheduler` runs on virtual time in a
discrete-event loop: no asyncio, no sleeping, just ``dispatch(now)`` at the moments it
names. Two runs answer the question:

1. *Saturated*: waiters are always queued, every window starts full (the steady state of
   a token in constant use), and the grants over the horizon give what one token
   sustains. The tokens needed are the target divided by that, rounded up.
2. *At the target*: arrivals in small batches at the target rate, against that many
   tokens: the rate achieved, how busy each token is, and how long a lease waits.

Tokens with the same limits behave alike, so a large pool is simulated as a slice of
it (``s`` of ``N`` tokens at ``s / N`` of the target), which keeps an hour of a busy
pool to a few seconds of CPU.

The simulation takes the limits as true. What the pool does when they are not (its limits
calibrate themselves) is not simulated here: the report quotes what
``benchmarks/bench_calibrate.py`` measured against nginx (:data:`MEASURED_IF_WRONG`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from .._core.limits import Limit
from .._core.scheduler import INF, Scheduler, Slot, Waiter
from .._core.tokens import Token

__all__ = ["Plan", "make_plan", "render_plan"]

#: Grants one simulation may make: about a second of CPU.
GRANT_BUDGET = 300_000
#: Arrivals come in batches this far apart (seconds) in the run at the target rate.
BATCH = 0.05
#: Relative slack when dividing simulated rates: float crumbs must not add a token.
_REL = 1e-9
#: What ``benchmarks/bench_calibrate.py`` measured with calibration on (the default):
#: 12 tokens of 5, 20 and 50 r/s behind a real nginx ``limit_req`` (429s without
#: Retry-After), 2,000 coroutines, 20 s runs (benchmarks/results/calibrate.json).
#: Per way of declaring the limits: (how, share of the server's capacity served, share of
#: requests answered 429).
MEASURED_IF_WRONG = (
    ("rate right, burst left at its default", 0.996, 0.0000),
    ("rate declared 2x too high", 0.994, 0.0132),
    ("no limits declared", 0.936, 0.0137),
)
#: The same run's strict round robin at the right rates: (share of capacity, share of
#: requests answered 429 or 401).
MEASURED_ROUND_ROBIN = (0.605, 0.159)


@dataclass(frozen=True, slots=True)
class Plan:
    """The answer of ``plan``: every rate in requests per second."""

    target: float
    limits: tuple[Limit, ...]
    cost: float
    hours: float
    per_token: float  #: what one token sustains (simulated, saturated)
    binding: Limit  #: the window that sets ``per_token``
    tokens: int  #: tokens needed for ``target``
    short_by: float  #: what one token fewer would miss (0 when one token is enough)
    achieved: float  #: rate achieved at the target with ``tokens`` tokens
    utilization: float  #: share of each token's sustained rate in use at the target
    wait_p50: float  #: seconds a lease waits, median, at the target
    wait_p99: float
    simulated_tokens: int  #: tokens in the simulated slice
    simulated_seconds: float  #: virtual seconds of each run
    grants: int  #: leases granted in all runs
    cpu_seconds: float  #: real time the simulation took
    fresh_per_token: float  #: per-token average over the horizon starting idle (bursts)

    @property
    def headroom(self) -> float:
        """Spare rate with ``tokens`` tokens: sustained capacity over the target."""
        return self.tokens * self.per_token - self.target

    def as_dict(self) -> dict[str, object]:
        return {
            "target_per_second": self.target,
            "limits": [str(limit) for limit in self.limits],
            "cost": self.cost,
            "hours": self.hours,
            "tokens_needed": self.tokens,
            "per_token_per_second": self.per_token,
            "binding_limit": str(self.binding),
            "achieved_per_second": self.achieved,
            "utilization": self.utilization,
            "short_by_with_one_fewer": self.short_by,
            "wait_p50_seconds": self.wait_p50,
            "wait_p99_seconds": self.wait_p99,
            "fresh_per_token_per_second": self.fresh_per_token,
            "simulated_tokens": self.simulated_tokens,
            "simulated_seconds": self.simulated_seconds,
            "grants": self.grants,
            "cpu_seconds": self.cpu_seconds,
        }


def _pool(n: int, limits: tuple[Limit, ...], *, full: bool) -> tuple[Scheduler, list[Slot]]:
    sched = Scheduler(trial_in_flight=None)
    slots = []
    for i in range(n):
        slot = sched.add(Token(f"plan-token-{i:06d}"), f"t{i}", limits, None, 0.0)
        if full:
            sched.relimit(slot, limits, 0.0)  # windows start full: the steady state
        slots.append(slot)
    return sched, slots


def saturated_rate(
    n: int, limits: tuple[Limit, ...], cost: float, seconds: float, *, full: bool = True
) -> tuple[float, int]:
    """Requests a second ``n`` tokens sustain with waiters always queued, and the grants
    made, over ``seconds`` of virtual time."""
    sched, _ = _pool(n, limits, full=full)
    # At most this many grants can fall on one instant: every token's smallest bucket.
    per_instant = n * max(1, math.floor(min(limit.burst for limit in limits) / cost)) + 1
    now = 0.0
    grants = 0
    limit = seconds + 1e-6
    while True:
        for _ in range(per_instant - sched.waiting):
            sched.enqueue(Waiter(cost, INF, now))
        granted, _, wake = sched.dispatch(now)
        grants += len(granted)
        for waiter in granted:
            sched.release(waiter.slot)  # type: ignore[arg-type]  # granted: slot set
        if wake > limit:
            return grants / seconds, grants
        now = wake


def at_target(
    n: int, limits: tuple[Limit, ...], cost: float, rate: float, seconds: float
) -> tuple[float, list[int], list[float]]:
    """Run ``n`` tokens (windows full) against arrivals of ``rate`` a second in batches:
    the rate granted, each token's grants and every lease's wait."""
    sched, slots = _pool(n, limits, full=True)
    waits: list[float] = []
    owed = 0.0
    arrival = 0.0
    wake = INF
    end = seconds + 1e-6
    while True:
        now = min(arrival, wake)
        if now > end:
            break
        if arrival <= now:
            owed += rate * BATCH
            batch = math.floor(owed + 1e-9)
            owed -= batch
            for _ in range(batch):
                sched.enqueue(Waiter(cost, INF, now))
            arrival += BATCH
        granted, _, wake = sched.dispatch(now)
        for waiter in granted:
            waits.append(now - waiter.enqueued_at)
            sched.release(waiter.slot)  # type: ignore[arg-type]  # granted: slot set
    return len(waits) / seconds, [slot.leases for slot in slots], waits


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _binding(limits: tuple[Limit, ...]) -> Limit:
    return min(limits, key=lambda limit: limit.per_second)


def _fresh_units(limits: tuple[Limit, ...], seconds: float) -> float:
    """Units an idle token (empty buckets) can take in its first ``seconds``."""
    return min(limit.burst + limit.per_second * seconds for limit in limits)


def make_plan(
    target: float,
    limits: Sequence[Limit],
    *,
    cost: float = 1.0,
    hours: float = 1.0,
    budget: int = GRANT_BUDGET,
) -> Plan:
    """Simulate and size a pool for ``target`` requests a second (see the module)."""
    limits = tuple(limits)
    if not limits:
        raise ValueError("give at least one limit, such as --limit 5/1s")
    if not (target > 0 and math.isfinite(target)):
        raise ValueError(f"the target rate must be a positive number, got {target!r}")
    if not (hours > 0 and math.isfinite(hours)):
        raise ValueError(f"--hours must be a positive number, got {hours!r}")
    smallest = min(limit.burst for limit in limits)
    if not (0 < cost <= smallest):
        raise ValueError(
            f"cost {cost:g} does not fit a token whose smallest burst is {smallest:g}: "
            "no lease of that cost could ever be granted"
        )
    started = time.process_time()
    binding = _binding(limits)
    estimate = binding.per_second / cost  # requests a second one token sustains
    horizon = hours * 3600.0
    # The slice: as many tokens as the budget allows over the whole horizon; if even one
    # token is too busy for that, a shorter run (a full bucket is in steady state at once).
    seconds = min(horizon, budget / estimate)
    needed_guess = max(1, math.ceil(target / estimate * (1 - _REL)))
    sliced = max(1, min(needed_guess, math.floor(budget / (estimate * seconds))))
    rate, grants = saturated_rate(sliced, limits, cost, seconds)
    per_token = rate / sliced
    tokens = max(1, math.ceil(target / per_token * (1 - _REL)))
    short_by = max(0.0, target - (tokens - 1) * per_token) if tokens > 1 else 0.0
    share = target * sliced / tokens  # the slice's part of the target
    achieved, leases, waits = at_target(sliced, limits, cost, share, seconds)
    grants += len(waits)
    utilization = sum(leases) / (sliced * per_token * seconds)
    return Plan(
        target=target,
        limits=limits,
        cost=cost,
        hours=hours,
        per_token=per_token,
        binding=binding,
        tokens=tokens,
        short_by=short_by,
        achieved=achieved * tokens / sliced,
        utilization=utilization,
        wait_p50=_quantile(waits, 0.50),
        wait_p99=_quantile(waits, 0.99),
        simulated_tokens=sliced,
        simulated_seconds=seconds,
        grants=grants,
        cpu_seconds=time.process_time() - started,
        fresh_per_token=_fresh_units(limits, horizon) / cost / horizon,
    )


def _rate(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    return f"{seconds * 1000:.0f} ms"


def _caveat(plan: Plan) -> str:
    burst = min(limit.burst for limit in plan.limits)
    fast = min(plan.limits, key=lambda limit: limit.per)  # the window calibration learns
    if fast.burst_given:
        text = (
            f"Burst caveat: an idle token starts with full buckets, so it can fire {burst:g} "
            "at once"
        )
    else:
        which = "the burst" if len(plan.limits) == 1 else f"the burst of {fast}"
        text = (
            f"Slow start: {which} is left at its default, so calibration (the default) starts "
            "it at 1 unit, and it grows back with clean service: a fresh token opens at its "
            "steady rate, not with a volley (with calibrate=False an idle token starts with "
            f"full buckets and can fire {burst:g} at once)"
        )
    if plan.fresh_per_token > plan.per_token * 1.01:
        text += (
            f"{', and' if fast.burst_given else '. Its slower windows start full:'} over its "
            f"first {_duration(plan.hours * 3600)} from idle it averages up to "
            f"{_rate(plan.fresh_per_token)} requests/s instead of {_rate(plan.per_token)}: a "
            "short test looks better than a day of traffic, so plan with the steady state above"
        )
    return (
        text + ". A server that counts calls per fixed or sliding window may see up to twice "
        "the rate in one window after an idle spell: for such servers use "
        "Limit.sliding_window(count, per) or a smaller --burst."
    )


def _if_wrong() -> list[str]:
    """What the pool does when the limits given are wrong, as measured."""
    lines = [
        "If these limits are wrong: calibration (the default) lowers a token's effective limit "
        "on 429s its limiter allowed, and never raises it above what is declared. Measured by "
        "benchmarks/bench_calibrate.py (12 tokens of 5, 20 and 50 r/s behind nginx limit_req, "
        "429s without Retry-After, 20 s runs):",
    ]
    for how, share, refused in MEASURED_IF_WRONG:
        lines.append(f"  {how}: {share:.1%} of capacity, {refused:.2%} answered 429")
    share, refused = MEASURED_ROUND_ROBIN
    lines.append(
        f"  (strict round robin at the right rates: {share:.1%}, {refused:.2%} answered 429 or 401)"
    )
    lines.append(
        "A rate declared too low stays that low: plan with the server's real rate, or "
        "TokenPool(..., calibrate=False) to enforce the declared limits exactly."
    )
    return lines


def render_plan(plan: Plan) -> str:
    """The plan as text for a person."""
    limits = " and ".join(str(limit) for limit in plan.limits)
    cost = f" of cost {plan.cost:g}" if plan.cost != 1 else ""
    lines = [
        f"Target: {_rate(plan.target)} requests/s{cost}; each token limited to {limits}.",
        f"One token sustains {_rate(plan.per_token)} requests/s (the {plan.binding} window binds).",
        "",
        f"Tokens needed: {plan.tokens}",
    ]
    if plan.tokens > 1:
        lines.append(
            f"  ({plan.tokens - 1} would give {_rate((plan.tokens - 1) * plan.per_token)}/s, "
            f"short by {_rate(plan.short_by)}/s: the queue would grow without end)"
        )
    lines += [
        f"Achieved at the target: {_rate(plan.achieved)} requests/s",
        f"Per-token utilization: {plan.utilization:.0%} "
        f"({_rate(plan.achieved / plan.tokens)} of {_rate(plan.per_token)} requests/s each)",
        f"Lease wait at the target: p50 {_duration(plan.wait_p50)}, "
        f"p99 {_duration(plan.wait_p99)} (arrivals in batches every {BATCH * 1000:.0f} ms)",
    ]
    if plan.headroom < 0.05 * plan.target:
        lines.append(
            "  No headroom: plan a token or two more for 429s, slow responses and revoked tokens."
        )
    sliced = (
        f"{plan.simulated_tokens} of {plan.tokens} identical tokens at their share of the target"
        if plan.simulated_tokens < plan.tokens
        else f"{plan.tokens} token(s)"
    )
    lines += [
        "",
        f"Simulated on virtual time: {_duration(plan.simulated_seconds)} of the pure scheduler, "
        f"{sliced}, {plan.grants:,} leases in {plan.cpu_seconds:.2f} s of CPU "
        "(windows start full: the steady state).",
        "",
        _caveat(plan),
        "",
        *_if_wrong(),
    ]
    return "\n".join(lines)
