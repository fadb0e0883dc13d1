"""``LlmApi``: requests and tokens per minute per key, as OpenAI limits them. Exact
decisions on explicit times, then the server on virtual time with real aiohttp clients:
the tokens it admits, its headers read back by ``parse_vendor``, its streams read back by
``StreamUsage``, its quota refusals read back by ``classify``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from aurora_async._core.quota import QuotaExhausted, classify
from aurora_async._core.vendor_headers import ResourceReading, parse_vendor
from aurora_async.testing import LlmApi, MockTokenStats
from aurora_async.testing._llm import CHAT_PATH, OUTPUT_HEADER, go_duration
from aurora_async.testing._profile import Call, Decision, Enforcer, ServerOptions, enforcer
from aurora_async.usage import StreamUsage

from .support import OTHER, TOKEN, WALL, call, now, serve


def state(profile: LlmApi) -> Enforcer:
    return enforcer(profile, ServerOptions())


def request(
    chars: int = 400,
    output: int | None = 200,
    *,
    max_tokens: int | None = 1000,
    stream: bool = False,
    include_usage: bool = True,
    body: bytes | None = None,
    path: str = CHAT_PATH,
    method: str = "POST",
) -> Call:
    """A chat request of ``chars`` characters of input (``chars / 4`` tokens)."""
    document: dict[str, Any] = {
        "model": "gpt-mock",
        "messages": [{"role": "user", "content": "x" * chars}],
        "stream": stream,
    }
    if max_tokens is not None:
        document["max_tokens"] = max_tokens
    if include_usage and stream:
        document["stream_options"] = {"include_usage": True}
    headers = {} if output is None else {OUTPUT_HEADER: str(output)}
    raw = json.dumps(document).encode() if body is None else body
    return Call(method, path, headers, raw)


def openai_headers(
    rpm: int, tpm: int, requests: int, tokens: int, reset_requests: str, reset_tokens: str
) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": str(rpm),
        "x-ratelimit-limit-tokens": str(tpm),
        "x-ratelimit-remaining-requests": str(requests),
        "x-ratelimit-remaining-tokens": str(tokens),
        "x-ratelimit-reset-requests": reset_requests,
        "x-ratelimit-reset-tokens": reset_tokens,
    }


# --- decisions on explicit times ----------------------------------------------------------


def test_an_admitted_request_is_charged_its_true_total_with_openai_headers() -> None:
    limiter = state(LlmApi(rpm=60, tpm=6000))
    decision = limiter.decide_call(request(chars=400, output=200), 0.0, WALL)
    assert decision.admitted
    assert decision.tokens == 300  # 100 input tokens + 200 output tokens
    assert decision.headers == openai_headers(60, 6000, 59, 5700, "1s", "3s")
    assert decision.body is not None
    assert decision.body["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 200,
        "total_tokens": 300,
    }
    choice = decision.body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "tok " * 200}
    assert choice["finish_reason"] == "stop"
    assert (decision.body["object"], decision.body["created"]) == ("chat.completion", int(WALL))
    # Half a second later 50 tokens and half a request have come back.
    later = limiter.decide_call(request(chars=4, output=9), 0.5, WALL)
    assert later.headers == openai_headers(60, 6000, 58, 5740, "1.5s", "2.6s")


def test_the_bucket_refuses_what_does_not_fit_and_says_when_it_will() -> None:
    limiter = state(LlmApi(rpm=600, tpm=600))  # 10 tokens a second
    assert limiter.decide_call(request(chars=400, output=400), 0.0, WALL).admitted  # 500
    refused = limiter.decide_call(request(chars=40, output=100), 0.0, WALL)  # 110 > 100
    assert refused == Decision(
        False,
        429,
        {
            **openai_headers(600, 600, 599, 100, "100ms", "50s"),
            "retry-after": "1",
            "retry-after-ms": "1000",
        },
        body={
            "error": {
                "message": "Rate limit reached for gpt-mock in organization org-mock on tokens "
                "per min (TPM): Limit 600, Used 500, Requested 110. Please try again in 1s.",
                "type": "tokens",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
    )
    assert not limiter.decide_call(request(chars=40, output=100), 0.999, WALL).admitted
    fits = limiter.decide_call(request(chars=40, output=100), 1.0, WALL)
    assert fits.admitted
    assert fits.headers["x-ratelimit-remaining-tokens"] == "0"


def test_requests_per_minute() -> None:
    limiter = state(LlmApi(rpm=2, tpm=10**6))  # a request every 30 seconds
    assert [limiter.decide_call(request(), 0.0, WALL).admitted for _ in range(3)] == [
        True,
        True,
        False,
    ]
    refused = limiter.decide_call(request(), 10.0, WALL)
    assert refused.body is not None
    assert refused.body["error"]["type"] == "requests"
    assert "on requests per min (RPM): Limit 2, Used 2, Requested 1" in str(refused.body)
    assert (refused.headers["retry-after"], refused.headers["retry-after-ms"]) == ("20", "20000")
    assert limiter.decide_call(request(), 30.0, WALL).admitted


def test_a_request_bigger_than_the_limit_never_fits() -> None:
    limiter = state(LlmApi(rpm=60, tpm=1000))
    refused = limiter.decide_call(request(chars=400, output=950), 0.0, WALL)
    assert (refused.admitted, refused.status) == (False, 429)
    assert refused.body is not None
    assert refused.body["error"]["message"].startswith(
        "Request too large for gpt-mock in organization org-mock on tokens per min (TPM): "
        "Limit 1000, Requested 1050."
    )
    assert "retry-after" not in refused.headers
    assert refused.headers["x-ratelimit-remaining-tokens"] == "1000"  # nothing charged


def test_charging_max_tokens_as_openai_admission_estimates() -> None:
    limiter = state(LlmApi(rpm=60, tpm=6000, charge="max_tokens"))
    decision = limiter.decide_call(request(chars=400, output=200, max_tokens=700), 0.0, WALL)
    assert decision.tokens == 800
    assert decision.body is not None
    assert decision.body["usage"]["total_tokens"] == 300  # the usage is still the true one


def test_output_is_capped_at_max_tokens_and_finishes_with_length() -> None:
    limiter = state(LlmApi(rpm=60, tpm=10**6))
    decision = limiter.decide_call(request(chars=4, output=5000, max_tokens=64), 0.0, WALL)
    assert decision.body is not None
    assert decision.body["usage"]["completion_tokens"] == 64
    assert decision.body["choices"][0]["finish_reason"] == "length"


def test_drawn_outputs_are_seeded_and_within_the_shares() -> None:
    profile = LlmApi(rpm=10**6, tpm=10**9, output=(0.5, 0.75), max_tokens=100, seed=7)

    def outputs(limiter: Enforcer) -> list[int]:
        sizes = []
        for _ in range(200):
            decision = limiter.decide_call(request(chars=4, output=None, max_tokens=None), 0, WALL)
            assert decision.body is not None
            sizes.append(decision.body["usage"]["completion_tokens"])
        return sizes

    first = outputs(state(profile))
    assert first == outputs(state(profile))
    assert (min(first), max(first)) == (50, 75)
    assert len(set(first)) > 10
    assert first != outputs(state(LlmApi(rpm=10**6, tpm=10**9, output=(0.5, 0.75), seed=8)))


def test_input_tokens_are_characters_over_four_rounded_up() -> None:
    messages = [
        {"role": "system", "content": "abcde"},  # 5
        {"role": "user", "content": [{"type": "text", "text": "xyz"}, {"type": "image_url"}]},
        {"role": "assistant", "content": None},
    ]
    assert LlmApi.input_tokens(messages) == 2  # ceil(8 / 4)
    assert LlmApi.input_tokens([]) == 0


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (json.dumps({"messages": []}).encode(), "messages"),
        (json.dumps({"messages": ["hi"]}).encode(), "messages"),
        (json.dumps({"messages": [{}], "max_tokens": 0}).encode(), "max_tokens"),
        (json.dumps({"messages": [{}], "max_tokens": True}).encode(), "max_tokens"),
        (json.dumps({"messages": [{}], "stream": "yes"}).encode(), "stream"),
        (json.dumps({"messages": [{}], "model": ""}).encode(), "model"),
    ],
)
def test_unreadable_requests_are_bad_requests_and_charge_nothing(
    raw: bytes, param: str | None
) -> None:
    limiter = state(LlmApi(rpm=60, tpm=6000))
    decision = limiter.decide_call(request(body=raw), 0.0, WALL)
    assert (decision.admitted, decision.status, decision.bad_request) == (False, 400, True)
    assert decision.body is not None
    assert decision.body["error"]["type"] == "invalid_request_error"
    assert decision.body["error"]["param"] == param
    assert decision.headers == openai_headers(60, 6000, 60, 6000, "0s", "0s")
    too_big = limiter.decide_call(Call("POST", CHAT_PATH, {}, None), 0.0, WALL)
    assert too_big.bad_request
    bad_hook = limiter.decide_call(Call("POST", CHAT_PATH, {OUTPUT_HEADER: "-3"}, raw), 0, WALL)
    assert bad_hook.bad_request


def test_other_paths_cost_one_request_and_no_tokens() -> None:
    limiter = state(LlmApi(rpm=60, tpm=6000))
    decision = limiter.decide_call(request(path="/v1/models", method="GET"), 0.0, WALL)
    assert decision == Decision(True, headers=openai_headers(60, 6000, 59, 6000, "1s", "0s"))
    assert limiter.decide(1.0, WALL) == Decision(
        True, headers=openai_headers(60, 6000, 59, 6000, "1s", "0s")
    )


def test_the_quota_answers_insufficient_quota_until_its_window_ends() -> None:
    limiter = state(LlmApi(rpm=600, tpm=10**6, quota_tokens=1000, quota_window=3600))
    assert limiter.decide_call(request(chars=400, output=800), 0.0, WALL).admitted  # 900
    assert limiter.decide_call(request(chars=400, output=800), 1.0, WALL).admitted  # 1800
    spent = limiter.decide_call(request(chars=4, output=1), 2.0, WALL)
    assert (spent.admitted, spent.status, spent.tokens) == (False, 429, 0)
    assert spent.body == {
        "error": {
            "message": "You exceeded your current quota, please check your plan and billing "
            "details.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    assert "retry-after" not in spent.headers
    assert not limiter.decide_call(request(chars=4, output=1), 3599.0, WALL).admitted
    assert limiter.decide_call(request(chars=4, output=1), 3600.0, WALL).admitted


def test_exhausted_by_another_client() -> None:
    limiter = state(LlmApi(rpm=60, tpm=6000))
    refused = limiter.exhausted(10.0, 12.5, WALL)
    assert (refused.admitted, refused.status) == (False, 429)
    assert refused.headers == {
        **openai_headers(60, 6000, 0, 0, "2.5s", "2.5s"),
        "retry-after": "3",
        "retry-after-ms": "2500",
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (1e-12, "0s"),
        (0.0001, "1ms"),
        (0.02, "20ms"),
        (0.999, "999ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.999, "59.999s"),
        (60, "1m0s"),
        (360, "6m0s"),
        (3723.5, "1h2m3.5s"),
        (86400, "24h0m0s"),
    ],
)
def test_reset_durations_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_profile_validation() -> None:
    with pytest.raises(ValueError, match="rpm must be at least 1"):
        LlmApi(rpm=0, tpm=1)
    with pytest.raises(ValueError, match="output must be shares"):
        LlmApi(rpm=1, tpm=1, output=(0.0, 1.0))
    with pytest.raises(ValueError, match="charge must be one of"):
        LlmApi(rpm=1, tpm=1, charge="later")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stream_interval"):
        LlmApi(rpm=1, tpm=1, stream_interval=-1)
    with pytest.raises(TypeError, match="quota_tokens must be an int"):
        LlmApi(rpm=1, tpm=1, quota_tokens=1.5)  # type: ignore[arg-type]


# --- the server, on virtual time ----------------------------------------------------------


async def chat(
    session: aiohttp.ClientSession,
    *,
    token: str = TOKEN,
    chars: int = 400,
    output: int | None = 100,
    stream: bool = False,
    include_usage: bool = True,
) -> tuple[int, Any, Any]:
    """One chat completion: status, headers and the JSON body (or the raw stream)."""
    payload: dict[str, Any] = {
        "model": "gpt-mock",
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": "x" * chars}],
        "stream": stream,
    }
    if stream and include_usage:
        payload["stream_options"] = {"include_usage": True}
    headers = {"Authorization": f"Bearer {token}"}
    if output is not None:
        headers[OUTPUT_HEADER] = str(output)
    async with session.post(CHAT_PATH, json=payload, headers=headers) as resp:
        if resp.content_type == "text/event-stream":
            counter = StreamUsage("openai")
            async for chunk in resp.content.iter_any():
                counter.feed(chunk)
            counter.end()
            return resp.status, resp.headers, counter
        return resp.status, resp.headers, await resp.json()


@pytest.mark.looptime
async def test_the_server_admits_exactly_the_tokens_per_minute_it_promises() -> None:
    # 6,000 tokens a minute is 100 a second; each request costs 200 (100 in, 100 out), one
    # a second for two minutes. The full bucket lasts until t=58 (6000 - 100 t >= 200),
    # then every other second fits: 59 + 30 admitted, 17,800 tokens = 6,000 + 100 * 118.
    async with serve({TOKEN: LlmApi(rpm=1000, tpm=6000)}) as (api, session):
        start = now()
        statuses = []
        for second in range(120):
            await asyncio.sleep(start + second - now())
            status, _, _ = await chat(session, chars=400, output=100)
            statuses.append(status)
        admitted = [second for second, status in enumerate(statuses) if status == 200]
        assert admitted == [*range(59), *range(60, 120, 2)]
        assert set(statuses) == {200, 429}
        assert api.stats(TOKEN) == MockTokenStats(
            requests=120, ok=89, rate_limited=31, tokens=17_800
        )
        # The most any minute took: the full bucket and what refilled while it drained,
        # never more than 6,000 plus a minute's refill.
        times = [round(t - start, 6) for t in api.admitted_times(TOKEN)]
        busiest = max(sum(1 for t in times if b <= t < b + 60) for b in range(61))
        assert busiest * 200 == 11_800 <= 6000 + 6000


@pytest.mark.looptime
async def test_the_headers_read_back_to_the_servers_true_state() -> None:
    async with serve({TOKEN: LlmApi(rpm=120, tpm=12_000)}) as (_, session):
        start = now()
        readings = []
        for delay, output in ((0.0, 900), (0.25, 1000), (3.0, 0), (7.5, 999)):
            await asyncio.sleep(start + delay - now())
            status, headers, _ = await chat(session, chars=400, output=output)
            assert status == 200
            readings.append(parse_vendor(headers, wall_now=0.0))
        # 120 RPM refills 2 requests a second, 12,000 TPM 200 tokens a second; each
        # request has 100 input tokens. Remaining is what is left after it, rounded down;
        # the reset is the time until the bucket is full again.
        assert readings == [
            (  # t=0: 1,000 tokens
                ResourceReading("requests", 120, 119, 0.5, None, "openai"),
                ResourceReading("tokens", 12_000, 11_000, 5.0, None, "openai"),
            ),
            (  # t=0.25: 0.5 request and 50 tokens back, 1,100 tokens taken
                ResourceReading("requests", 120, 118, 0.75, None, "openai"),
                ResourceReading("tokens", 12_000, 9_950, 10.25, None, "openai"),
            ),
            (  # t=3: requests full again; 9,950 + 550 - 100 tokens
                ResourceReading("requests", 120, 119, 0.5, None, "openai"),
                ResourceReading("tokens", 12_000, 10_400, 8.0, None, "openai"),
            ),
            (  # t=7.5: 10,400 + 900 - 1,099 tokens
                ResourceReading("requests", 120, 119, 0.5, None, "openai"),
                ResourceReading("tokens", 12_000, 10_201, 8.995, None, "openai"),
            ),
        ]


@pytest.mark.looptime
async def test_a_streamed_answer_reads_back_to_its_true_usage() -> None:
    profile = LlmApi(rpm=60, tpm=100_000, stream_chunks=5, stream_interval=0.25)
    async with serve({TOKEN: profile}) as (api, session):
        start = now()
        status, headers, counter = await chat(session, chars=1000, output=333, stream=True)
        # A role chunk, 5 content chunks, the finish, the usage and [DONE]: 9 writes.
        assert round(now() - start, 6) == 8 * 0.25
        assert status == 200
        assert headers["Content-Type"] == "text/event-stream"
        assert headers["x-ratelimit-remaining-tokens"] == str(100_000 - 583)
        assert (counter.usage, counter.done) == (
            {"tokens": 583, "input_tokens": 250, "output_tokens": 333},
            True,
        )
        _, _, without = await chat(session, output=10, stream=True, include_usage=False)
        assert (without.usage, without.done) == (None, True)
        assert api.stats(TOKEN).tokens == 583 + 110


@pytest.mark.looptime
async def test_stream_text_is_the_output_tokens() -> None:
    async with serve({TOKEN: LlmApi(rpm=60, tpm=100_000, stream_chunks=3)}) as (_, session):
        headers = {"Authorization": f"Bearer {TOKEN}", OUTPUT_HEADER: "7"}
        payload = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
        async with session.post(CHAT_PATH, json=payload, headers=headers) as resp:
            raw = await resp.read()
        events = [line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(event) for event in events[:-1]]
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        assert text == "tok " * 7
        assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 4 + ["stop"]
        assert all("usage" not in chunk for chunk in chunks)


@pytest.mark.looptime
async def test_quota_and_rate_limit_refusals_read_back_through_classify() -> None:
    profile = LlmApi(rpm=60, tpm=1000, quota_tokens=1500)
    async with serve({TOKEN: profile, OTHER: LlmApi(rpm=60, tpm=1000)}) as (api, session):
        assert (await chat(session, output=900))[0] == 200  # 1,000 tokens
        status, headers, body = await chat(session, output=100)  # 200 more do not fit
        assert status == 429
        wall = 1_700_000_000.0
        assert classify(status, headers, json.dumps(body), wall) is None  # a short limit
        await asyncio.sleep(60)
        assert (await chat(session, output=900))[0] == 200  # 2,000 spent: over the quota
        status, headers, body = await chat(session, output=0)
        assert (status, body["error"]["code"]) == (429, "insufficient_quota")
        found = classify(status, headers, json.dumps(body).encode(), wall)
        assert found == QuotaExhausted(
            None, "openai insufficient_quota: spent credit, no reset stated"
        )
        assert api.stats(TOKEN) == MockTokenStats(requests=4, ok=2, rate_limited=2, tokens=2000)
        assert (await chat(session, token=OTHER))[0] == 200  # the other key is its own


@pytest.mark.looptime
async def test_bad_requests_other_paths_and_exhaust_through_the_server() -> None:
    async with serve({TOKEN: LlmApi(rpm=60, tpm=6000)}) as (api, session):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.post(CHAT_PATH, data=b"{oops", headers=headers) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["type"] == "invalid_request_error"
        reply = await call(session, "/whoami")
        assert (reply.status, reply.headers["x-ratelimit-remaining-requests"]) == (200, "59")
        api.exhaust(TOKEN, 30)
        status, headers_, _ = await chat(session)
        assert (status, headers_["retry-after"], headers_["x-ratelimit-reset-tokens"]) == (
            429,
            "30",
            "30s",
        )
        assert api.stats(TOKEN) == MockTokenStats(requests=3, ok=1, rate_limited=1, bad_requests=1)


@pytest.mark.looptime
async def test_no_answer_shows_the_key() -> None:
    async with serve({TOKEN: LlmApi(rpm=1, tpm=1000, quota_tokens=10)}) as (api, session):
        seen = []
        for output in (5, 5, 5):  # served, then over the quota
            status, headers, body = await chat(session, output=output)
            seen += [json.dumps(body), *headers.values()]
        _, headers, counter = await chat(session, stream=True)
        seen += [repr(counter), *headers.values(), repr(api), str(api.all_stats())]
        assert status == 429
        haystack = "\n".join(seen)
        assert TOKEN not in haystack
        assert TOKEN[4:-4] not in haystack


def test_a_daily_quota_answers_openais_per_day_limit_with_its_reset() -> None:
    limiter = state(
        LlmApi(rpm=600, tpm=10**6, quota_tokens=1000, quota_window=7200, quota_kind="daily")
    )
    assert limiter.decide_call(request(chars=400, output=800), 0.0, WALL).admitted  # 900
    assert limiter.decide_call(request(chars=400, output=800), 1.0, WALL).admitted  # 1800
    spent = limiter.decide_call(request(chars=4, output=1), 1.5, WALL)
    assert (spent.admitted, spent.status, spent.tokens) == (False, 429, 0)
    assert spent.body == {
        "error": {
            "message": "Rate limit reached for gpt-mock in organization org-mock on tokens per "
            "day (TPD): Limit 1000, Used 1800, Requested 2. Please try again in 1h59m58.5s.",
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert (spent.headers["retry-after"], spent.headers["retry-after-ms"]) == ("7199", "7198500")
    found = classify(429, spent.headers, json.dumps(spent.body), WALL)
    assert found == QuotaExhausted(WALL + 7198.5, "openai daily tokens limit reached", "tokens")
    assert not limiter.decide_call(request(chars=4, output=1), 7199.0, WALL).admitted
    assert limiter.decide_call(request(chars=4, output=1), 7200.0, WALL).admitted


def test_quota_kind_is_checked() -> None:
    with pytest.raises(ValueError, match="quota_kind"):
        LlmApi(rpm=1, tpm=1, quota_kind="weekly")  # type: ignore[arg-type]
