"""The redirect rules of ``pool.request`` (``_core.redirect``): which redirects are
followed with which method and body, what goes to another origin, and when the HTTP
layer follows redirects itself rather than leave them to aiohttp."""

from __future__ import annotations

import itertools

import pytest

from aurora_async._core.redirect import (
    CREDENTIAL_HEADERS,
    REDIRECT_STATUSES,
    Hop,
    carried,
    dropped_headers,
    follow_ourselves,
    is_redirect,
    next_hop,
)

HOP_TABLE = [
    # not redirects
    pytest.param(200, "/next", "GET", True, None, id="200"),
    pytest.param(304, "/next", "GET", True, None, id="304-not-a-redirect"),
    pytest.param(300, "/next", "GET", True, None, id="300-not-followed"),
    pytest.param(301, None, "GET", True, None, id="no-location"),
    pytest.param(302, "", "GET", True, None, id="empty-location"),
    # same method, same body: only if the body can be sent again
    pytest.param(301, "/n", "GET", True, Hop("/n", "GET", False), id="301-get"),
    pytest.param(301, "/n", "GET", False, None, id="301-get-spent-body"),
    pytest.param(302, "/n", "PUT", True, Hop("/n", "PUT", False), id="302-put"),
    pytest.param(302, "/n", "PUT", False, None, id="302-put-spent-body"),
    pytest.param(307, "/n", "POST", True, Hop("/n", "POST", False), id="307-post"),
    pytest.param(307, "/n", "POST", False, None, id="307-post-spent-body"),
    pytest.param(308, "/n", "DELETE", True, Hop("/n", "DELETE", False), id="308-delete"),
    pytest.param(308, "/n", "PATCH", False, None, id="308-patch-spent-body"),
    pytest.param(303, "/n", "HEAD", True, Hop("/n", "HEAD", False), id="303-head"),
    pytest.param(303, "/n", "HEAD", False, None, id="303-head-spent-body"),
    # on as a GET without the body (so a spent body does not matter)
    pytest.param(301, "/n", "POST", False, Hop("/n", "GET", True), id="301-post"),
    pytest.param(302, "/n", "POST", True, Hop("/n", "GET", True), id="302-post"),
    pytest.param(303, "/n", "GET", False, Hop("/n", "GET", True), id="303-get"),
    pytest.param(303, "/n", "PUT", False, Hop("/n", "GET", True), id="303-put"),
    pytest.param(303, "/n", "POST", True, Hop("/n", "GET", True), id="303-post"),
]


@pytest.mark.parametrize(("status", "location", "method", "replayable", "expected"), HOP_TABLE)
def test_the_hop_table(
    status: int, location: str | None, method: str, replayable: bool, expected: Hop | None
) -> None:
    assert next_hop(status, location, method, replayable=replayable) == expected


def test_redirect_statuses() -> None:
    assert frozenset({301, 302, 303, 307, 308}) == REDIRECT_STATUSES
    assert [s for s in range(100, 600) if is_redirect(s, "/x")] == [301, 302, 303, 307, 308]
    assert not is_redirect(301, None)
    assert not is_redirect(301, "")


KWARGS = {
    "data": b"body",
    "json": None,
    "auth": "basic-auth",
    "cookies": {"c": "1"},
    "ssl": False,
    "allow_redirects": False,
}


@pytest.mark.parametrize(
    ("drop_body", "same_origin", "kept"),
    [
        (False, True, ["data", "json", "auth", "cookies", "ssl", "allow_redirects"]),
        (True, True, ["auth", "cookies", "ssl", "allow_redirects"]),
        (False, False, ["data", "json", "ssl", "allow_redirects"]),
        (True, False, ["ssl", "allow_redirects"]),
    ],
)
def test_what_goes_along_on_a_hop(drop_body: bool, same_origin: bool, kept: list[str]) -> None:
    got = carried(KWARGS, drop_body=drop_body, same_origin=same_origin)
    assert list(got) == kept
    assert all(got[k] is KWARGS[k] for k in kept)
    assert got is not KWARGS


def test_headers_never_sent_to_another_origin() -> None:
    assert CREDENTIAL_HEADERS == ("Authorization", "Cookie", "Proxy-Authorization")
    assert dropped_headers({}) == CREDENTIAL_HEADERS
    assert dropped_headers(["X-API-Key"]) == (*CREDENTIAL_HEADERS, "X-API-Key")
    assert dropped_headers({"X-Token": "Token t"}) == (*CREDENTIAL_HEADERS, "X-Token")


FOLLOW_TABLE = [
    # (token in Authorization, replayable, cookies=, credentials in headers, allow) -> ours
    pytest.param(True, True, False, False, True, False, id="default-bearer: aiohttp"),
    pytest.param(False, True, False, False, True, True, id="other-auth"),
    pytest.param(True, False, False, False, True, True, id="spent-body"),
    pytest.param(True, True, True, False, True, True, id="cookies-argument"),
    pytest.param(True, True, False, True, True, True, id="cookie-header"),
    pytest.param(False, True, False, False, False, False, id="no-redirects-wanted"),
    pytest.param(True, False, True, True, False, False, id="no-redirects-whatever-else"),
]


@pytest.mark.parametrize(
    ("in_authorization", "replayable", "cookies", "credentials", "allow", "expected"),
    FOLLOW_TABLE,
)
def test_who_follows_redirects(
    in_authorization: bool,
    replayable: bool,
    cookies: bool,
    credentials: bool,
    allow: bool,
    expected: bool,
) -> None:
    got = follow_ourselves(
        token_in_authorization=in_authorization,
        replayable=replayable,
        caller_cookies=cookies,
        caller_headers=credentials,
        caller_credentials=bool,
        allow_redirects=allow,
    )
    assert got is expected


@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=5)))
def test_the_callers_headers_are_read_only_when_nothing_else_decides(
    flags: tuple[bool, bool, bool, bool, bool],
) -> None:
    in_authorization, replayable, cookies, credentials, allow = flags
    asked: list[bool] = []
    headers = {"Cookie": "c=1"} if credentials else {}

    def read_headers(given: dict[str, str]) -> bool:
        assert given is headers
        asked.append(True)
        return bool(given)

    got = follow_ourselves(
        token_in_authorization=in_authorization,
        replayable=replayable,
        caller_cookies=cookies,
        caller_headers=headers,
        caller_credentials=read_headers,
        allow_redirects=allow,
    )
    undecided = in_authorization and replayable and not cookies
    assert asked == ([True] if undecided else [])
    assert got is (allow and (not undecided or credentials))
