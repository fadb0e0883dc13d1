"""Where a request carries its token, and reading it out (bearer, header or query)."""

from __future__ import annotations

import re
from collections.abc import Container
from typing import Final, Literal

from aiohttp import web

AuthMode = Literal["bearer", "header", "query"]

#: The header or query parameter each mode reads by default.
AUTH_NAMES: Final[dict[str, str]] = {
    "bearer": "Authorization",
    "header": "X-API-Key",
    "query": "api_key",
}
_TOKEN_SHAPE: Final = re.compile(r"[^\s\x00-\x1f]+")  # what Token() accepts


def valid(secret: str) -> bool:
    """Whether ``secret`` could be a token at all (non-empty, no white space or controls)."""
    return _TOKEN_SHAPE.fullmatch(secret) is not None


def credentials(
    request: web.Request, mode: AuthMode, name: str, known: Container[str]
) -> tuple[str | None, str]:
    """The token ``request`` carries, or ``None`` and why there is none.

    ``name`` is the header or query parameter; ``known`` the tokens the server knows (a
    known bearer token is taken as it is, even one Token() would refuse).
    """
    if mode == "query":
        raw = request.query.get(name)
        where = f"query parameter {name!r}"
    else:
        raw = request.headers.get(name)
        where = f"header {name!r}"
    if not raw:
        return None, f"missing credentials: send the token in the {where}"
    if mode != "bearer":
        return raw, ""
    scheme, _, secret = raw.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not (secret in known or valid(secret)):
        return None, f"malformed {where}: expected 'Bearer <token>'"
    return secret, ""
