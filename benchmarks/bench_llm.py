"""Reserve, then settle: an LLM API limited in requests *and* tokens per minute.

    python benchmarks/bench_llm.py [--quick]

8 keys, each limited to 60 requests and 40,000 tokens a minute by MockAPI's ``LlmApi``
profile (token buckets of a minute's size, refilled continuously, charged the *true*
input + output tokens when a request is admitted, as OpenAI's API counts them), 64
coroutines, each answer 1 s after its request. Every request has 200 input tokens and an
estimated 600 output tokens; its true output varies 10x around that estimate
(``600 * 10**u``, ``u`` uniform in [-0.5, 0.5]: from 190 to 1,897 tokens, 742 on average,
so tokens per minute, not requests, is the binding limit). Time is the loop's virtual time
(looptime), so minutes run in seconds and the same seed gives the same run.

Each client declares the server's limits exactly: ``[Limit(60, per=60), Limit(40_000,
per=60, unit="tokens")]``. They differ in how they count tokens:

- ``reserve max_tokens + settle, pool.request``: ``pool.post(url, cost={"tokens":
  2200}, settle=usage.openai_response)``: reserve the most the request can cost (input +
  ``max_tokens``) and settle from the answer's ``usage``; ``pool.request`` also reads the
  ``x-ratelimit-remaining-tokens`` headers. The way this library recommends;
- ``reserve estimate + settle, pool.request``: the same with the estimate (800);
- ``reserve estimate + settle, lease``: a lease and plain aiohttp, ``lease.settle()`` by
  hand, no header read: what settling alone does;
- ``reserve, no settle``: lease the estimate and never correct it;
- ``count after the answer``: lease a request only and charge the tokens the answer says
  when it arrives (``settle`` from 0): what a router that counts usage after success does.

And the recommended way with the tokens limit declared 2x too high (``Limit(80_000,
per=60, unit="tokens")``, the key has 40,000): ``TPM declared 2x, headers believed`` (the
default: the first answer's ``x-ratelimit-limit-tokens`` restates the window) and ``TPM
declared 2x, calibrate=False`` (enforced as declared).

A 429 cools the token for the server's ``Retry-After`` and the coroutine moves on to its
next request (it is counted, not retried). Figures: tokens per minute the server admitted,
as a share of what the 8 buckets allow over the run (their size at the start plus the
refill), and the share of requests answered 429.

Targets: ``reserve max_tokens + settle`` at least 95% of the tokens per minute with at most
0.5% 429s. (Reserving the centre estimate instead leaves the server ahead of the pool by
the answers' overruns while they are in flight: a few 429s; its figures are printed.)
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from dataclasses import dataclass

import aiohttp
import structlog
from _common import Figure, Report, finish, on_virtual_time, quick, secrets

from aurora_async import Limit, Token, TokenPool, usage
from aurora_async.testing import LlmApi, MockAPI

KEYS, RPM, TPM = 8, 60, 40_000
COROUTINES = 64
LATENCY = 1.0  # seconds from request to answer
INPUT_CHARS = 800  # 200 input tokens (4 characters a token)
OUTPUT_ESTIMATE = 600
MAX_TOKENS = 2_000
SPREAD = 10.0  # the true output varies this many times around the estimate
PROMPT = [{"role": "user", "content": "x" * INPUT_CHARS}]
INPUT = LlmApi.input_tokens(PROMPT)
ESTIMATE = INPUT + OUTPUT_ESTIMATE


@dataclass
class Outcome:
    strategy: str
    seconds: float
    tokens: int  # admitted by the server
    requests: int
    rate_limited: int

    @property
    def utilization(self) -> float:
        return self.tokens / (KEYS * (TPM + TPM / 60 * self.seconds))

    @property
    def refused(self) -> float:
        return self.rate_limited / self.requests if self.requests else 0.0


MAIN = "reserve max_tokens + settle, pool.request"
#: name -> (tokens reserved, settled from usage, through pool.request (else a lease and
#: plain aiohttp: no rate-limit header is read, as in the designs users report), the
#: tokens per minute declared, calibrate).
STRATEGIES = {
    MAIN: (INPUT + MAX_TOKENS, True, True, TPM, True),
    "reserve estimate + settle, pool.request": (ESTIMATE, True, True, TPM, True),
    "reserve estimate + settle, lease": (ESTIMATE, True, False, TPM, True),
    "reserve, no settle": (ESTIMATE, False, False, TPM, True),
    "count after the answer": (0, True, False, TPM, True),
    "TPM declared 2x, headers believed": (INPUT + MAX_TOKENS, True, True, 2 * TPM, True),
    "TPM declared 2x, calibrate=False": (INPUT + MAX_TOKENS, True, True, 2 * TPM, False),
}


async def run_strategy(name: str, seconds: float, seed: int = 7) -> Outcome:
    reserve, settles, via_request, declared, calibrate = STRATEGIES[name]
    limits = [Limit(RPM, per=60), Limit(declared, per=60, unit="tokens")]
    keys = secrets(KEYS, "sk-llm")
    profile = LlmApi(rpm=RPM, tpm=TPM, max_tokens=MAX_TOKENS)
    draw = random.Random(seed)
    async with (
        MockAPI(keys, profile=profile, latency=LATENCY) as api,
        aiohttp.ClientSession() as session,
        TokenPool(
            [Token(key, limits=limits) for key in keys],
            trial_in_flight=None,
            calibrate=calibrate,
            low_water=0,
            session=session,
        ) as pool,
    ):
        loop = asyncio.get_running_loop()
        stop = loop.time() + seconds
        url = f"{api.url}/v1/chat/completions"
        body = {"model": "mock-1", "messages": PROMPT, "max_tokens": MAX_TOKENS}

        async def one() -> None:
            output = min(MAX_TOKENS, round(OUTPUT_ESTIMATE * SPREAD ** draw.uniform(-0.5, 0.5)))
            cost = {"tokens": reserve} if reserve else 1
            if via_request:
                await pool.post(
                    url,
                    json=body,
                    headers={"X-Mock-Output-Tokens": str(output)},
                    cost=cost,
                    settle=usage.openai_response if settles else None,
                    max_attempts=1,
                )
                return
            async with pool.lease(cost=cost) as lease:
                headers = {
                    "Authorization": f"Bearer {lease.token}",
                    "X-Mock-Output-Tokens": str(output),
                }
                async with session.post(url, json=body, headers=headers) as resp:
                    answer = await resp.json()
                    if resp.status == 429:
                        lease.rate_limited(float(resp.headers["retry-after-ms"]) / 1000)
                    elif settles:
                        lease.settle(tokens=answer["usage"]["total_tokens"])

        async def worker() -> None:
            while True:
                await one()

        workers = [asyncio.create_task(worker()) for _ in range(COROUTINES)]
        await asyncio.sleep(stop - loop.time())
        totals = api.totals  # what the server admitted in the run's `seconds`
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        return Outcome(name, seconds, totals.tokens, totals.requests, totals.rate_limited)


def run(seconds: float) -> Report:
    report = Report("llm")
    outcomes = [on_virtual_time(run_strategy(name, seconds)) for name in STRATEGIES]
    for outcome in outcomes:
        main = outcome.strategy == MAIN
        detail = (
            f"{outcome.tokens:,} tokens, {outcome.requests:,} requests, "
            f"{outcome.rate_limited:,} answered 429"
        )
        report.add(
            Figure(
                f"{outcome.strategy}: tokens per minute / allowed",
                outcome.utilization * 100,
                "%",
                ">= 95%" if main else "",
                outcome.utilization >= 0.95 if main else None,
                detail,
            )
        )
        report.add(
            Figure(
                f"{outcome.strategy}: 429s / requests",
                outcome.refused * 100,
                "%",
                "<= 0.5%" if main else "",
                outcome.refused <= 0.005 if main else None,
            )
        )
    report.notes.append(
        f"{KEYS} keys at {RPM} RPM / {TPM:,} TPM (LlmApi, true tokens charged at admission), "
        f"{COROUTINES} coroutines, answers {LATENCY:g} s after the request, {INPUT} input + "
        f"~{OUTPUT_ESTIMATE} output tokens estimated, true output x{SPREAD:g} spread; "
        f"{seconds:g} virtual seconds per strategy."
    )
    return report


def main() -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    return finish(run(300.0 if quick() else 900.0))


if __name__ == "__main__":
    sys.exit(main())
