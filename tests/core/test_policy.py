"""The default outcome policy: the full table, the constructors and their validation."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aurora_async._core.headers import RateLimitInfo
from aurora_async._core.policy import Outcome, Verdict, classify

NONE = RateLimitInfo()
EXHAUSTED = RateLimitInfo(limit=5000, remaining=0, reset_after=600)
EXHAUSTED_NO_RESET = RateLimitInfo(limit=5000, remaining=0)
PLENTY = RateLimitInfo(limit=5000, remaining=4999, reset_after=600)
RETRY_AFTER = RateLimitInfo(retry_after=60)


def rate_limited(cooldown: float | None, reason: str) -> Outcome:
    return Outcome(
        Verdict.RATE_LIMITED,
        cooldown=cooldown,
        retry=True,
        reason=reason,
        before_server_acted=True,
    )


REVOKED = Outcome(
    Verdict.REVOKED, retry=True, reason="HTTP 401 Unauthorized", before_server_acted=True
)

TABLE = [
    # below 400: fine, resting the token when nothing remains and the reset is known
    pytest.param(200, NONE, Outcome(Verdict.OK), id="200"),
    pytest.param(101, NONE, Outcome(Verdict.OK), id="101"),
    pytest.param(204, PLENTY, Outcome(Verdict.OK), id="204-plenty"),
    pytest.param(301, NONE, Outcome(Verdict.OK), id="301"),
    pytest.param(304, NONE, Outcome(Verdict.OK), id="304"),
    pytest.param(200, EXHAUSTED, Outcome(Verdict.OK, cooldown=600.0), id="200-exhausted"),
    pytest.param(
        302, EXHAUSTED, Outcome(Verdict.OK, cooldown=600.0), id="302-exhausted-with-reset"
    ),
    pytest.param(200, EXHAUSTED_NO_RESET, Outcome(Verdict.OK), id="200-exhausted-no-reset"),
    pytest.param(
        200,
        RateLimitInfo(remaining=0, reset_after=0),
        Outcome(Verdict.OK, cooldown=0.0),
        id="200-exhausted-reset-now",
    ),
    pytest.param(200, RETRY_AFTER, Outcome(Verdict.OK), id="200-retry-after-ignored"),
    # 429: rate limited; Retry-After, else the reset, else the pool's backoff
    pytest.param(429, NONE, rate_limited(None, "HTTP 429 Too Many Requests"), id="429-bare"),
    pytest.param(
        429,
        RateLimitInfo(remaining=0, reset_after=30, retry_after=7),
        rate_limited(7.0, "HTTP 429 Too Many Requests"),
        id="429-retry-after-first",
    ),
    pytest.param(
        429,
        RateLimitInfo(reset_after=30),
        rate_limited(30.0, "HTTP 429 Too Many Requests"),
        id="429-reset",
    ),
    pytest.param(
        429, PLENTY, rate_limited(600.0, "HTTP 429 Too Many Requests"), id="429-reset-plenty"
    ),
    pytest.param(
        429,
        RateLimitInfo(retry_after=0),
        rate_limited(0.0, "HTTP 429 Too Many Requests"),
        id="429-retry-after-zero",
    ),
    # 403: rate limited with Retry-After or nothing remaining, else a client error
    pytest.param(403, RETRY_AFTER, rate_limited(60.0, "HTTP 403 Forbidden"), id="403-retry-after"),
    pytest.param(403, EXHAUSTED, rate_limited(600.0, "HTTP 403 Forbidden"), id="403-exhausted"),
    pytest.param(
        403,
        EXHAUSTED_NO_RESET,
        rate_limited(None, "HTTP 403 Forbidden"),
        id="403-exhausted-no-reset",
    ),
    pytest.param(
        403,
        RateLimitInfo(remaining=0, reset_after=600, retry_after=60),
        rate_limited(60.0, "HTTP 403 Forbidden"),
        id="403-retry-after-first",
    ),
    pytest.param(
        403, NONE, Outcome(Verdict.CLIENT_ERROR, reason="HTTP 403 Forbidden"), id="403-plain"
    ),
    pytest.param(
        403,
        PLENTY,
        Outcome(Verdict.CLIENT_ERROR, reason="HTTP 403 Forbidden"),
        id="403-plenty",
    ),
    # 401: revoked, whatever the headers say
    pytest.param(401, NONE, REVOKED, id="401"),
    pytest.param(401, RETRY_AFTER, REVOKED, id="401-retry-after"),
    pytest.param(401, EXHAUSTED, REVOKED, id="401-exhausted"),
    # other 4xx: returned to the caller, nothing cooled
    pytest.param(400, NONE, Outcome(Verdict.CLIENT_ERROR, reason="HTTP 400 Bad Request"), id="400"),
    pytest.param(
        404, EXHAUSTED, Outcome(Verdict.CLIENT_ERROR, reason="HTTP 404 Not Found"), id="404"
    ),
    pytest.param(
        409, RETRY_AFTER, Outcome(Verdict.CLIENT_ERROR, reason="HTTP 409 Conflict"), id="409"
    ),
    pytest.param(499, NONE, Outcome(Verdict.CLIENT_ERROR, reason="HTTP 499"), id="499"),
    # 5xx and beyond: retried on another token, nothing cooled
    pytest.param(
        500,
        NONE,
        Outcome(Verdict.SERVER_ERROR, retry=True, reason="HTTP 500 Internal Server Error"),
        id="500",
    ),
    pytest.param(
        503,
        RETRY_AFTER,
        Outcome(Verdict.SERVER_ERROR, retry=True, reason="HTTP 503 Service Unavailable"),
        id="503-retry-after",
    ),
    pytest.param(
        502,
        EXHAUSTED,
        Outcome(Verdict.SERVER_ERROR, retry=True, reason="HTTP 502 Bad Gateway"),
        id="502-exhausted",
    ),
    pytest.param(520, NONE, Outcome(Verdict.SERVER_ERROR, retry=True, reason="HTTP 520"), id="520"),
    pytest.param(600, NONE, Outcome(Verdict.SERVER_ERROR, retry=True, reason="HTTP 600"), id="600"),
]


@pytest.mark.parametrize(("status", "info", "expected"), TABLE)
def test_classify(status: int, info: RateLimitInfo, expected: Outcome) -> None:
    assert classify(status, info) == expected


@pytest.mark.parametrize(
    ("built", "expected"),
    [
        (Outcome.ok(), Outcome(Verdict.OK, None, False, None, False)),
        (Outcome.ok(cooldown=3), Outcome(Verdict.OK, 3.0, False, None, False)),
        (Outcome.rate_limited(), Outcome(Verdict.RATE_LIMITED, None, True, None, True)),
        (
            Outcome.rate_limited(2.5, reason="quota"),
            Outcome(Verdict.RATE_LIMITED, 2.5, True, "quota", True),
        ),
        (Outcome.revoked("bad token"), Outcome(Verdict.REVOKED, None, True, "bad token", True)),
        (Outcome.client_error(), Outcome(Verdict.CLIENT_ERROR, None, False, None, False)),
        (Outcome.client_error("no"), Outcome(Verdict.CLIENT_ERROR, None, False, "no", False)),
        (Outcome.server_error(), Outcome(Verdict.SERVER_ERROR, None, True, None, False)),
        (Outcome.server_error("down"), Outcome(Verdict.SERVER_ERROR, None, True, "down", False)),
        (
            Outcome.transport_error("connection refused", before_server_acted=True),
            Outcome(Verdict.TRANSPORT_ERROR, None, True, "connection refused", True),
        ),
        (
            Outcome.transport_error("read timeout", before_server_acted=False),
            Outcome(Verdict.TRANSPORT_ERROR, None, True, "read timeout", False),
        ),
    ],
)
def test_constructors(built: Outcome, expected: Outcome) -> None:
    assert built == expected


def test_verdict_values() -> None:
    assert {verdict.name: verdict.value for verdict in Verdict} == {
        "OK": "ok",
        "RATE_LIMITED": "rate_limited",
        "REVOKED": "revoked",
        "CLIENT_ERROR": "client_error",
        "SERVER_ERROR": "server_error",
        "TRANSPORT_ERROR": "transport_error",
    }


def test_integer_cooldown_is_stored_as_float() -> None:
    cooldown = Outcome(Verdict.RATE_LIMITED, cooldown=5).cooldown
    assert (type(cooldown), cooldown) == (float, 5.0)


@pytest.mark.parametrize("cooldown", [-1, -0.001, math.nan, math.inf, -math.inf])
def test_bad_cooldown_values(cooldown: float) -> None:
    with pytest.raises(ValueError, match=r"Outcome cooldown must be finite and >= 0, got "):
        Outcome(Verdict.RATE_LIMITED, cooldown=cooldown)


@pytest.mark.parametrize(
    ("cooldown", "kind"), [("5", "str"), (True, "bool"), ([1], "list"), (1j, "complex")]
)
def test_bad_cooldown_types(cooldown: object, kind: str) -> None:
    with pytest.raises(TypeError, match=rf"Outcome cooldown must be .* or None, not {kind}$"):
        Outcome(Verdict.OK, cooldown=cooldown)  # type: ignore[arg-type]


def test_verdict_must_be_a_verdict() -> None:
    with pytest.raises(TypeError, match=r"Outcome verdict must be a Verdict, not 'ok'$"):
        Outcome("ok")  # type: ignore[arg-type]


def test_outcome_is_frozen() -> None:
    outcome = Outcome.ok()
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.cooldown = 1.0  # type: ignore[misc]


infos = st.builds(
    RateLimitInfo,
    limit=st.none() | st.floats(0, 1e9),
    remaining=st.none() | st.just(0.0) | st.floats(0, 1e9),
    reset_after=st.none() | st.floats(0, 1e7),
    retry_after=st.none() | st.floats(0, 1e7),
)


RETRIED = {Verdict.RATE_LIMITED, Verdict.REVOKED, Verdict.SERVER_ERROR}


@given(st.integers(100, 999), infos)
def test_classify_invariants(status: int, info: RateLimitInfo) -> None:
    outcome = classify(status, info)
    assert outcome.cooldown is None or (math.isfinite(outcome.cooldown) and outcome.cooldown >= 0)
    assert outcome.retry is (outcome.verdict in RETRIED)
    assert outcome.before_server_acted is (outcome.verdict in RETRIED - {Verdict.SERVER_ERROR})
    assert (outcome.verdict is Verdict.OK) is (status < 400)
    assert (outcome.verdict is Verdict.SERVER_ERROR) is (status >= 500)
    if outcome.verdict is Verdict.OK:
        assert outcome.reason is None
    else:
        assert outcome.reason is not None
        assert outcome.reason.startswith(f"HTTP {status}")
