"""Which redirects ``pool.request`` follows itself, and what goes along: the redirect rules.

Pure: statuses, methods and argument names go in, decisions come out; parsing and
joining URLs, and sending, are the HTTP shell's.

aiohttp drops ``Authorization`` when a redirect leaves the origin, but no other header.
So unless the token travels in ``Authorization`` and nothing else of the caller's needs
guarding, the shell follows redirects itself (:func:`follow_ourselves`), one hop at a
time (:func:`next_hop`), with these rules:

* As aiohttp and browsers do: a 303 (but a HEAD's), or a POST's 301 or 302, goes on as a
  GET without the body; any other redirect repeats the method and the body, and is not
  followed when the body cannot be sent twice (the redirect itself is returned).
* The token, the caller's credentials (:data:`CREDENTIAL_HEADERS`, the auth's own header
  names, :data:`CREDENTIAL_ARGUMENTS`) and the auth's query parameters go only to the
  origin the request was meant for (:func:`carried`, :func:`dropped_headers`).
* An answer that came from another origin says nothing of the token's limits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "BODY_ARGUMENTS",
    "CREDENTIAL_ARGUMENTS",
    "CREDENTIAL_HEADERS",
    "REDIRECT_STATUSES",
    "Hop",
    "carried",
    "dropped_headers",
    "follow_ourselves",
    "is_redirect",
    "next_hop",
]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Request headers with credentials of the caller's: never sent to another origin.
CREDENTIAL_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")
#: ... and the same as aiohttp arguments.
CREDENTIAL_ARGUMENTS = frozenset({"auth", "cookies"})
#: The aiohttp arguments that make the request's body.
BODY_ARGUMENTS = frozenset({"data", "json"})

_V = TypeVar("_V")
_H = TypeVar("_H")


@dataclass(frozen=True, slots=True)
class Hop:
    """Follow a redirect to ``location`` with ``method``; ``drop_body``: without the
    request's body."""

    location: str
    method: str
    drop_body: bool


def is_redirect(status: int, location: str | None) -> bool:
    """A redirect status with a non-empty ``Location``."""
    return status in REDIRECT_STATUSES and bool(location)


def next_hop(status: int, location: str | None, method: str, *, replayable: bool) -> Hop | None:
    """How to follow a response with ``status`` and ``location`` to a request with
    ``method`` (upper case), or ``None``: it is the final response (not a redirect, or
    one that would send again a body that cannot be sent twice)."""
    if location is None or not is_redirect(status, location):
        return None
    drop_body = (status == 303 and method != "HEAD") or (status in {301, 302} and method == "POST")
    if drop_body:
        return Hop(location, "GET", True)
    return Hop(location, method, False) if replayable else None


def carried(kwargs: Mapping[str, _V], *, drop_body: bool, same_origin: bool) -> dict[str, _V]:
    """The request's other aiohttp arguments that go along on a hop: the body only if
    not dropped, ``auth=`` and ``cookies=`` only to the same origin."""
    dropped = (BODY_ARGUMENTS if drop_body else frozenset()) | (
        frozenset() if same_origin else CREDENTIAL_ARGUMENTS
    )
    return {k: v for k, v in kwargs.items() if k not in dropped}


def dropped_headers(auth_headers: Iterable[str]) -> tuple[str, ...]:
    """Header names never sent to another origin: the caller's credentials and those
    the auth put the token in."""
    return (*CREDENTIAL_HEADERS, *auth_headers)


def follow_ourselves(
    *,
    token_in_authorization: bool,
    replayable: bool,
    caller_cookies: bool,
    caller_headers: _H,
    caller_credentials: Callable[[_H], bool],
    allow_redirects: bool,
) -> bool:
    """Whether the shell follows redirects itself rather than leave them to aiohttp,
    which would send the token elsewhere if it is not in ``Authorization``, re-send (or
    fail on) a spent body on a 307, and before 3.14 kept a caller's ``cookies=`` and
    ``Cookie`` or ``Proxy-Authorization`` headers on a redirect to another origin. Not
    at all when the caller asked for no redirects. ``caller_credentials(caller_headers)``
    (whether the caller's headers hold a cookie or proxy credentials) is asked only when
    the rest leaves the question open: the function and the headers are passed apart, so
    no closure is built per request."""
    needed = (
        not token_in_authorization
        or not replayable
        or caller_cookies
        or caller_credentials(caller_headers)
    )
    return needed and allow_redirects
