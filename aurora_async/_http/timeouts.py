"""aiohttp's ``timeout`` argument of ``pool.request``, bounded by the request's deadline."""

from __future__ import annotations

import math
from typing import Any

import aiohttp

__all__ = ["UNSET", "bounded", "checked"]

#: ``timeout`` not given: aiohttp's default applies.
UNSET: Any = object()
_NONE: dict[str, Any] = {}  # shared, never written: no timeout argument at all


def checked(user: Any) -> Any:
    """The ``timeout`` argument as given: a ``ClientTimeout``, a number (a total) or
    ``None`` (no timeout at all); left out, it stays :data:`UNSET`."""
    if user is UNSET or isinstance(user, aiohttp.ClientTimeout):
        return user
    if user is None:
        return aiohttp.ClientTimeout(total=None)
    if isinstance(user, bool) or not isinstance(user, int | float):
        raise TypeError(f"timeout must be aiohttp.ClientTimeout, a number or None, not {user!r}")
    return aiohttp.ClientTimeout(total=float(user))


def bounded(user: Any, deadline: float, now: float) -> dict[str, Any]:
    """The keyword arguments for aiohttp: the user's timeout (from :func:`checked`),
    bounded by what is left of the overall ``deadline`` (loop time; ``inf``: none)."""
    if deadline == math.inf:
        return _NONE if user is UNSET else {"timeout": user}
    left = max(0.001, deadline - now)
    if user is UNSET:
        return {"timeout": aiohttp.ClientTimeout(total=left)}
    total = left if user.total is None else min(user.total, left)
    timeout = aiohttp.ClientTimeout(
        total=total,
        connect=user.connect,
        sock_read=user.sock_read,
        sock_connect=user.sock_connect,
        ceil_threshold=user.ceil_threshold,
    )
    return {"timeout": timeout}
