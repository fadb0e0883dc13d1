"""Quota exhausted or short rate limit: the big APIs' refusals as they are sent, exact
resets, and nothing raised or leaked for whatever a server sends."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aurora_async._core.quota import (
    DEFAULT_PARK,
    LONG_RESET,
    MAX_BODY,
    QuotaExhausted,
    classify,
)

NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT = 14:13:20 in Los Angeles (PST)
NEXT_PACIFIC_MIDNIGHT = 1_700_035_200.0  # Wed, 15 Nov 2023 08:00:00 GMT
SECRET = "sk-proj-SECRETVALUE0123"


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


# --- OpenAI -----------------------------------------------------------------------------

INSUFFICIENT_QUOTA = {
    "error": {
        "message": "You exceeded your current quota, please check your plan and billing "
        "details. For more information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}


def openai_limit(message: str, kind: str = "tokens") -> bytes:
    return body(
        {"error": {"message": message, "type": kind, "param": None, "code": "rate_limit_exceeded"}}
    )


def test_openai_insufficient_quota_parks_without_a_reset() -> None:
    found = classify(429, {}, body(INSUFFICIENT_QUOTA), NOW)
    assert found == QuotaExhausted(None, "openai insufficient_quota: spent credit, no reset stated")
    assert found.parked_until(NOW) == NOW + DEFAULT_PARK == NOW + 3600
    assert found.parked_until(NOW, default=60) == NOW + 60


def test_openai_insufficient_quota_as_text_and_type_only() -> None:
    shape = {"error": {"type": "insufficient_quota", "code": None, "message": "x"}}
    assert classify(429, {}, json.dumps(shape), NOW) is not None
    assert classify(400, {}, body(INSUFFICIENT_QUOTA), NOW) is None  # OpenAI answers 429


def test_openai_per_minute_limit_is_a_short_rate_limit() -> None:
    message = (
        "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): "
        "Limit 30000, Used 29000, Requested 1500. Please try again in 1.2s."
    )
    headers = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1.2s"}
    assert classify(429, headers, openai_limit(message), NOW) is None


def test_openai_requests_per_day_resets_when_the_message_says() -> None:
    message = (
        "Rate limit reached for gpt-3.5-turbo in organization org-abc on requests per day "
        "(RPD): Limit 200, Used 200, Requested 1. Please try again in 7m12s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more."
    )
    found = classify(429, {}, openai_limit(message, "requests"), NOW)
    assert found == QuotaExhausted(NOW + 432, "openai daily requests limit reached", "requests")


def test_openai_tokens_per_day_falls_back_on_the_header_then_on_nothing() -> None:
    message = "Rate limit reached for o1 in organization org-abc on tokens per day (TPD)."
    headers = {"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "2h0m0s"}
    found = classify(429, headers, openai_limit(message), NOW)
    assert found == QuotaExhausted(NOW + 7200, "openai daily tokens limit reached", "tokens")
    assert classify(429, {}, openai_limit(message), NOW) == QuotaExhausted(
        None, "openai daily tokens limit reached", "tokens"
    )


# --- Anthropic --------------------------------------------------------------------------


def anthropic_error(kind: str, message: str) -> bytes:
    return body({"type": "error", "error": {"type": kind, "message": message}})


def test_anthropic_usage_limit_resets_at_the_stated_time() -> None:
    answer = anthropic_error(
        "invalid_request_error",
        "You have reached your specified API usage limits. "
        "You will regain access on 2026-04-01 at 00:00 UTC.",
    )
    found = classify(400, {}, answer, NOW)
    assert found == QuotaExhausted(1_775_001_600.0, "anthropic usage limit reached")


def test_anthropic_usage_limit_with_an_impossible_date_parks_without_a_reset() -> None:
    answer = anthropic_error(
        "invalid_request_error",
        "You have reached your specified API usage limits. "
        "You will regain access on 2026-13-45 at 00:00 UTC.",
    )
    assert classify(400, {}, answer, NOW) == QuotaExhausted(None, "anthropic usage limit reached")


def test_anthropic_low_credit_balance_parks_without_a_reset() -> None:
    answer = anthropic_error(
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
        "Billing to upgrade or purchase credits.",
    )
    assert classify(400, {}, answer, NOW) == QuotaExhausted(
        None, "anthropic credit balance too low, no reset stated"
    )


def test_anthropic_rate_limit_error_is_short_unless_its_headers_say_otherwise() -> None:
    answer = anthropic_error("rate_limit_error", "Number of request tokens has exceeded ...")
    minute = {
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": "2023-11-14T22:13:50Z",
        "retry-after": "30",
    }
    assert classify(429, minute, answer, NOW) is None
    day = {**minute, "anthropic-ratelimit-input-tokens-reset": "2023-11-15T00:00:00Z"}
    assert classify(429, day, answer, NOW) == QuotaExhausted(
        1_700_006_400.0,
        "anthropic input_tokens spent for longer than the short windows",
        "input_tokens",
    )
    other = anthropic_error("invalid_request_error", "messages: field required")
    assert classify(400, {}, other, NOW) is None


# --- Google -----------------------------------------------------------------------------


def google(*details: dict[str, Any], errors: list[dict[str, str]] | None = None) -> bytes:
    error: dict[str, Any] = {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing "
        f"details. {SECRET}",
        "status": "RESOURCE_EXHAUSTED",
        "details": list(details),
    }
    if errors is not None:
        error["errors"] = errors
    return body({"error": error})


def violation(quota_id: str, metric: str = "") -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaMetric": metric, "quotaId": quota_id, "quotaValue": "20"}],
    }


def retry(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def test_gemini_per_day_quota_resets_at_pacific_midnight_whatever_retry_delay_says() -> None:
    answer = google(
        violation(
            "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            "generativelanguage.googleapis.com/generate_content_free_tier_requests",
        ),
        retry("36s"),
    )
    found = classify(429, {}, answer, NOW)
    assert found == QuotaExhausted(NEXT_PACIFIC_MIDNIGHT, "google daily quota exceeded", "requests")


def test_pacific_midnight_follows_daylight_saving_time() -> None:
    summer = 1_690_000_000.0  # Sat, 22 Jul 2023 04:26:40 GMT = Fri 21:26:40 PDT
    answer = google(violation("GenerateContentInputTokensPerModelPerDay-FreeTier"))
    found = classify(429, {}, answer, summer)
    assert found == QuotaExhausted(1_690_009_200.0, "google daily quota exceeded", "input_tokens")


def test_gemini_per_minute_quota_is_a_short_rate_limit() -> None:
    answer = google(violation("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"), retry("9s"))
    assert classify(429, {}, answer, NOW) is None


def test_a_quota_failure_without_a_period_goes_by_its_retry_delay() -> None:
    assert classify(429, {}, google(violation("SomeQuota"), retry("20s")), NOW) is None
    long_wait = google(violation("SomeQuota"), retry("600s"))
    assert classify(429, {}, long_wait, NOW) == QuotaExhausted(NOW + 600, "google quota exceeded")
    hourly = google(violation("TokensPerHour"), retry("20s"))
    assert classify(429, {}, hourly, NOW) == QuotaExhausted(
        NOW + 20, "google quota exceeded", "tokens"
    )
    assert classify(429, {}, google(violation("SomeQuota")), NOW) == QuotaExhausted(
        None, "google quota exceeded"
    )


def test_the_period_can_come_from_error_info() -> None:
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "RATE_LIMIT_EXCEEDED",
        "metadata": {"quota_limit": "Gemini25ProRequestsPerDay", "quota_metric": "x"},
    }
    answer = google(violation(""), info)
    assert classify(429, {}, answer, NOW) == QuotaExhausted(
        NEXT_PACIFIC_MIDNIGHT, "google daily quota exceeded", "requests"
    )


def test_google_legacy_daily_reasons() -> None:
    youtube = google(errors=[{"domain": "youtube.quota", "reason": "quotaExceeded"}])
    assert classify(403, {}, youtube, NOW) == QuotaExhausted(
        NEXT_PACIFIC_MIDNIGHT, "google daily quota exceeded"
    )
    user_rate = google(errors=[{"domain": "usageLimits", "reason": "userRateLimitExceeded"}])
    assert classify(403, {}, user_rate, NOW) is None
    assert classify(429, {}, google(), NOW) is None  # RESOURCE_EXHAUSTED alone: ambiguous


# --- GitHub -----------------------------------------------------------------------------


def github(remaining: int, reset: int = 1_700_000_600, resource: str = "core") -> dict[str, str]:
    return {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-used": str(5000 - remaining),
        "x-ratelimit-reset": str(reset),
        "x-ratelimit-resource": resource,
    }


PRIMARY = body(
    {
        "message": "API rate limit exceeded for user ID 1.",
        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
    }
)


@pytest.mark.parametrize("status", [403, 429])
def test_github_primary_limit_parks_until_its_reset(status: int) -> None:
    found = classify(status, github(0), PRIMARY, NOW)
    reason = "github primary rate limit spent until its reset"
    assert found == QuotaExhausted(1_700_000_600.0, reason, "requests", "core")
    short = classify(status, github(0, 1_700_000_020, "search"), PRIMARY, NOW)
    assert short == QuotaExhausted(1_700_000_020.0, reason, "requests", "search")


def test_github_secondary_limit_is_a_short_rate_limit() -> None:
    secondary = body({"message": "You have exceeded a secondary rate limit."})
    headers = {**github(4000), "retry-after": "60"}
    assert classify(403, headers, secondary, NOW) is None


def test_github_graphql_primary_limit_answers_200_with_an_error() -> None:
    limited = body({"errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded"}]})
    found = classify(200, github(0, resource="graphql"), limited, NOW)
    reason = "github primary rate limit spent until its reset"
    assert found == QuotaExhausted(1_700_000_600.0, reason, "points", "graphql")
    served = body({"data": {"viewer": {"login": "octocat"}}})
    assert classify(200, github(0, resource="graphql"), served, NOW) is None  # the last one


# --- vendor headers with a long reset -----------------------------------------------------


def test_the_long_reset_threshold() -> None:
    def spent(reset: str) -> dict[str, str]:
        return {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": reset}

    assert LONG_RESET == 300
    assert classify(429, spent("4m59.999s"), None, NOW) is None
    assert classify(429, spent("5m0s"), None, NOW) == QuotaExhausted(
        NOW + 300, "openai requests spent for longer than the short windows", "requests"
    )
    assert classify(503, spent("1h"), None, NOW) is None


def test_the_latest_of_several_long_resets_wins() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1h",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "2h30m",
    }
    found = classify(429, headers, b"", NOW)
    assert found is not None
    assert (found.reset_at, found.resource) == (NOW + 9000, "tokens")


# --- whatever a server sends --------------------------------------------------------------


def test_nothing_of_the_body_reaches_the_result() -> None:
    answers = [
        (429, body({"error": {**INSUFFICIENT_QUOTA["error"], "message": SECRET}})),
        (429, google(violation("PerDay" + SECRET))),
        (403, body({"message": SECRET})),
    ]
    for status, answer in answers:
        found = classify(status, {**github(0), "x-ratelimit-resource": SECRET}, answer, NOW)
        assert found is not None
        assert SECRET not in repr(found)


def test_big_and_broken_bodies() -> None:
    padded = body({**INSUFFICIENT_QUOTA, "padding": "x" * MAX_BODY})
    assert len(padded) > MAX_BODY
    assert classify(429, {}, padded, NOW) is None  # not parsed at all
    assert classify(429, {}, b"[" * 100_000, NOW) is None
    assert classify(429, {}, b'{"error": ' * 10_000, NOW) is None
    assert classify(429, {}, b"\xff\xfe{not json", NOW) is None
    assert classify(429, {}, "<html>Too Many Requests</html>", NOW) is None
    assert classify(429, {}, b"[1, 2]", NOW) is None
    assert classify(429, {}, body({"error": "insufficient_quota"}), NOW) is None
    assert classify(429, {}, body({"error": {"details": "nope", "errors": [1, None]}}), NOW) is None


def test_a_bad_clock_classifies_nothing() -> None:
    assert classify(429, {}, body(INSUFFICIENT_QUOTA), math.nan) is None


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from([200, 400, 403, 429]),
    document=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["error", "code", "type", "message", "details", "@type", "violations",
                 "quotaId", "retryDelay", "errors", "reason", "metadata", "quota_limit"]
            ),
            inner,
            max_size=5,
        ),
        max_leaves=20,
    ),
    headers=st.dictionaries(
        st.sampled_from(
            ["x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-resource",
             "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
             "anthropic-ratelimit-tokens-reset", "anthropic-ratelimit-tokens-remaining"]
        ),
        st.text(max_size=12),
        max_size=4,
    ),
)  # fmt: skip
def test_never_raises(status: int, document: Any, headers: dict[str, str]) -> None:
    found = classify(status, headers, json.dumps(document), NOW)
    assert found is None or isinstance(found, QuotaExhausted)
