"""The vendor header families (OpenAI, Anthropic, GitHub): real samples, exact values,
malformed values ignored without a trace of them, the Go-duration and RFC 3339 readers."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from aurora_async._core.vendor_headers import (
    MAX_DELAY,
    ResourceReading,
    VendorHeaders,
    VendorProblem,
    parse_duration,
    parse_rfc3339,
    parse_vendor,
    read_vendor,
)

NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
SECRET = "sk-proj-SECRETVALUE0123"


def reading(
    resource: str,
    family: str,
    limit: float | None = None,
    remaining: float | None = None,
    reset_after: float | None = None,
    scope: str | None = None,
) -> ResourceReading:
    return ResourceReading(resource, limit, remaining, reset_after, scope, family)  # type: ignore[arg-type]


def clean(headers: dict[str, str]) -> tuple[ResourceReading, ...]:
    """Readings of headers that must have no problems."""
    found = read_vendor(headers, NOW)
    assert found.problems == ()
    assert parse_vendor(headers, NOW) == found.readings
    return found.readings


# --- real samples -----------------------------------------------------------------------


def test_openai_documented_sample() -> None:
    # The example of OpenAI's rate-limit guide ("Rate limits in headers").
    headers = {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-limit-tokens": "150000",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-remaining-tokens": "149984",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert clean(headers) == (
        reading("requests", "openai", 60, 59, 1.0),
        reading("tokens", "openai", 150000, 149984, 360.0),
    )


def test_openai_answer_with_millisecond_resets_and_extra_suffixes() -> None:
    # As a Chat Completions answer carries them; the "_usage_based" family is not read.
    headers = {
        "x-ratelimit-limit-requests": "5000",
        "x-ratelimit-limit-tokens": "160000",
        "x-ratelimit-limit-tokens_usage_based": "160000",
        "x-ratelimit-remaining-requests": "4999",
        "x-ratelimit-remaining-tokens": "159976",
        "x-ratelimit-remaining-tokens_usage_based": "159976",
        "x-ratelimit-reset-requests": "12ms",
        "x-ratelimit-reset-tokens": "9ms",
        "x-ratelimit-reset-tokens_usage_based": "9ms",
    }
    assert clean(headers) == (
        reading("requests", "openai", 5000, 4999, 0.012),
        reading("tokens", "openai", 160000, 159976, 0.009),
    )


def test_anthropic_every_resource_with_rfc3339_resets() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:21Z",
        "anthropic-ratelimit-tokens-limit": "48000",
        "anthropic-ratelimit-tokens-remaining": "47000",
        "anthropic-ratelimit-tokens-reset": "2023-11-14T22:13:22.5Z",
        "anthropic-ratelimit-input-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-remaining": "39500",
        "anthropic-ratelimit-input-tokens-reset": "2023-11-14T22:14:20+00:00",
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "7500",
        "anthropic-ratelimit-output-tokens-reset": "2023-11-14T23:13:30+01:00",
        "retry-after": "5",
        "request-id": "req_011",
    }
    assert clean(headers) == (
        reading("requests", "anthropic", 50, 49, 1.0),
        reading("tokens", "anthropic", 48000, 47000, 2.5),
        reading("input_tokens", "anthropic", 40000, 39500, 60.0),
        reading("output_tokens", "anthropic", 8000, 7500, 10.0),
    )


def test_anthropic_reset_in_the_past_is_zero() -> None:
    headers = {"anthropic-ratelimit-requests-reset": "2023-11-14T22:00:00Z"}
    assert clean(headers) == (reading("requests", "anthropic", reset_after=0.0),)


@pytest.mark.parametrize(
    ("scope", "resource"),
    [("core", "requests"), ("search", "requests"), ("graphql", "points")],
)
def test_github_documented_headers(scope: str, resource: str) -> None:
    headers = {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "4999",
        "x-ratelimit-used": "1",
        "x-ratelimit-reset": "1700003600",
        "x-ratelimit-resource": scope,
    }
    assert clean(headers) == (reading(resource, "github", 5000, 4999, 3600.0, scope),)


def test_github_primary_limit_spent() -> None:
    headers = {
        "X-RateLimit-Limit": "30",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Used": "30",
        "X-RateLimit-Reset": "1700000042",
        "X-RateLimit-Resource": "search",
    }
    (found,) = clean(headers)
    assert found == reading("requests", "github", 30, 0, 42.0, "search")
    assert found.exhausted


def test_github_remaining_from_used_when_it_is_missing() -> None:
    headers = {"x-ratelimit-limit": "60", "x-ratelimit-used": "61", "x-ratelimit-resource": "core"}
    assert clean(headers) == (reading("requests", "github", 60, 0, None, "core"),)


def test_plain_x_ratelimit_headers_are_not_github() -> None:
    # Discord, Cloudflare and others: headers.py reads them, not this module.
    headers = {"x-ratelimit-limit": "10", "x-ratelimit-remaining": "9", "x-ratelimit-reset": "3"}
    assert read_vendor(headers, NOW) == VendorHeaders()


def test_no_vendor_header_gives_nothing_even_with_a_bad_clock() -> None:
    headers = {"Content-Type": "application/json", "Retry-After": "3", "RateLimit": "r=1"}
    assert parse_vendor(headers, NOW) == ()
    assert parse_vendor(headers, math.nan) == ()
    assert parse_vendor({}, NOW) == ()


def test_a_bad_clock_is_the_callers_error() -> None:
    with pytest.raises(ValueError, match="wall_now"):
        parse_vendor({"x-ratelimit-limit-requests": "1"}, math.inf)


def test_names_are_case_insensitive_and_the_first_of_repeated_names_wins() -> None:
    multi = CIMultiDict(
        [
            ("X-RateLimit-Remaining-Requests", "7"),
            ("x-ratelimit-remaining-requests", "99"),
            ("X-RATELIMIT-LIMIT-REQUESTS", "10"),
        ]
    )
    expected = (reading("requests", "openai", 10, 7),)
    assert parse_vendor(CIMultiDictProxy(multi), NOW) == expected
    plain = {"X-RateLimit-Remaining-Requests": "7", "x-ratelimit-remaining-requests": "99"}
    assert parse_vendor(plain, NOW) == (reading("requests", "openai", None, 7),)


# --- malformed values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("x-ratelimit-remaining-tokens", "-1", "negative (2 chars)"),  # Azure's "unknown"
        ("x-ratelimit-limit-tokens", SECRET, "not a number (23 chars)"),
        ("x-ratelimit-reset-tokens", "6x", "not a duration (2 chars)"),
        ("x-ratelimit-reset-tokens", "8761h", "more than a year away (5 chars)"),
        ("x-ratelimit-reset-requests", "1" * 70, "too long (70 chars)"),
        ("anthropic-ratelimit-tokens-reset", "tomorrow", "not an RFC 3339 time (8 chars)"),
        ("anthropic-ratelimit-tokens-reset", "2023-02-30T00:00:00Z", "not a date (20 chars)"),
        ("anthropic-ratelimit-tokens-reset", "2030-11-14T22:13:20Z", "more than a year away"),
        ("x-ratelimit-reset", "3600", "not a Unix time (4 chars)"),
        ("x-ratelimit-limit", "1e3", "not a number (3 chars)"),
    ],
)
def test_a_malformed_value_is_skipped_with_a_reason_that_does_not_quote_it(
    name: str, value: str, reason: str
) -> None:
    headers = {name: value}
    if name in ("x-ratelimit-reset", "x-ratelimit-limit"):  # GitHub's: with its resource
        headers["x-ratelimit-resource"] = "core"
    found = read_vendor(headers, NOW)
    assert found.problems == (VendorProblem(name, reason),)
    assert value not in repr(found)


def test_a_family_with_nothing_readable_gives_no_reading() -> None:
    headers = {"x-ratelimit-remaining-requests": "lots", "x-ratelimit-reset-requests": "soon"}
    found = read_vendor(headers, NOW)
    assert found.readings == ()
    assert [p.header for p in found.problems] == [
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    ]


def test_a_scope_that_is_not_a_plain_name_is_dropped() -> None:
    headers = {"x-ratelimit-resource": SECRET, "x-ratelimit-remaining": "3"}
    found = read_vendor(headers, NOW)
    assert found.readings == (reading("requests", "github", remaining=3),)
    assert found.problems == (
        VendorProblem("x-ratelimit-resource", "not a resource name (23 chars)"),
    )
    assert SECRET not in repr(found)


# --- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0),
        ("1.5s", 1.5),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("59.999s", 59.999),
        ("0s", 0.0),
        ("0", 0.0),
        ("12", 12.0),
        ("0.25", 0.25),
        ("1µs", 1e-6),
        ("1μs", 1e-6),
        ("1us", 1e-6),
        ("7ns", 7e-9),
        ("1.5µs", 1.5e-6),
        (".5s", 0.5),
        ("5.s", 5.0),
        ("1m1h", 3660.0),  # Go takes the parts in any order
        (" 2s ", 2.0),
        ("8760h", MAX_DELAY),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "s", "ms", ".s", "-1s", "+1s", "1d", "1 s", "1S", "1H", "8760h1ns", "nan", "inf", "1e3s"],
)
def test_malformed_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_a_hostile_duration_is_refused_fast() -> None:
    assert parse_duration("ms" * 30 + "!") is None
    assert parse_duration("1" * 65 + "s") is None


def go_string(ns: int) -> str:
    """Go's ``time.Duration.String`` for a non-negative duration (the reference)."""

    def fraction(value: int, scale: int) -> str:
        whole, rest = divmod(value, scale)
        if not rest:
            return str(whole)
        digits = str(rest).rjust(len(str(scale)) - 1, "0").rstrip("0")
        return f"{whole}.{digits}"

    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return fraction(ns, 1_000) + "µs"
    if ns < 1_000_000_000:
        return fraction(ns, 1_000_000) + "ms"
    seconds, rest = divmod(ns, 1_000_000_000)
    text = fraction((seconds % 60) * 1_000_000_000 + rest, 1_000_000_000) + "s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes // 60:
            text = f"{minutes // 60}h{text}"
    return text


def test_the_reference_formatter_writes_what_go_writes() -> None:
    assert go_string(360 * 10**9) == "6m0s"
    assert go_string(1_500_000_000) == "1.5s"
    assert go_string(20_000_000) == "20ms"
    assert go_string(3_723_500_000_000) == "1h2m3.5s"
    assert go_string(1_500) == "1.5µs"
    assert go_string(3600 * 10**9) == "1h0m0s"


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=0, max_value=int(MAX_DELAY) * 10**9))
def test_go_durations_round_trip(ns: int) -> None:
    assert parse_duration(go_string(ns)) == float(Fraction(ns, 10**9))


@settings(max_examples=300, deadline=None)
@given(
    hours=st.integers(0, 8759),
    minutes=st.integers(0, 59),
    millis=st.integers(0, 59_999),
    unit_form=st.sampled_from(["full", "no-hours", "millis"]),
)
def test_durations_from_components(hours: int, minutes: int, millis: int, unit_form: str) -> None:
    seconds = f"{millis // 1000}.{millis % 1000:03d}s"
    if unit_form == "full":
        text, expected = f"{hours}h{minutes}m{seconds}", Fraction(hours * 3600 + minutes * 60)
    elif unit_form == "no-hours":
        text, expected = f"{minutes}m{seconds}", Fraction(minutes * 60)
    else:
        text, expected = f"{millis}ms", Fraction(0)
    expected += Fraction(millis, 1000)
    assert parse_duration(text) == float(expected)


# --- RFC 3339 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14t22:13:20z", NOW),
        ("2023-11-14 22:13:20Z", NOW),
        ("2023-11-14T22:13:20", NOW),  # no offset: read as UTC
        ("2023-11-14T22:13:20.250Z", NOW + 0.25),
        ("2023-11-14T23:43:20+01:30", NOW),
        ("2023-11-14T17:13:20-05:00", NOW),
        ("2016-12-31T23:59:60Z", 1483228800.0),  # a leap second reads as the next second
        ("2024-02-29T00:00:00Z", 1709164800.0),
    ],
)
def test_rfc3339(text: str, moment: float) -> None:
    assert parse_rfc3339(text) == moment


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2023-11-14",
        "2023-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2023-11-14T24:00:00Z",
        "2023-11-14T22:60:00Z",
        "2023-11-14T22:13:20+24:00",
        "Tue, 14 Nov 2023 22:13:20 GMT",
        "1700000000",
    ],
)
def test_malformed_rfc3339(text: str) -> None:
    assert parse_rfc3339(text) is None


def test_reading_numbers_are_checked() -> None:
    with pytest.raises(ValueError, match="finite"):
        reading("tokens", "openai", limit=-1)
    with pytest.raises(ValueError, match="finite"):
        reading("tokens", "openai", reset_after=math.inf)
