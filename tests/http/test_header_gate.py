"""The common case skips rate-limit header parsing: ``may_carry_rate_limits`` says when
no header name could matter, and then the parser's answer is known without running it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from aurora_async._core.headers import RateLimitInfo, parse_rate_limit_headers
from aurora_async._http.outcomes import may_carry_rate_limits

NOW = 1_700_000_000.0
PLAIN = {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": "12",
    "Date": "Tue, 14 Nov 2023 22:13:20 GMT",
    "Server": "Python/3.11 aiohttp/3.14.5",
}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, False),
        ({"X-Request-Id": "abc", "Retry": "1"}, False),
        ({"After": "1", "X-Retry": "2"}, False),
        ({"Retry-After": "1"}, True),
        ({"RETRY-AFTER": "1"}, True),
        ({"X-RateLimit-Remaining": "0"}, True),
        ({"x-rate-limit-reset": "5"}, True),
        ({"RateLimit": "limit=10, remaining=0, reset=5"}, True),
        ({"anthropic-ratelimit-requests-remaining": "0"}, True),
        ({"x-ratelimit-reset-requests": "1s"}, True),
        ({"Content-Generated-By": "x"}, True),  # "generated" holds "rate": parsed, harmless
    ],
)
def test_which_responses_are_parsed(extra: dict[str, str], expected: bool) -> None:
    headers = CIMultiDictProxy(CIMultiDict({**PLAIN, **extra}))
    assert may_carry_rate_limits(headers) is expected


NAMES = st.one_of(
    st.sampled_from(
        [
            "Content-Type",
            "Retry-After",
            "retry-after",
            "Retry-After-X",
            "X-Retry-After",
            "Retry",
            "After",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset",
            "x-rate-limit-limit",
            "RateLimit",
            "RateLimit-Policy",
            "Generate",
            "RATE",
            "R-ate",
        ]
    ),
    st.text(
        st.characters(min_codepoint=33, max_codepoint=0x24F, exclude_characters=":"), max_size=12
    ),
)
VALUES = st.sampled_from(["0", "5", "1.5", "abc", "", "limit=1, remaining=0, reset=3", "1s"])


@given(st.lists(st.tuples(NAMES, VALUES), max_size=6))
def test_the_gate_never_skips_a_header_the_parser_reads(pairs: list[tuple[str, str]]) -> None:
    headers = CIMultiDictProxy(CIMultiDict(pairs))
    if not may_carry_rate_limits(headers):
        assert parse_rate_limit_headers(headers, now=NOW) == (RateLimitInfo(), ())
