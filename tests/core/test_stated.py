"""``stated_limits``: the per-minute windows a server's headers size (OpenAI, Anthropic),
restated to the server's size and never above the declared one."""

from __future__ import annotations

import asyncio

import pytest

from aurora_async import Costs, Limit, Token, TokenPool
from aurora_async._core.scheduler import Scheduler
from aurora_async._core.stated import stated_limits
from aurora_async._core.vendor_headers import Family, ResourceReading
from aurora_async._pool.core import core_of
from aurora_async._pool.lease import lease_slot

RPM = Limit(500, per=60)
TPM = Limit(200_000, per=60, unit="tokens")
DECLARED = (RPM, TPM)


def says(
    resource: str, limit: float, family: Family = "openai", scope: str | None = None
) -> ResourceReading:
    return ResourceReading(resource, limit, limit / 2, 30.0, scope, family)


def test_a_window_declared_too_large_comes_down_to_the_servers_size() -> None:
    assert stated_limits(DECLARED, DECLARED, [says("tokens", 100_000)]) == (
        RPM,
        Limit(100_000, per=60, unit="tokens"),
    )
    assert stated_limits(DECLARED, DECLARED, [says("requests", 60, "anthropic")]) == (
        Limit(60, per=60),
        TPM,
    )


def test_the_declared_size_is_a_ceiling_and_a_later_statement_raises_back_to_it() -> None:
    assert stated_limits(DECLARED, DECLARED, [says("tokens", 400_000)]) is None  # above
    assert stated_limits(DECLARED, DECLARED, [says("tokens", 200_000)]) is None  # the same
    lowered = (RPM, Limit(100_000, per=60, unit="tokens"))
    assert stated_limits(DECLARED, lowered, [says("tokens", 400_000)]) == DECLARED
    assert stated_limits(DECLARED, lowered, [says("tokens", 150_000)]) == (
        RPM,
        Limit(150_000, per=60, unit="tokens"),
    )


def test_a_declared_burst_below_the_rate_stays_below_it() -> None:
    declared = (Limit(200_000, per=60, burst=50_000, unit="tokens"),)
    assert stated_limits(declared, declared, [says("tokens", 100_000)]) == (
        Limit(100_000, per=60, burst=50_000, unit="tokens"),
    )


def test_what_is_not_restated() -> None:
    # GitHub's buckets (hourly, named by scope); a reading in a scope; a stated 0; a
    # resource no per-minute window counts; two per-minute windows of it (which one?);
    # a window per hour; a window in a scope; a calendar quota.
    nothing = [
        (DECLARED, says("tokens", 100_000, "github")),
        (DECLARED, says("tokens", 100_000, scope="search")),
        (DECLARED, says("tokens", 0)),
        (DECLARED, says("input_tokens", 100_000, "anthropic")),
        ((RPM, TPM, Limit(300_000, per=60, burst=10, unit="tokens")), says("tokens", 1000)),
        ((RPM, Limit(200_000, per=3600, unit="tokens")), says("tokens", 1000)),
        ((RPM, Limit(200_000, per=60, unit="tokens", scope="m")), says("tokens", 1000)),
        ((RPM, Limit.daily(200_000, unit="tokens")), says("tokens", 1000)),
    ]
    for declared, reading in nothing:
        assert stated_limits(declared, declared, [reading]) is None, reading


def test_a_restated_window_takes_over_what_the_old_one_held() -> None:
    # 1,500 tokens reserved in a window declared 2,000 a minute; the server says 1,000:
    # the new window holds the 1,500 (in debt), so the lease's settle at 500 leaves 500
    # used, and 500 more fit, not 1,000. The requests window keeps its state as it was.
    sched = Scheduler(trial_in_flight=None)
    declared = (Limit(600, per=60), Limit(2000, per=60, unit="tokens"))
    slot = sched.add(Token("sk-secret-value-0001"), "a", declared, None, 0.0)
    reserved = Costs(1, {"tokens": 1500})
    assert sched.try_take(reserved, 0.0) is slot
    requests_window = slot.windows[0]
    restated = stated_limits(declared, declared, [says("tokens", 1000)])
    assert restated is not None
    sched.restate(slot, restated, 0.0)
    assert slot.windows[0] is requests_window
    assert (slot.windows[1].burst, slot.windows[1].level_at(0.0)) == (1000.0, 1500.0)
    sched.settle(slot, reserved, Costs(1, {"tokens": 500}), 0.0, 0.0)
    sched.release(slot)
    assert sched.try_take(Costs(1, {"tokens": 600}), 0.0) is None
    assert sched.try_take(Costs(1, {"tokens": 500}), 0.0) is slot


def test_a_restated_burst_never_goes_below_the_largest_part_leased() -> None:
    # A lease of 1,500 tokens was taken under the declared 2,000; the server says 1,000:
    # the rate comes down to 1,000 a minute, the burst only to 1,500 (else that lease
    # could never be granted again, and would wait for ever).
    assert stated_limits(DECLARED, DECLARED, [says("tokens", 100_000)], {"tokens": 150_000}) == (
        RPM,
        Limit(100_000, per=60, burst=150_000, unit="tokens"),
    )
    assert stated_limits(DECLARED, DECLARED, [says("tokens", 100_000)], {"tokens": 900_000}) == (
        RPM,
        Limit(100_000, per=60, burst=200_000, unit="tokens"),  # never above the declared
    )


LLM_KEY = [Limit(600, per=60), Limit(2000, per=60, unit="tokens")]


async def restated_after_a_lease_of_1500(pool: TokenPool) -> None:
    """Lease 1,500 tokens on ``pool``'s one token, whose answer says its window holds
    1,000 (declared 2,000)."""
    async with pool.lease(cost={"tokens": 1500}) as lease:
        slot = lease_slot(lease)
        assert slot is not None
        core_of(pool).calibration.stated(slot, [says("tokens", 1000)])


def test_a_pool_keeps_a_cost_it_took_possible_after_a_restate() -> None:
    async def main() -> tuple[str, ...]:
        pool = TokenPool([Token("sk-secret-value-0002", limits=LLM_KEY)], trial_in_flight=None)
        async with pool:
            await restated_after_a_lease_of_1500(pool)
            return pool.stats().tokens[0].limits

    assert asyncio.run(main()) == ("600/60s", "1000 tokens/60s (burst 1500)")


def test_a_part_no_window_holds_since_a_restate_is_refused_at_once() -> None:
    # The window's burst stays at 1,500 (the floor). A part of 1,800, which the declared
    # window held, fits no window now: refused at once, not left waiting for ever.
    async def main() -> None:
        pool = TokenPool([Token("sk-secret-value-0003", limits=LLM_KEY)], trial_in_flight=None)
        async with pool:
            await restated_after_a_lease_of_1500(pool)
            with pytest.raises(ValueError, match="cost of 1800 tokens exceeds the burst"):
                pool.lease(cost={"tokens": 1800})
            other = TokenPool([Token("sk-secret-value-0004", limits=LLM_KEY)])
            other.lease(cost={"tokens": 1800})  # the declared window holds it

    asyncio.run(main())
