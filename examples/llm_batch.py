"""An LLM batch job: reserve the most a request can cost, settle what it used.

    python examples/llm_batch.py

Three keys, each limited to 120 requests and 6,000 tokens a minute (offline: MockAPI's
``LlmApi`` profile, which charges a request's *true* input + output tokens when it
admits it, as OpenAI's API does). Every request reserves its input tokens plus
``max_tokens`` (the most its answer can use), and settles from the answer's ``usage``: the
unused part goes back to the key's bucket at once. 90 prompts whose answers vary from
a handful of tokens to ``max_tokens``: no 429, and each key's tokens per minute used to
the full.
"""

from __future__ import annotations

import asyncio
import random

import aiohttp

from aurora_async import Limit, Token, TokenPool
from aurora_async.testing import LlmApi, MockAPI

KEYS = [
    "sk-example-llm-alpha-5b1e0c94",
    "sk-example-llm-bravo-0f7d21a3",
    "sk-example-llm-charlie-93c4e6b8",
]
RPM, TPM = 120, 6_000
LIMITS = [Limit(RPM, per=60), Limit(TPM, per=60, unit="tokens")]
MAX_TOKENS = 300
PROMPTS = 90


async def main() -> None:
    draw = random.Random(3)
    async with (
        MockAPI(KEYS, profile=LlmApi(rpm=RPM, tpm=TPM, max_tokens=MAX_TOKENS)) as api,
        TokenPool([Token(key, limits=LIMITS) for key in KEYS], low_water=0) as pool,
        aiohttp.ClientSession() as session,
    ):
        url = f"{api.url}/v1/chat/completions"

        async def ask(n: int) -> int:
            messages = [{"role": "user", "content": f"Summarise document {n}. " * 8}]
            reserve = LlmApi.input_tokens(messages) + MAX_TOKENS
            async with pool.lease(cost={"tokens": reserve}) as lease:
                headers = {
                    "Authorization": f"Bearer {lease.token}",
                    # MockAPI's testing hook: how long this answer really is
                    "X-Mock-Output-Tokens": str(draw.randint(5, MAX_TOKENS)),
                }
                body = {"model": "mock-1", "messages": messages, "max_tokens": MAX_TOKENS}
                async with session.post(url, json=body, headers=headers) as resp:
                    answer = await resp.json()
                    if resp.status == 429:
                        lease.rate_limited(float(resp.headers["retry-after-ms"]) / 1000)
                        return 0
                    used = answer["usage"]["total_tokens"]
                    lease.settle(tokens=used)  # give back what the answer did not use
                    return int(used)

        used = await asyncio.gather(*(ask(n) for n in range(PROMPTS)))
        for token in pool.stats().tokens:
            print(f"{token.name}: {token.units:.0f} requests, {token.usage['tokens']:,.0f} tokens")
        print(f"{sum(1 for u in used if u)} of {PROMPTS} prompts answered, {sum(used):,} tokens,")
        print(f"{api.totals.rate_limited} answered 429 (the server charged {api.totals.tokens:,})")


if __name__ == "__main__":
    asyncio.run(main())
