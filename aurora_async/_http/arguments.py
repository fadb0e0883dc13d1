"""The keyword arguments of ``pool.request`` (and ``get``, ``post``, ``stream`` ...),
sorted before any token is leased: the per-request options of the retry rules, and
aiohttp's own arguments. Anything else is a ``TypeError`` naming it (and the nearest
known name), raised at the call, so a misspelled argument costs no lease and counts no
error on any token."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from .options import HttpOptions

__all__ = ["AIOHTTP_ARGUMENTS", "PER_REQUEST", "request_options"]

#: ``HttpOptions`` a single request may set for itself, with the same meaning (see
#: ``HttpOptions``): ``max_attempts`` (tries, the first included), ``deadline`` (seconds
#: for all its attempts; ``None``: no bound), ``retry_backoff`` (``(first, cap)``) and
#: ``retry_unsafe`` (retry a non-idempotent method after failures that may have reached
#: the server); ``settle`` (read the request's true cost from its answer).
PER_REQUEST = frozenset({"deadline", "max_attempts", "retry_backoff", "retry_unsafe", "settle"})


#: ``aiohttp.ClientSession.request``'s keyword arguments (aiohttp 3.14's documented
#: ones; its public signature only says ``**kwargs``, so they are listed here). Those the
#: pool takes itself (``headers``, ``params``, ``timeout``, ``raise_for_status``,
#: ``max_redirects``) are among them.
AIOHTTP_ARGUMENTS = frozenset(
    {
        "allow_redirects",
        "auth",
        "auto_decompress",
        "chunked",
        "compress",
        "cookies",
        "data",
        "expect100",
        "fingerprint",
        "headers",
        "json",
        "max_field_size",
        "max_headers",
        "max_line_size",
        "max_redirects",
        "middlewares",
        "params",
        "proxy",
        "proxy_auth",
        "proxy_headers",
        "raise_for_status",
        "read_bufsize",
        "read_until_eof",
        "server_hostname",
        "skip_auto_headers",
        "ssl",
        "ssl_context",
        "timeout",
        "trace_request_ctx",
        "upload_tracker",
        "verify_ssl",
    }
)
_KNOWN = AIOHTTP_ARGUMENTS | PER_REQUEST


def request_options(options: HttpOptions, kwargs: dict[str, Any], where: str) -> HttpOptions:
    """The options of one request: the pool's, with the per-request ones in ``kwargs``
    (taken out of it) put over them and checked as the pool's are (``ValueError``). A
    keyword neither a per-request option nor aiohttp's is a ``TypeError`` naming it and
    the nearest known one. ``where`` names the method in messages (``pool.get``)."""
    if not kwargs:
        return options
    unknown = [k for k in kwargs if k not in _KNOWN]
    if unknown:
        raise TypeError(_unknown(where, unknown[0]))
    if PER_REQUEST.isdisjoint(kwargs):
        return options
    own = {k: kwargs.pop(k) for k in PER_REQUEST & kwargs.keys()}
    return dataclasses.replace(options, **own)


def _unknown(where: str, name: str) -> str:
    text = f"{where}() got an unexpected keyword argument {name!r}"
    near = difflib.get_close_matches(name, sorted(_KNOWN), n=1, cutoff=0.6)
    if near:
        text += f"; did you mean {near[0]!r}?"
    else:
        per = ", ".join(sorted(PER_REQUEST))
        text += f" (it takes aiohttp's request arguments and the per-request options {per})"
    return text
