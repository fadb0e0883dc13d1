"""When a token expires, where the token itself says so: the ``exp`` claim of a JWT.

Pure: a secret goes in, a Unix time (or ``None``) comes out; nothing is logged, raised or
verified. Only the payload segment is decoded (base64url, then JSON): the signature is
not checked, since the point is to warn before a token stops working, not to trust it.
Anything that is not a JWT with a numeric ``exp`` (an opaque API key, a JWE, a payload
that is not JSON, an ``exp`` that is a string or a bool) simply has no known expiry.

Nothing here may put the token, or a piece of it, into an exception or a log line: every
failure ends in ``None``.
"""

from __future__ import annotations

import binascii
import json
import math
import re

__all__ = ["MAX_JWT_LENGTH", "expires_in", "jwt_expiry"]

#: Longer "tokens" are not decoded (a JWT in an Authorization header is far shorter; this
#: keeps a pathological secret from costing a large decode in every ``stats()``).
MAX_JWT_LENGTH = 16384

_B64URL = re.compile(r"[A-Za-z0-9_-]+")  # unpadded, as JWTs are; ASCII only
_TO_STD = bytes.maketrans(b"-_", b"+/")


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of ``token`` as a Unix time, or ``None`` if it has none.

    ``token`` is a compact JWS (``header.payload.signature``); a ``Bearer`` prefix is
    not expected (token files hold the bare secret). Never raises, never logs.
    """
    if not isinstance(token, str) or len(token) > MAX_JWT_LENGTH or token.count(".") != 2:
        return None
    payload = token.split(".", 2)[1]
    if _B64URL.fullmatch(payload) is None:
        return None
    try:
        padded = (payload + "=" * (-len(payload) % 4)).encode("ascii")
        raw = binascii.a2b_base64(padded.translate(_TO_STD), strict_mode=True)
        claims = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # binascii.Error is a ValueError
        return None
    if not isinstance(claims, dict):
        return None
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    try:
        value = float(exp)
    except OverflowError:  # an int too large for a float
        return None
    return value if math.isfinite(value) else None


def expires_in(token: str, now: float) -> float | None:
    """Seconds from the Unix time ``now`` until ``token`` expires (negative once it has),
    or ``None`` when its expiry is not known."""
    exp = jwt_expiry(token)
    return None if exp is None else exp - now
