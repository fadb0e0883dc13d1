"""``pool.request`` with ``scope=`` and a cost of several resources, against MockAPI's
``GitHubApi`` and ``LlmApi`` profiles on virtual time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aurora_async import Limit, Token, TokenPool
from aurora_async.testing import GitHubApi, LlmApi, MockAPI

KEY = "ghp-secret-value-00000001"


@pytest.mark.looptime
async def test_a_spent_search_bucket_parks_search_only(
    clock: Callable[[], Callable[[], float]],
) -> None:
    """Declared without a limit for search: the second search's headers say the search
    bucket is spent until its window ends (60 s). That parks the search scope alone:
    core calls go on at once, the third search waits for the reset, and nothing is
    refused."""
    profile = GitHubApi(search=2, search_window=60.0, aligned=True)
    async with (
        MockAPI([KEY], profile=profile) as api,
        TokenPool([Token(KEY, limits=Limit(100, burst=100))], base_url=api.url) as pool,
    ):
        now = clock()
        for n in range(2):
            assert (await pool.get(f"/search/code?q={n}", scope="search")).status == 200
        cooling = pool.stats().tokens[0].scope_cooldowns
        assert list(cooling) == ["search"]
        assert 0 < cooling["search"] <= 61  # the reset, in whole seconds of the wall clock
        for n in range(5):
            assert (await pool.get(f"/repos/o/r/issues/{n}", scope="core")).status == 200
        assert now() == 0.0
        assert (await pool.get("/search/code?q=3", scope="search")).status == 200
        assert now() == pytest.approx(cooling["search"], abs=1e-6)
        assert api.totals.rate_limited == 0
        assert "secret" not in repr(pool.stats())


@pytest.mark.looptime
async def test_a_request_reserves_tokens_of_an_llm_key() -> None:
    key = "sk-secret-llm-000000001"
    limits = [Limit(60, per=60), Limit(1000, per=60, unit="tokens")]
    async with (
        MockAPI([key], profile=LlmApi(rpm=60, tpm=1000, max_tokens=100)) as api,
        TokenPool([Token(key, limits=limits)], base_url=api.url) as pool,
    ):
        body = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}]}
        for _ in range(4):
            resp = await pool.post("/v1/chat/completions", json=body, cost={"tokens": 250})
            assert resp.status == 200
        assert pool.stats().tokens[0].usage == {"tokens": 1000.0}
        with pytest.raises(ValueError, match="cost of 1001 tokens exceeds the burst"):
            await pool.post("/v1/chat/completions", json=body, cost={"tokens": 1001})
        assert api.totals.rate_limited == 0
