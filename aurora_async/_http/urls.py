"""URLs and query parameters of ``pool.request``: the target (checked once, before any
token is leased), a redirect's ``Location``, the auth's parameters in and out."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import aiohttp
from multidict import CIMultiDict, MultiDict
from yarl import URL

__all__ = [
    "has_credentials",
    "in_session",
    "left_origin",
    "location_url",
    "merged",
    "parsed",
    "query",
    "resolved",
    "without_params",
]

#: A relative URL may begin with a path segment holding a colon ("items:batchGet"), so
#: only these are taken as absolute URLs, never joined with base_url.
_ABSOLUTE = re.compile(r"(?:[a-z][a-z0-9+.\-]*://|https?:)", re.IGNORECASE)
#: Characters no host name has (yarl lets some through).
_BAD_HOST = re.compile(r"[\x00-\x20\x7f<>\"{}|\\^`]")
_SCHEMES = frozenset({"", "http", "https"})  # of a Location (empty: relative)


def resolved(url: str, base: str | None, redact: Callable[[str], str]) -> URL:
    """The URL to send to, parsed once (aiohttp takes it as it is), or a ``ValueError``
    saying what is wrong with it (through ``redact``: a token pasted into the URL by hand
    is masked too). ``base`` is the pool's ``base_url`` (without a trailing slash): a
    relative URL is joined with it; without one it stays relative, for
    :func:`in_session` to complete. The answer depends on ``url`` and ``base`` alone, so
    a client may keep it."""
    full = url
    if (
        base is not None
        and not url.startswith(("http://", "https://"))
        and not _ABSOLUTE.match(url)
    ):
        full = f"{base}/{url.lstrip('/')}"
    try:
        return parsed(full)
    except ValueError as exc:
        joined = f" (joined with base_url: {full!r})" if full != url else ""
        raise ValueError(redact(f"{exc}: {url!r}{joined}")) from None


def in_session(relative: URL, url: str, session: object, redact: Callable[[str], str]) -> URL:
    """A relative URL (``url`` as given) and no base_url of the pool: a borrowed
    session's own base_url completes it (joined here as aiohttp would), else it names no
    host to send to (``ValueError``)."""
    session_base = getattr(session, "_base_url", None)
    if not isinstance(session_base, URL):
        raise ValueError(
            redact(f"not an absolute URL, and there is no base_url to join it with: {url!r}")
        )
    return session_base.join(relative)


@functools.lru_cache(maxsize=1024)
def parsed(url: str) -> URL:
    """``url`` parsed, or a ``ValueError`` saying why no request could go there. A
    relative URL (no scheme, no host) is returned as it is: the caller decides. Cached:
    an ordinary URL is parsed once however often it is requested."""
    try:
        result = URL(url)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    scheme = result.scheme
    host = result.raw_host
    if not scheme and not host:
        return result
    if scheme not in {"http", "https"}:
        what = scheme or "a URL without a scheme"
        raise ValueError(f"pool.request sends http(s) requests only, not {what}")
    if not host:
        raise ValueError("the URL has no host")
    if _BAD_HOST.search(host):
        raise ValueError(f"the URL's host {host!r} is not a host name")
    if result.explicit_port == 0:
        raise ValueError("the URL's port is 0 (valid ports are 1 to 65535)")
    return result


def location_url(base: URL, location: str) -> URL:
    """A redirect's ``Location`` joined with the URL it answered, or ``aiohttp.InvalidURL``
    (a ``ClientError``, as aiohttp raises) when it names no http(s) URL with a host
    (``"https:/x"`` from an http page, say)."""
    try:
        hop: URL | None = URL(location)
    except ValueError:
        hop = None
    if hop is None or hop.scheme not in _SCHEMES:
        raise aiohttp.InvalidURL(location)
    joined = base.join(hop)
    if not joined.absolute or not joined.raw_host:
        raise aiohttp.InvalidURL(location)
    return joined


def without_params(url: URL, keys: frozenset[str], token: str) -> URL:
    """``url`` without the query parameters named ``keys`` or holding ``token``."""
    params = url.query
    if not params:
        return url
    kept = [(k, v) for k, v in params.items() if k not in keys and v != token]
    return url if len(kept) == len(params) else url.with_query(kept)


def left_origin(origin_url: URL, resp: aiohttp.ClientResponse) -> bool:
    """Whether any hop of the redirects aiohttp followed was on another origin."""
    origin = origin_url.origin()
    return resp.url.origin() != origin or any(h.url.origin() != origin for h in resp.history)


def has_credentials(headers: Any) -> bool:
    """Whether the caller's own headers carry a cookie or proxy credentials."""
    if not headers:
        return False
    given = CIMultiDict(headers)  # a mapping or (name, value) pairs
    return "Cookie" in given or "Proxy-Authorization" in given


def query(params: Any) -> Any:
    """Query parameters in any form aiohttp takes (mapping, pairs, or a query string)."""
    if params is None:
        return ()
    if isinstance(params, str):
        return URL("?" + params.lstrip("?")).query
    return params


def merged(params_in: Any, auth_params: MultiDict[str]) -> Any:
    """The caller's query parameters and the auth's, or ``None`` when there are none."""
    if not params_in:
        return auth_params or None
    result: MultiDict[str] = MultiDict(params_in)
    result.extend(auth_params)
    return result
