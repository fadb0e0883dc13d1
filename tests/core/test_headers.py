"""Rate-limit header parsing: real samples, exact values, malformed input, fuzzing."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from aurora_async._core.headers import (
    HeaderProblem,
    RateLimitInfo,
    parse_rate_limit_headers,
    parse_retry_after,
)

NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
YEAR = 365 * 24 * 3600.0


def parse(headers: dict[str, str]) -> RateLimitInfo:
    """Parse headers that must have no problems."""
    info, problems = parse_rate_limit_headers(headers, now=NOW)
    assert problems == ()
    return info


# --- real samples -----------------------------------------------------------------------

SAMPLES = [
    pytest.param(
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": "1700003600",
            "x-ratelimit-used": "1",
            "x-ratelimit-resource": "core",
        },
        RateLimitInfo(limit=5000, remaining=4999, reset_after=3600),
        id="github-rest",
    ),
    pytest.param(
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": "1700000600",
            "x-ratelimit-used": "5000",
            "x-ratelimit-resource": "core",
        },
        RateLimitInfo(limit=5000, remaining=0, reset_after=600),
        id="github-primary-limit-403",
    ),
    pytest.param(
        {
            "retry-after": "60",
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4950",
            "x-ratelimit-reset": "1700001000",
        },
        RateLimitInfo(limit=5000, remaining=4950, reset_after=1000, retry_after=60),
        id="github-secondary-limit-403",
    ),
    pytest.param(
        {
            "x-rate-limit-limit": "900",
            "x-rate-limit-remaining": "899",
            "x-rate-limit-reset": "1700000900",
        },
        RateLimitInfo(limit=900, remaining=899, reset_after=900),
        id="x-rate-limit-spelling",
    ),
    pytest.param(
        {
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-limit-tokens": "2000000",
            "x-ratelimit-remaining-requests": "9999",
            "x-ratelimit-remaining-tokens": "1999967",
            "x-ratelimit-reset-requests": "6ms",
            "x-ratelimit-reset-tokens": "0s",
        },
        RateLimitInfo(limit=10000, remaining=9999, reset_after=0.006),
        id="openai",
    ),
    pytest.param(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "6m0s",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "1s",
        },
        RateLimitInfo(limit=60, remaining=0, reset_after=360),
        id="openai-requests-preferred",
    ),
    pytest.param(
        {
            "x-ratelimit-limit-tokens": "40000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "2m59.56s",
        },
        RateLimitInfo(limit=40000, remaining=0, reset_after=179.56),
        id="openai-tokens-only",
    ),
    pytest.param(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:50Z",
            "anthropic-ratelimit-tokens-limit": "40000",
            "anthropic-ratelimit-tokens-remaining": "39000",
            "anthropic-ratelimit-tokens-reset": "2023-11-14T22:13:21Z",
            "anthropic-ratelimit-input-tokens-limit": "30000",
            "anthropic-ratelimit-input-tokens-remaining": "29500",
            "anthropic-ratelimit-input-tokens-reset": "2023-11-14T22:13:21Z",
        },
        RateLimitInfo(limit=50, remaining=49, reset_after=30),
        id="anthropic",
    ),
    pytest.param(
        {
            "retry-after": "13",
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:33Z",
        },
        RateLimitInfo(limit=50, remaining=0, reset_after=13, retry_after=13),
        id="anthropic-429",
    ),
    pytest.param(
        {
            "anthropic-ratelimit-tokens-limit": "40000",
            "anthropic-ratelimit-tokens-remaining": "12",
            "anthropic-ratelimit-tokens-reset": "2023-11-14T23:14:20.5+01:00",
        },
        RateLimitInfo(limit=40000, remaining=12, reset_after=60.5),
        id="anthropic-tokens-only-with-offset",
    ),
    pytest.param(
        {
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "1700000001.300",
            "X-RateLimit-Reset-After": "1.2",
            "X-RateLimit-Bucket": "abcd1234",
            "X-RateLimit-Scope": "user",
        },
        RateLimitInfo(limit=5, remaining=0, reset_after=1.2),
        id="discord-reset-after-preferred",
    ),
    pytest.param(
        {"Retry-After": "0.25", "X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"},
        RateLimitInfo(retry_after=0.25),
        id="discord-global-fractional-retry-after",
    ),
    pytest.param(
        {
            "ratelimit": '"default";r=50;t=30',
            "ratelimit-policy": '"default";q=1200;w=300',
        },
        RateLimitInfo(limit=1200, remaining=50, reset_after=30, window=300),
        id="cloudflare-draft-08",
    ),
    pytest.param(
        {
            "x-ratelimit-limit": "1200",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": "Tue, 14 Nov 2023 22:13:50 GMT",
            "retry-after": "30",
            "ratelimit": '"default";r=0;t=30',
            "ratelimit-policy": '"default";q=1200;w=300',
        },
        RateLimitInfo(limit=1200, remaining=0, reset_after=30, retry_after=30),
        id="cloudflare-429-with-http-date-reset",
    ),
    pytest.param(
        {"RateLimit": "limit=100, remaining=50, reset=5", "RateLimit-Policy": "100;w=60"},
        RateLimitInfo(limit=100, remaining=50, reset_after=5),
        id="ietf-draft-07",
    ),
    pytest.param(
        {
            "RateLimit-Policy": '"burst";q=100;w=60, "daily";q=1000;w=86400',
            "RateLimit": '"burst";r=50;t=30, "daily";r=10;t=3600',
        },
        RateLimitInfo(limit=1000, remaining=10, reset_after=3600, window=86400),
        id="ietf-draft-10-least-remaining-policy",
    ),
    pytest.param(
        {
            "RateLimit-Policy": '"burst";q=10;w=60, "daily";q=1000;w=86400',
            "RateLimit": '"burst";r=0;t=30, "daily";r=0;t=3600',
        },
        RateLimitInfo(limit=1000, remaining=0, reset_after=3600, window=86400),
        id="ietf-draft-10-tie-takes-longest-reset",
    ),
    pytest.param(
        {"RateLimit-Policy": "default;q=10;w=10", "RateLimit": "default;r=5;t=7"},
        RateLimitInfo(limit=10, remaining=5, reset_after=7, window=10),
        id="ietf-draft-08-token-names",
    ),
    pytest.param(
        {"RateLimit": '"unknown";r=5;t=7', "RateLimit-Policy": '"other";q=10'},
        RateLimitInfo(remaining=5, reset_after=7),
        id="ietf-draft-08-no-matching-policy",
    ),
    pytest.param(
        {"RateLimit": '"a";r=5;t=7, "a";r=5;t=7', "RateLimit-Policy": '"a";q=10, "a";q=99;w=1'},
        RateLimitInfo(limit=10, remaining=5, reset_after=7),
        id="ietf-draft-08-first-policy-of-a-name",
    ),
    pytest.param(
        {"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "58"},
        RateLimitInfo(limit=100, remaining=0, reset_after=58),
        id="ietf-draft-06",
    ),
    pytest.param(
        {"RateLimit-Limit": "10, 10;w=1, 50;w=60", "RateLimit-Remaining": "9"},
        RateLimitInfo(limit=10, remaining=9),
        id="ietf-draft-03-limit-with-policies",
    ),
    pytest.param(
        {"Retry-After": "Tue, 14 Nov 2023 22:14:20 GMT"},
        RateLimitInfo(retry_after=60),
        id="retry-after-imf-fixdate",
    ),
    pytest.param(
        {"Retry-After": "Tuesday, 14-Nov-23 22:14:20 GMT"},
        RateLimitInfo(retry_after=60),
        id="retry-after-rfc-850",
    ),
    pytest.param(
        {"Retry-After": "Tue Nov 14 22:14:20 2023"},
        RateLimitInfo(retry_after=60),
        id="retry-after-asctime",
    ),
    pytest.param(
        {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
        RateLimitInfo(retry_after=0),
        id="retry-after-date-in-the-past",
    ),
    pytest.param(
        {"x-ratelimit-reset": "1700000030500"},
        RateLimitInfo(reset_after=30.5),
        id="reset-epoch-milliseconds",
    ),
    pytest.param(
        {"x-ratelimit-reset": "45"},
        RateLimitInfo(reset_after=45),
        id="reset-delta-seconds",
    ),
    pytest.param(
        {"x-ratelimit-reset": "1699999000"},
        RateLimitInfo(reset_after=0),
        id="reset-epoch-in-the-past",
    ),
    pytest.param(
        {"x-ratelimit-reset": "1000000000"},
        RateLimitInfo(reset_after=0),
        id="reset-1e9-is-an-epoch",
    ),
    pytest.param(
        {"x-ratelimit-reset": "Tue, 14 Nov 2023 22:13:30 GMT"},
        RateLimitInfo(reset_after=10),
        id="reset-http-date",
    ),
    pytest.param({"content-type": "application/json"}, RateLimitInfo(), id="no-rate-limit"),
    pytest.param({}, RateLimitInfo(), id="empty"),
]


@pytest.mark.parametrize(("headers", "expected"), SAMPLES)
def test_real_samples(headers: dict[str, str], expected: RateLimitInfo) -> None:
    assert parse(headers) == expected


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("2m59.56s", 179.56),
        ("0s", 0.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("250μs", 0.00025),
        ("1500000ns", 0.0015),
        ("8760h", YEAR),
    ],
)
def test_go_durations(value: str, seconds: float) -> None:
    assert parse({"x-ratelimit-reset-requests": value}) == RateLimitInfo(reset_after=seconds)


# --- public helpers and value objects ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0.25", 0.25),
        ("0", 0.0),
        ("Tue, 14 Nov 2023 22:14:20 GMT", 60.0),
        ("Tue, 14 Nov 2023 22:14:20 -0000", 60.0),
        ("Tue, 14 Nov 2023 23:14:20 +0100", 60.0),
        ("Tuesday, 14-Nov-23 22:14:20 GMT", 60.0),
        ("Tue Nov 14 22:14:20 2023", 60.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("31536000", YEAR),
        ("31536001", None),
        ("Wed, 14 Nov 2029 22:13:20 GMT", None),
        ("-1", None),
        ("soon", None),
        ("", None),
        ("1e3", None),
        ("nan", None),
        ("inf", None),
        ("٣", None),  # a digit, but not an ASCII one
        ("9" * 400, None),
    ],
)
def test_parse_retry_after(value: str, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf])
def test_now_must_be_finite(now: float) -> None:
    with pytest.raises(ValueError, match="now must be a finite Unix time"):
        parse_retry_after("1", now=now)
    with pytest.raises(ValueError, match="now must be a finite Unix time"):
        parse_rate_limit_headers({}, now=now)


@pytest.mark.parametrize(
    ("info", "exhausted"),
    [
        (RateLimitInfo(), False),
        (RateLimitInfo(remaining=1), False),
        (RateLimitInfo(remaining=0.5), False),
        (RateLimitInfo(remaining=0), True),
        (RateLimitInfo(limit=10, reset_after=5), False),
    ],
)
def test_exhausted(info: RateLimitInfo, exhausted: bool) -> None:
    assert info.exhausted is exhausted


@pytest.mark.parametrize("field", ["limit", "remaining", "reset_after", "retry_after"])
@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_rate_limit_info_rejects_bad_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"must be finite and >= 0 or None: .*{field}="):
        RateLimitInfo(**{field: value})


# --- names, containers and duplicates ---------------------------------------------------


@pytest.mark.parametrize(
    "name", ["x-ratelimit-remaining", "X-RateLimit-Remaining", "X-RATELIMIT-REMAINING"]
)
def test_names_are_case_insensitive(name: str) -> None:
    assert parse({name: "3"}) == RateLimitInfo(remaining=3)


def test_pairs_first_occurrence_wins() -> None:
    pairs = [
        ("X-RateLimit-Remaining", "3"),
        ("x-ratelimit-remaining", "9"),
        ("Retry-After", "5"),
        ("retry-after", "50"),
    ]
    info, problems = parse_rate_limit_headers(pairs, now=NOW)
    assert (info, problems) == (RateLimitInfo(remaining=3, retry_after=5), ())


def test_pairs_structured_field_lines_are_joined() -> None:
    pairs = [
        ("RateLimit-Policy", '"burst";q=100;w=60'),
        ("RateLimit", '"burst";r=50;t=30'),
        ("ratelimit-policy", '"daily";q=1000;w=86400'),
        ("ratelimit", '"daily";r=10;t=3600'),
    ]
    info, problems = parse_rate_limit_headers(pairs, now=NOW)
    expected = RateLimitInfo(limit=1000, remaining=10, reset_after=3600, window=86400)
    assert (info, problems) == (expected, ())


def test_aiohttp_multidict() -> None:
    headers = CIMultiDict(
        [
            ("X-RateLimit-Limit", "5000"),
            ("X-RateLimit-Remaining", "0"),
            ("x-ratelimit-remaining", "17"),
            ("X-RateLimit-Reset", "1700000600"),
            ("RateLimit", '"burst";r=1;t=1'),
            ("ratelimit", '"daily";r=0;t=900'),
            ("Retry-After", "120"),
        ]
    )
    # X-RateLimit says (5000, 0, 600), RateLimit's "daily" item (None, 0, 900): a tie on
    # remaining, so the longer reset wins.
    expected = RateLimitInfo(remaining=0, reset_after=900, retry_after=120)
    for container in (headers, CIMultiDictProxy(headers)):
        assert parse_rate_limit_headers(container, now=NOW) == (expected, ())


# --- the most conservative reading ------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            {
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": "4000",
                "x-ratelimit-reset": "1700003000",
                "ratelimit": '"minute";r=0;t=20',
                "ratelimit-policy": '"minute";q=60;w=60',
            },
            RateLimitInfo(limit=60, remaining=0, reset_after=20, window=60),
            id="least-remaining-wins-whole",
        ),
        pytest.param(
            {
                "x-ratelimit-remaining": "0",
                "ratelimit-remaining": "0",
                "ratelimit-reset": "40",
            },
            RateLimitInfo(remaining=0, reset_after=40),
            id="tie-takes-longest-reset",
        ),
        pytest.param(
            {
                "x-ratelimit-limit": "100",
                "x-ratelimit-remaining": "2",
                "x-ratelimit-reset": "10",
                "ratelimit-limit": "50",
                "ratelimit-remaining": "2",
                "ratelimit-reset": "10",
            },
            RateLimitInfo(limit=50, remaining=2, reset_after=10),
            id="then-least-limit",
        ),
        pytest.param(
            {"x-ratelimit-reset": "300", "ratelimit-remaining": "7", "ratelimit-reset": "3"},
            RateLimitInfo(remaining=7, reset_after=3),
            id="known-remaining-beats-unknown",
        ),
        pytest.param(
            {"x-ratelimit-reset": "30", "ratelimit-reset": "300"},
            RateLimitInfo(reset_after=300),
            id="no-remaining-longest-reset",
        ),
        pytest.param(
            {
                "x-ratelimit-remaining-requests": "5",
                "x-ratelimit-reset-requests": "1s",
                "anthropic-ratelimit-requests-remaining": "4",
                "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:22Z",
                "retry-after": "9",
            },
            RateLimitInfo(remaining=4, reset_after=2, retry_after=9),
            id="retry-after-kept-beside-the-reading",
        ),
    ],
)
def test_most_conservative_reading(headers: dict[str, str], expected: RateLimitInfo) -> None:
    assert parse(headers) == expected


# --- malformed values -------------------------------------------------------------------

LONG = "x" * 100

MALFORMED = [
    pytest.param(
        {"retry-after": "soon"},
        RateLimitInfo(),
        [HeaderProblem("retry-after", "not a number or HTTP date (got 'soon')")],
        id="retry-after-word",
    ),
    pytest.param(
        {"Retry-After": "-5", "x-ratelimit-remaining": "3"},
        RateLimitInfo(remaining=3),
        [HeaderProblem("retry-after", "negative number (got '-5')")],
        id="retry-after-negative",
    ),
    pytest.param(
        {"retry-after": "99999999"},
        RateLimitInfo(),
        [HeaderProblem("retry-after", "more than a year away (got '99999999')")],
        id="retry-after-too-far",
    ),
    pytest.param(
        {"retry-after": "Fri, 14 Nov 2025 22:13:20 GMT"},
        RateLimitInfo(),
        [
            HeaderProblem(
                "retry-after", "more than a year away (got 'Fri, 14 Nov 2025 22:13:20 GMT')"
            )
        ],
        id="retry-after-date-too-far",
    ),
    pytest.param(
        {"retry-after": "Tue, 32 Nov 2023 22:13:20 GMT"},
        RateLimitInfo(),
        [
            HeaderProblem(
                "retry-after", "not a number or HTTP date (got 'Tue, 32 Nov 2023 22:13:20 GMT')"
            )
        ],
        id="retry-after-impossible-date",
    ),
    pytest.param(
        {"x-ratelimit-remaining": "NaN", "x-ratelimit-limit": "inf"},
        RateLimitInfo(),
        [
            HeaderProblem("x-ratelimit-limit", "not a number (got 'inf')"),
            HeaderProblem("x-ratelimit-remaining", "not a number (got 'NaN')"),
        ],
        id="nan-and-inf",
    ),
    pytest.param(
        {"x-ratelimit-remaining": "9" * 400},
        RateLimitInfo(),
        [HeaderProblem("x-ratelimit-remaining", f"too large (got {'9' * 40!r}…)")],
        id="count-overflows-a-float",
    ),
    pytest.param(
        {"x-ratelimit-remaining": LONG},
        RateLimitInfo(),
        [HeaderProblem("x-ratelimit-remaining", f"not a number (got {'x' * 40!r}…)")],
        id="long-value-cut-to-40-characters",
    ),
    pytest.param(
        {"x-ratelimit-reset": "-1700000000", "x-ratelimit-remaining": "1"},
        RateLimitInfo(remaining=1),
        [HeaderProblem("x-ratelimit-reset", "negative number (got '-1700000000')")],
        id="reset-negative",
    ),
    pytest.param(
        {"x-ratelimit-reset": "999999999"},
        RateLimitInfo(),
        [HeaderProblem("x-ratelimit-reset", "more than a year away (got '999999999')")],
        id="reset-below-epoch-is-a-delta-too-far",
    ),
    pytest.param(
        {"x-ratelimit-reset": "1800000000"},
        RateLimitInfo(),
        [HeaderProblem("x-ratelimit-reset", "more than a year away (got '1800000000')")],
        id="reset-epoch-too-far",
    ),
    pytest.param(
        {"x-ratelimit-reset": "1800000000000"},
        RateLimitInfo(),
        [HeaderProblem("x-ratelimit-reset", "more than a year away (got '1800000000000')")],
        id="reset-epoch-ms-too-far",
    ),
    pytest.param(
        {"x-ratelimit-reset": "tomorrow"},
        RateLimitInfo(),
        [HeaderProblem("x-ratelimit-reset", "not a number or HTTP date (got 'tomorrow')")],
        id="reset-word",
    ),
    pytest.param(
        {"x-ratelimit-reset-after": "1,5", "x-ratelimit-reset": "1700000002"},
        RateLimitInfo(reset_after=2),
        [HeaderProblem("x-ratelimit-reset-after", "not a number (got '1,5')")],
        id="bad-reset-after-falls-back-to-reset",
    ),
    pytest.param(
        {"x-ratelimit-reset-after": "1.5", "x-ratelimit-reset": "never"},
        RateLimitInfo(reset_after=1.5),
        [HeaderProblem("x-ratelimit-reset", "not a number or HTTP date (got 'never')")],
        id="bad-reset-reported-beside-reset-after",
    ),
    pytest.param(
        {"x-ratelimit-reset-requests": "6 minutes", "x-ratelimit-remaining-requests": "2"},
        RateLimitInfo(remaining=2),
        [HeaderProblem("x-ratelimit-reset-requests", "not a duration (got '6 minutes')")],
        id="openai-not-a-duration",
    ),
    pytest.param(
        {"x-ratelimit-reset-requests": "-1s"},
        RateLimitInfo(),
        [HeaderProblem("x-ratelimit-reset-requests", "not a duration (got '-1s')")],
        id="openai-negative-duration",
    ),
    pytest.param(
        {"x-ratelimit-reset-requests": "8761h"},
        RateLimitInfo(),
        [HeaderProblem("x-ratelimit-reset-requests", "more than a year away (got '8761h')")],
        id="openai-duration-too-far",
    ),
    pytest.param(
        {"x-ratelimit-reset-requests": "9" * 400 + "h"},
        RateLimitInfo(),
        [HeaderProblem("x-ratelimit-reset-requests", f"more than a year away (got {'9' * 40!r}…)")],
        id="openai-duration-overflows",
    ),
    pytest.param(
        {
            "x-ratelimit-remaining-requests": "lots",
            "x-ratelimit-remaining-tokens": "100",
        },
        RateLimitInfo(remaining=100),
        [HeaderProblem("x-ratelimit-remaining-requests", "not a number (got 'lots')")],
        id="openai-bad-requests-falls-back-to-tokens",
    ),
    pytest.param(
        {
            "anthropic-ratelimit-requests-remaining": "1",
            "anthropic-ratelimit-requests-reset": "in 30 seconds",
        },
        RateLimitInfo(remaining=1),
        [
            HeaderProblem(
                "anthropic-ratelimit-requests-reset", "not an RFC 3339 time (got 'in 30 seconds')"
            )
        ],
        id="anthropic-not-a-timestamp",
    ),
    pytest.param(
        {"anthropic-ratelimit-requests-reset": "2023-11-14T22:13:50"},
        RateLimitInfo(reset_after=30),
        [],
        id="anthropic-timestamp-without-offset-is-utc",
    ),
    pytest.param(
        {"anthropic-ratelimit-requests-reset": "2099-01-01T00:00:00Z"},
        RateLimitInfo(),
        [
            HeaderProblem(
                "anthropic-ratelimit-requests-reset",
                "more than a year away (got '2099-01-01T00:00:00Z')",
            )
        ],
        id="anthropic-timestamp-too-far",
    ),
    pytest.param(
        {"ratelimit-limit": "ten, 10;w=1", "ratelimit-remaining": "-3", "ratelimit-reset": "x"},
        RateLimitInfo(),
        [
            HeaderProblem("ratelimit-limit", "not a number (got 'ten, 10;w=1')"),
            HeaderProblem("ratelimit-remaining", "negative number (got '-3')"),
            HeaderProblem("ratelimit-reset", "not a number or HTTP date (got 'x')"),
        ],
        id="ietf-draft-06-all-bad",
    ),
    pytest.param(
        {"ratelimit": "limit=lots, remaining=-1, reset=99999999999, extra=1"},
        RateLimitInfo(),
        [
            HeaderProblem("ratelimit", "limit: not a number (got 'lots')"),
            HeaderProblem("ratelimit", "remaining: negative number (got '-1')"),
            HeaderProblem("ratelimit", "reset: more than a year away (got '99999999999')"),
        ],
        id="ietf-draft-07-all-bad",
    ),
    pytest.param(
        {"ratelimit": "remaining=0"},
        RateLimitInfo(remaining=0),
        [],
        id="ietf-draft-07-partial",
    ),
    pytest.param(
        {
            "ratelimit": '"a";r=x;t=5, "b";r=3;t=-1, "c";t=9',
            "ratelimit-policy": '"a";q=many, "b";w=60, "c";q=10',
        },
        RateLimitInfo(remaining=3),
        [
            HeaderProblem("ratelimit-policy", "q: not a number (got 'many')"),
            HeaderProblem("ratelimit", "r: not a number (got 'x')"),
            HeaderProblem("ratelimit", "t: negative number (got '-1')"),
        ],
        id="ietf-draft-08-bad-parameters",
    ),
    pytest.param(
        {"ratelimit": '"a;b,c=d";r=2;t=3;flag, , "x\\"y";r=1', "ratelimit-policy": '"x\\"y";q=4'},
        RateLimitInfo(limit=4, remaining=1),
        [],
        id="ietf-draft-08-quoted-separators-and-escapes",
    ),
    pytest.param(
        {"ratelimit": "", "ratelimit-policy": ""},
        RateLimitInfo(),
        [],
        id="ietf-empty-fields",
    ),
    pytest.param(
        {"ratelimit": "garbage"},
        RateLimitInfo(),
        [],
        id="ietf-item-without-parameters-is-no-reading",
    ),
]


@pytest.mark.parametrize(("headers", "expected", "problems"), MALFORMED)
def test_malformed_values_are_problems(
    headers: dict[str, str], expected: RateLimitInfo, problems: list[HeaderProblem]
) -> None:
    assert parse_rate_limit_headers(headers, now=NOW) == (expected, tuple(problems))


# --- fuzzing ----------------------------------------------------------------------------

KNOWN_NAMES = [
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-reset-after",
    "x-rate-limit-limit",
    "x-rate-limit-remaining",
    "x-rate-limit-reset",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "ratelimit",
    "ratelimit-policy",
]

numbers = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.floats(min_value=0, max_value=1e13).map(lambda value: f"{value:.3f}"),
)
zones = st.sampled_from(["GMT", "Z", "+01:00", "-2359", "+23:59", ""])
dates = st.tuples(st.datetimes(), zones).map(
    lambda pair: pair[0].strftime("%a, %d %b %Y %H:%M:%S ") + pair[1]
)
stamps = st.tuples(st.datetimes(), zones).map(lambda pair: pair[0].isoformat() + pair[1])
durations = st.lists(
    st.tuples(numbers, st.sampled_from(["h", "m", "s", "ms", "us", "µs", "ns", "x", ""])),
    min_size=1,
    max_size=4,
).map(lambda parts: "".join(amount + unit for amount, unit in parts))
structured = st.lists(
    st.tuples(
        st.sampled_from(['"default"', "burst", '"a;b"', "limit=", "", '"']),
        st.lists(st.tuples(st.sampled_from(["r", "t", "q", "w", "pk", "x"]), numbers)),
    ),
    max_size=4,
).map(
    lambda items: ", ".join(
        name + "".join(f";{key}={value}" for key, value in params) for name, params in items
    )
)
garbage = st.one_of(st.text(), numbers, dates, stamps, durations, structured)
times = st.floats(min_value=0, max_value=4e9)


def randomly_cased(name: str) -> st.SearchStrategy[str]:
    flips = st.lists(st.booleans(), min_size=len(name), max_size=len(name))
    return flips.map(
        lambda ups: "".join(c.upper() if up else c for c, up in zip(name, ups, strict=True))
    )


def assert_sane(info: RateLimitInfo, problems: tuple[HeaderProblem, ...]) -> None:
    for value in (info.limit, info.remaining, info.reset_after, info.retry_after):
        assert value is None or (math.isfinite(value) and value >= 0)
    for value in (info.reset_after, info.retry_after):
        assert value is None or value <= YEAR
    for problem in problems:
        assert isinstance(problem, HeaderProblem)
        assert problem.header == problem.header.lower()
        assert problem.header in KNOWN_NAMES
        assert problem.reason.endswith(")")


@given(st.dictionaries(st.text(), st.text()), times)
def test_fuzz_arbitrary_headers_never_raise(headers: dict[str, str], now: float) -> None:
    assert_sane(*parse_rate_limit_headers(headers, now=now))


@given(st.lists(st.tuples(st.sampled_from(KNOWN_NAMES), garbage)), times)
def test_fuzz_known_names_with_garbage_never_raise(
    pairs: list[tuple[str, str]], now: float
) -> None:
    assert_sane(*parse_rate_limit_headers(pairs, now=now))


@given(st.dictionaries(st.sampled_from(KNOWN_NAMES), garbage), st.data())
def test_fuzz_case_does_not_matter(headers: dict[str, str], data: st.DataObject) -> None:
    cased = {data.draw(randomly_cased(name)): value for name, value in headers.items()}
    assert parse_rate_limit_headers(cased, now=NOW) == parse_rate_limit_headers(headers, now=NOW)


@given(garbage, times)
def test_fuzz_retry_after(value: str, now: float) -> None:
    seconds = parse_retry_after(value, now=now)
    assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= YEAR)
    info, _ = parse_rate_limit_headers({"Retry-After": value}, now=now)
    assert info.retry_after == seconds


#: Names with "rate" in them that no family reads (GitHub, Discord and others send them).
UNREAD_NAMES = ["x-ratelimit-used", "X-RateLimit-Resource", "x-ratelimit-bucket", "Generated-By"]


@given(
    st.lists(st.tuples(st.sampled_from(KNOWN_NAMES), garbage)),
    st.lists(st.tuples(st.sampled_from(UNREAD_NAMES), garbage), min_size=1),
    st.randoms(use_true_random=False),
)
def test_fuzz_headers_no_family_reads_change_nothing(
    pairs: list[tuple[str, str]], unread: list[tuple[str, str]], rng: random.Random
) -> None:
    """Only the families with a header present are read: names with "rate" in them
    that none reads neither change the reading nor add a problem, wherever they are."""
    mixed = pairs + unread
    rng.shuffle(mixed)
    kept = [pair for pair in mixed if pair in pairs]
    assert parse_rate_limit_headers(mixed, now=NOW) == parse_rate_limit_headers(kept, now=NOW)
    assert parse_rate_limit_headers(unread, now=NOW) == (RateLimitInfo(), ())


def _valid_value(name: str) -> str:
    if name == "ratelimit":
        return "limit=10, remaining=5, reset=7"
    if name.startswith("anthropic-") and name.endswith("-reset"):
        return "2023-11-14T22:14:20Z"
    return "7"


@pytest.mark.parametrize("name", [n for n in KNOWN_NAMES if n != "ratelimit-policy"])
def test_every_name_is_read_alone(name: str) -> None:
    """Each name the parser knows is read when it is the only one present (a family is
    skipped only when none of its names is there); RateLimit-Policy says nothing alone."""
    info = parse({name.title(): _valid_value(name)})
    assert info != RateLimitInfo()
    assert 7 in (info.limit, info.remaining, info.reset_after, info.retry_after) or (
        name.startswith("anthropic-") and info.reset_after == 60
    )
