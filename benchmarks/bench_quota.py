"""Quotas that run out mid-run: what each refusal costs after a key's quota is spent.

    python benchmarks/bench_quota.py [--quick]

4 keys at 30 requests and 40,000 tokens a minute (MockAPI's ``LlmApi``, limits declared
exactly), 32 coroutines calling ``pool.post`` (or a lease and plain aiohttp), each
request about 1,000 tokens. One key has a quota of 50,000 tokens (about 50 requests):
it runs out in the first minutes and does not come back within the run (its window is a
day). Virtual time (looptime): hours run in seconds. Figures: the requests the spent key
sent after its first refusal (the target: **at most 1** more until the reset, i.e. only
the refusal itself, counted as 1), and the share of requests the others served.

- ``daily limit (TPD), pool.request``: the server answers OpenAI's per-day limit with its
  reset ("try again in 23h..."): the pool parks the key until then;
- ``spent credit, daily quota declared, pool.request``: OpenAI's ``insufficient_quota``
  names no reset; the key declares ``Limit.daily(...)`` of tokens (its count too high,
  as after a plan change): the pool parks the key until that quota's reset;
- ``spent credit, nothing declared, pool.request``: no reset anywhere: the pool parks
  the key for ``quota.DEFAULT_PARK`` (an hour) and probes once an hour (by design:
  credit can be topped up at any time);
- ``baseline: 429 reported as a rate limit``: a lease and plain aiohttp, the refusal
  reported with ``lease.rate_limited(retry_after)``, as a client that does not read the
  body would: the key is tried again after every cooldown.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass

import aiohttp
import structlog
from _common import Figure, Report, finish, on_virtual_time, quick, secrets

from aurora_async import Limit, Token, TokenPool
from aurora_async.testing import LlmApi, MockAPI

KEYS, RPM, TPM = 4, 30, 40_000
COROUTINES = 32
LATENCY = 0.5
QUOTA = 50_000
PROMPT = [{"role": "user", "content": "x" * 800}]  # 200 input tokens
OUTPUT = "800"  # and 800 out
LIMITS = [Limit(RPM, per=60), Limit(TPM, per=60, unit="tokens")]


STRATEGIES = {
    # name -> (the server's refusal, the spent key declares a daily quota, via pool.request)
    "daily limit (TPD), pool.request": ("daily", False, True),
    "spent credit, daily quota declared, pool.request": ("credit", True, True),
    "spent credit, nothing declared, pool.request": ("credit", False, True),
    "baseline: 429 reported as a rate limit": ("credit", False, False),
}


@dataclass
class Outcome:
    strategy: str
    refusals: int  # answers to the spent key after its quota ran out
    others_ok: int
    others_refused: int


async def run_strategy(name: str, seconds: float) -> Outcome:
    kind, declared, via_request = STRATEGIES[name]
    keys = secrets(KEYS, "sk-quota")
    spent = LlmApi(rpm=RPM, tpm=TPM, max_tokens=2000, quota_tokens=QUOTA, quota_kind=kind)
    fine = LlmApi(rpm=RPM, tpm=TPM, max_tokens=2000)
    profiles = {keys[0]: spent, **dict.fromkeys(keys[1:], fine)}
    own = [*LIMITS, Limit.daily(10**9, unit="tokens")] if declared else LIMITS
    tokens = [Token(keys[0], limits=own), *(Token(key, limits=LIMITS) for key in keys[1:])]
    async with (
        MockAPI(profiles, latency=LATENCY) as api,
        aiohttp.ClientSession() as session,
        TokenPool(tokens, trial_in_flight=None, low_water=0, session=session) as pool,
    ):
        url = f"{api.url}/v1/chat/completions"
        body = {"model": "mock-1", "messages": PROMPT, "max_tokens": 2000}
        headers = {"X-Mock-Output-Tokens": OUTPUT}

        async def one() -> None:
            if via_request:
                await pool.post(url, json=body, headers=headers, max_attempts=2)
                return
            async with pool.lease() as lease:
                sent = {**headers, "Authorization": f"Bearer {lease.token}"}
                async with session.post(url, json=body, headers=sent) as resp:
                    await resp.read()
                    if resp.status == 429:
                        after = resp.headers.get("retry-after")
                        lease.rate_limited(None if after is None else float(after))

        async def worker() -> None:
            while True:
                await one()

        workers = [asyncio.create_task(worker()) for _ in range(COROUTINES)]
        await asyncio.sleep(seconds)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        first = api.stats(keys[0])
        others = [api.stats(key) for key in keys[1:]]
        return Outcome(
            name,
            first.rate_limited,
            sum(s.ok for s in others),
            sum(s.rate_limited for s in others),
        )


def run(seconds: float) -> Report:
    report = Report("quota")
    for name in STRATEGIES:
        outcome = on_virtual_time(run_strategy(name, seconds))
        baseline = name.startswith("baseline") or "nothing declared" in name  # no reset known
        report.add(
            Figure(
                f"{name}: requests to the spent key after its quota ran out",
                outcome.refusals,
                "",
                "" if baseline else "<= 1",
                None if baseline else outcome.refusals <= 1,
                f"the other keys: {outcome.others_ok:,} served, {outcome.others_refused} refused",
            )
        )
    report.notes.append(
        f"{KEYS} keys at {RPM} RPM / {TPM:,} TPM, one with a {QUOTA:,}-token quota (a day's "
        f"window), {COROUTINES} coroutines, ~1,000 tokens a request; {seconds / 3600:g} "
        "virtual hours per strategy. 'nothing declared' probes the key once an hour by "
        "design (spent credit names no reset and may be topped up): its figure is the "
        "number of hours, not a miss of the target, which is for quotas with a reset."
    )
    return report


def main() -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    return finish(run(3 * 3600.0 if quick() else 6 * 3600.0))


if __name__ == "__main__":
    sys.exit(main())
