"""``pool.request`` with ``scope=`` and a cost of several resources, against MockAPI's
``GitHubApi`` and ``LlmApi`` profiles on virtual time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aurora_async import Limit, Token, TokenPool, usage
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
    profile = GitHubApi(search=2, search_window=60.0)  # opens at the first search
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


@pytest.mark.looptime
async def test_settle_from_the_answers_usage_refunds_what_it_did_not_use(
    clock: Callable[[], Callable[[], float]],
) -> None:
    """Reserve input + max_tokens (110), settle from usage (10 input + 20 output): the
    key's 1,000 tokens a minute serve far more than 1000 / 110 = 9 requests at once."""
    key = "sk-secret-llm-000000002"
    limits = [Limit(600, per=60), Limit(1000, per=60, unit="tokens")]
    async with (
        MockAPI([key], profile=LlmApi(rpm=600, tpm=1000, max_tokens=100)) as api,
        TokenPool([Token(key, limits=limits)], base_url=api.url) as pool,
    ):
        now = clock()
        body = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}]}
        headers = {"X-Mock-Output-Tokens": "20"}
        for _ in range(30):
            resp = await pool.post(
                "/v1/chat/completions",
                json=body,
                headers=headers,
                cost={"tokens": 110},
                settle=usage.openai_response,
            )
            assert resp.status == 200
        assert now() == 0.0  # 30 x 30 tokens used: 900, all at once
        stats = pool.stats().tokens[0]
        assert stats.usage == {"tokens": 900.0, "input_tokens": 300.0, "output_tokens": 600.0}
        assert api.totals.tokens == 900
        assert api.totals.rate_limited == 0


@pytest.mark.looptime
async def test_settle_functions_may_be_sync_and_must_return_a_mapping() -> None:
    key = "sk-secret-llm-000000003"
    limits = [Limit(600, per=60), Limit(1000, per=60, unit="tokens")]
    async with (
        MockAPI([key], profile=LlmApi(rpm=600, tpm=1000, max_tokens=100)) as api,
        TokenPool([Token(key, limits=limits)], base_url=api.url) as pool,
    ):
        body = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}]}
        url = "/v1/chat/completions"
        await pool.post(url, json=body, cost={"tokens": 500}, settle=lambda r: {"tokens": 5})
        await pool.post(url, json=body, cost={"tokens": 500}, settle=lambda r: None)
        assert pool.stats().tokens[0].usage == {"tokens": 505.0}
        with pytest.raises(TypeError, match="must return a mapping of resource to units"):
            await pool.post(url, json=body, cost={"tokens": 5}, settle=lambda r: 12)
        with pytest.raises(TypeError, match=r"pool.stream's settle= takes a usage.StreamUsage"):
            async with pool.stream("POST", url, json=body, settle=usage.openai_response):
                pass
        with pytest.raises(TypeError, match="settle must be a function"):
            await pool.post(url, json=body, settle=3)


@pytest.mark.looptime
async def test_the_apis_remaining_tokens_header_raises_the_pools_count(
    clock: Callable[[], Callable[[], float]],
) -> None:
    """A request that reserved 1 token used 500: before any settle, OpenAI's
    ``x-ratelimit-remaining-tokens: 500`` (of 1,000) says so, and the next 600-token
    lease waits until 100 have drained (6 s at 1,000 a minute)."""
    key = "sk-secret-llm-000000004"
    limits = [Limit(600, per=60), Limit(1000, per=60, unit="tokens")]
    async with (
        MockAPI([key], profile=LlmApi(rpm=600, tpm=1000, max_tokens=1000)) as api,
        TokenPool([Token(key, limits=limits)], base_url=api.url) as pool,
    ):
        now = clock()
        body = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}]}
        headers = {"X-Mock-Output-Tokens": "490"}  # 10 in + 490 out
        resp = await pool.post(
            "/v1/chat/completions", json=body, headers=headers, cost={"tokens": 1}
        )
        assert resp.headers["x-ratelimit-remaining-tokens"] == "500"
        async with pool.lease(cost={"tokens": 600}):
            assert now() == pytest.approx(6.0, abs=1e-6)


@pytest.mark.looptime
async def test_a_pool_wide_settle_applies_to_plain_requests_too() -> None:
    key = "sk-secret-llm-000000005"
    limits = [Limit(600, per=60), Limit(1000, per=60, unit="tokens")]
    async with (
        MockAPI([key], profile=LlmApi(rpm=600, tpm=1000, max_tokens=100)) as api,
        TokenPool(
            [Token(key, limits=limits)], base_url=api.url, settle=lambda r: {"tokens": 7}
        ) as pool,
    ):
        await pool.get("/anything")  # no keyword arguments: still settled
        assert pool.stats().tokens[0].usage == {"tokens": 7.0}


@pytest.mark.looptime
@pytest.mark.parametrize("include_usage", [True, False])
async def test_a_stream_settles_from_the_usage_it_reported_when_its_block_ends(
    clock: Callable[[], Callable[[], float]], include_usage: bool
) -> None:
    """Reserve 500 tokens of a 1,000-a-minute key, stream, settle from the usage chunk
    (10 in + 20 out): the refund is back when the block ends, so the next 900-token
    lease goes at once. A stream that reported no usage keeps its reservation: the
    next lease waits for 400 tokens to drain (24 s)."""
    key = "sk-secret-llm-000000009"
    limits = [Limit(600, per=60), Limit(1000, per=60, unit="tokens")]
    async with (
        MockAPI([key], profile=LlmApi(rpm=600, tpm=1000, max_tokens=100)) as api,
        TokenPool([Token(key, limits=limits)], base_url=api.url) as pool,
    ):
        now = clock()
        body = {
            "model": "m",
            "messages": [{"role": "user", "content": "x" * 40}],
            "stream": True,
            "stream_options": {"include_usage": include_usage},
        }
        meter = usage.StreamUsage("openai")
        seen = b""
        async with pool.stream(
            "POST",
            "/v1/chat/completions",
            json=body,
            headers={"X-Mock-Output-Tokens": "20"},
            cost={"tokens": 500},
            settle=meter,
        ) as resp:
            assert resp.status == 200
            async for chunk in meter.chunks(resp):
                seen += chunk
            assert pool.stats().tokens[0].usage == {"tokens": 500.0}  # not settled yet
        assert seen.endswith(b"data: [DONE]\n\n")
        assert meter.done
        if include_usage:
            settled = {"tokens": 30.0, "input_tokens": 10.0, "output_tokens": 20.0}
            assert pool.stats().tokens[0].usage == settled
        else:
            assert meter.usage is None
            assert pool.stats().tokens[0].usage == {"tokens": 500.0}
        async with pool.lease(cost={"tokens": 900}):
            assert now() == (0.0 if include_usage else pytest.approx(24.0, abs=1e-6))
        assert api.totals.rate_limited == 0


@pytest.mark.looptime
async def test_a_stream_cut_short_by_an_error_settles_from_what_it_saw() -> None:
    """The block raised before the body was read: no usage was seen, so the
    reservation stands; the error is the caller's, the lease still ends."""
    key = "sk-secret-llm-000000010"
    limits = [Limit(600, per=60), Limit(1000, per=60, unit="tokens")]
    async with (
        MockAPI([key], profile=LlmApi(rpm=600, tpm=1000, max_tokens=100)) as api,
        TokenPool([Token(key, limits=limits)], base_url=api.url) as pool,
    ):
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
        meter = usage.StreamUsage("openai")
        with pytest.raises(RuntimeError, match="caller's own"):
            async with pool.stream(
                "POST", "/v1/chat/completions", json=body, cost={"tokens": 300}, settle=meter
            ):
                raise RuntimeError("the caller's own")
        stats = pool.stats().tokens[0]
        assert (stats.in_flight, stats.usage) == (0, {"tokens": 300.0})
        assert api.totals.rate_limited == 0


@pytest.mark.looptime
async def test_a_stream_whose_settle_fails_still_ends_its_lease() -> None:
    key = "sk-secret-llm-000000011"
    limits = [Limit(600, per=60), Limit(1000, per=60, unit="tokens")]
    async with (
        MockAPI([key], profile=LlmApi(rpm=600, tpm=1000, max_tokens=100)) as api,
        TokenPool([Token(key, limits=limits)], base_url=api.url) as pool,
    ):
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}

        class Broken(usage.StreamUsage):
            def end(self) -> None:
                raise RuntimeError("the meter broke")

        meter = Broken("openai")
        with pytest.raises(RuntimeError, match="the meter broke"):
            async with pool.stream(
                "POST", "/v1/chat/completions", json=body, cost={"tokens": 300}, settle=meter
            ):
                pass
        assert pool.stats().tokens[0].in_flight == 0


@pytest.mark.looptime
@pytest.mark.parametrize("calibrate", [True, False])
async def test_a_tokens_limit_declared_too_high_comes_down_to_the_servers_at_its_first_answer(
    clock: Callable[[], Callable[[], float]], calibrate: bool
) -> None:
    """Declared 2,000 tokens a minute, the key has 1,000: the first answer's headers
    (``x-ratelimit-limit-tokens: 1000``) restate the window, so the fifth call of 250
    waits 15 s for room instead of being refused. With ``calibrate=False`` the declared
    size is enforced as given, and the server refuses."""
    key = "sk-secret-llm-000000003"
    limits = [Limit(600, per=60), Limit(2000, per=60, unit="tokens")]
    async with (
        MockAPI([key], profile=LlmApi(rpm=600, tpm=1000, max_tokens=300)) as api,
        TokenPool([Token(key, limits=limits)], base_url=api.url, calibrate=calibrate) as pool,
    ):
        now = clock()
        body = {"model": "m", "messages": [{"role": "user", "content": "x" * 40}]}  # 10 in
        headers = {"X-Mock-Output-Tokens": "240"}  # 250 in all
        for n in range(5):
            resp = await pool.post(
                "/v1/chat/completions", json=body, headers=headers, cost={"tokens": 250}
            )
            assert resp.status == 200
            if calibrate:
                assert now() == (15.0 if n == 4 else 0.0)
        tokens = pool.stats().tokens[0]
        if calibrate:
            assert api.totals.rate_limited == 0
            assert (tokens.limits, tokens.declared_limits, tokens.limit_source) == (
                ("600/60s", "1000 tokens/60s"),
                ("600/60s", "2000 tokens/60s"),
                "header",
            )
        else:
            assert api.totals.rate_limited >= 1
