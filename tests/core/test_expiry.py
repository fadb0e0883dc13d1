"""Reading a JWT's ``exp`` claim without verifying it, and never exposing the token."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aurora_async._core.expiry import MAX_JWT_LENGTH, expires_in, jwt_expiry


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(payload: object, *, raw: bytes | None = None) -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(raw if raw is not None else json.dumps(payload).encode())
    return f"{header}.{body}.c2lnbmF0dXJl"


def test_exp_is_read_from_the_payload() -> None:
    assert jwt_expiry(jwt({"sub": "me", "exp": 1_900_000_000})) == 1_900_000_000.0
    assert jwt_expiry(jwt({"exp": 1_900_000_000.5})) == 1_900_000_000.5


def test_expires_in_counts_from_now_and_goes_negative() -> None:
    token = jwt({"exp": 1000})
    assert expires_in(token, now=400.0) == 600.0
    assert expires_in(token, now=1500.0) == -500.0
    assert expires_in("sk-plain-api-key", now=0.0) is None


def test_payloads_needing_every_padding_length_decode() -> None:
    for extra in range(4):  # payload lengths that need 0, 1 or 2 "=" of padding
        token = jwt({"exp": 42, "x": "y" * extra})
        assert jwt_expiry(token) == 42.0


def test_url_safe_alphabet_is_used() -> None:
    # "???" and ">>>" encode with "_" and "-" in base64url (and "/" "+" in standard).
    token = jwt({"exp": 7, "p": "???>>>"})
    assert "-" in token.split(".")[1] or "_" in token.split(".")[1]
    assert jwt_expiry(token) == 7.0


@pytest.mark.parametrize(
    "token",
    [
        "sk-live-0123456789abcdef",  # an opaque API key
        "a.b",  # two segments
        "a.b.c.d.e",  # a JWE has five; its payload is encrypted
        "eyJhbGciOiJIUzI1NiJ9..sig",  # empty payload
        "h.!!!!.s",  # not base64url
        "h.a+b/.s",  # standard base64, not url-safe
        "h.A.s",  # impossible length (1 mod 4)
        jwt(None, raw=b"\xff\xfe not utf-8"),
        jwt(None, raw=b"not json"),
        jwt([1, 2, 3]),  # JSON, not an object
        jwt({"sub": "me"}),  # no exp
        jwt({"exp": "1900000000"}),  # a string
        jwt({"exp": True}),  # a bool is not a time
        jwt({"exp": None}),
        jwt(None, raw=b'{"exp": 1e999}'),  # infinite
        jwt(None, raw=b'{"exp": NaN}'),
        jwt({"exp": 10**400}),  # too large for a float
        jwt(None, raw=b"[" * 10_000),  # nested deeper than the JSON parser recurses
    ],
)
def test_anything_else_has_no_known_expiry(token: str) -> None:
    assert jwt_expiry(token) is None


def test_oversized_tokens_are_not_decoded() -> None:
    padding = "x" * MAX_JWT_LENGTH
    assert jwt_expiry(jwt({"exp": 5, "pad": padding})) is None


def test_non_strings_have_no_expiry() -> None:
    assert jwt_expiry(12345) is None  # type: ignore[arg-type]


@given(st.text(max_size=200))
def test_never_raises_on_any_text(text: str) -> None:
    assert jwt_expiry(text) is None or isinstance(jwt_expiry(text), float)


@given(st.binary(max_size=200))
def test_never_raises_on_any_payload(payload: bytes) -> None:
    result = jwt_expiry(jwt(None, raw=payload))
    assert result is None or isinstance(result, float)


@given(st.integers(min_value=0, max_value=2**53))
def test_any_integer_exp_round_trips(exp: int) -> None:
    assert jwt_expiry(jwt({"exp": exp})) == float(exp)
