"""``HttpOptions``: how ``pool.request`` talks HTTP, validated when the pool is built."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypeAlias

from .._core.policy import Outcome
from .auth import Auth, as_auth

if TYPE_CHECKING:
    import aiohttp

#: Your own outcome policy: look at a response (headers, or even the body) and say what
#: it means for the token; return ``None`` to fall back to the default table.
PolicyFunction: TypeAlias = Callable[
    ["aiohttp.ClientResponse"], "Outcome | Awaitable[Outcome | None] | None"
]
#: What a request really cost, read from its answer (body read): units per resource
#: (``{"tokens": 1234}``) to settle its lease with, or ``None`` to keep the reservation;
#: may be async. ``aurora_async.usage.openai_response`` is one.
SettleFunction: TypeAlias = Callable[
    ["aiohttp.ClientResponse"],
    "Mapping[str, float] | Awaitable[Mapping[str, float] | None] | None",
]


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """Settings of ``pool.request``; pass them as keyword arguments to ``TokenPool``.

    :param base_url: prefix for relative URLs (``"https://api.example.com/v1"``).
    :param session: an ``aiohttp.ClientSession`` to borrow (never closed by the pool);
        without one the pool creates its own on first use and closes it in ``aclose()``.
    :param auth: how the token goes out: ``BearerAuth()`` (default), ``HeaderAuth(...)``,
        ``QueryAuth(...)`` or a function ``(token, headers, params) -> None``.
    :param policy: your outcome policy (see :data:`PolicyFunction`).
    :param max_attempts: tries per request, the first included.
    :param deadline: seconds a request may take over all its attempts (``None``: no bound).
    :param retry_backoff: ``(first, cap)`` seconds to wait before retrying a 5xx or a
        connection error, doubling each time.
    :param retry_unsafe: also retry non-idempotent methods (POST, PATCH) after failures
        that may have reached the server (5xx, timeouts, dropped connections). Off by
        default: those are retried only when the failure certainly came first (429, 401,
        a refused connection).
    :param header_slack: a response saying a token has nothing left cools it until the
        stated reset only if that is more than this many seconds beyond when the token's
        own limiter would let it fire again (otherwise the limiter already paces it).
    :param connections: the owned session's connection limit (0: unlimited).
    :param settle: a function of a successful response (status below 400, its body
        read) giving the request's true cost per resource, to settle its lease with
        (see :data:`SettleFunction`; usually per request:
        ``pool.post(..., cost={"tokens": 2200}, settle=usage.openai_response)``).
        ``pool.stream`` does not apply it (the caller reads the body): pass it
        ``settle=usage.StreamUsage(...)`` and feed that as the body is read.
    """

    base_url: str | None = None
    session: aiohttp.ClientSession | None = field(default=None, compare=False)
    auth: Auth = field(default_factory=lambda: as_auth(None))
    policy: PolicyFunction | None = None
    max_attempts: int = 4
    deadline: float | None = None
    retry_backoff: tuple[float, float] = (0.05, 2.0)
    retry_unsafe: bool = False
    header_slack: float = 0.05
    connections: int = 1000
    settle: SettleFunction | None = None

    def __post_init__(self) -> None:
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        object.__setattr__(self, "auth", as_auth(self.auth))
        if self.policy is not None and not callable(self.policy):
            raise TypeError("policy must be a function of the response")
        if self.settle is not None and not callable(self.settle):
            raise TypeError("settle must be a function of the response")
        if isinstance(self.max_attempts, bool) or not (
            isinstance(self.max_attempts, int) and self.max_attempts >= 1
        ):
            raise ValueError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        if self.deadline is not None and not (self.deadline > 0 and math.isfinite(self.deadline)):
            raise ValueError(f"deadline must be None or positive seconds, got {self.deadline!r}")
        first, cap = self.retry_backoff
        if not 0 <= first <= cap or not math.isfinite(cap):
            raise ValueError("retry_backoff must be (first, cap) with 0 <= first <= cap")
        if not self.header_slack >= 0:
            raise ValueError("header_slack must be >= 0 seconds")
        if isinstance(self.connections, bool) or not (
            isinstance(self.connections, int) and self.connections >= 0
        ):
            raise ValueError(f"connections must be an int >= 0, got {self.connections!r}")

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> HttpOptions:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(
                f"TokenPool got unexpected keyword argument(s) {', '.join(unknown)}; "
                f"the HTTP options are {', '.join(sorted(names))}"
            )
        return cls(**kwargs)
