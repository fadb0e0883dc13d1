"""Frozen snapshots returned by ``pool.stats()``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .scheduler import TokenState


@dataclass(frozen=True, slots=True)
class TokenStats:
    """One token, as it stood when ``pool.stats()`` was called. No secret in here."""

    name: str  #: masked name
    state: TokenState
    leases: int  #: leases granted
    ok: int  #: leases that ended well
    rate_limited: int  #: leases reported rate-limited (a 429)
    errors: int  #: leases that ended with an exception or a failure
    in_flight: int  #: leases out now
    cooldown_left: float  #: seconds until a cooldown ends (0 when not cooling)
    reason: str | None  #: why it is disabled
    limits: tuple[str, ...]  #: its effective limit windows, e.g. ("3/1s", "5000/3600s")
    units: float  #: cost units leased
    headroom: float  #: units it could take now (the least room left in any window)
    proven: bool  #: has completed a call successfully (until then: trial in-flight cap)
    last_limit: float | None = None  #: last quota a server stated for it
    last_remaining: float | None = None  #: what the server said remained
    last_reset: float | None = None  #: seconds until the server said it resets (when read)
    expires_in: float | None = None  #: seconds until the token expires, where known
    #: The server refused calls its own limiter let through: its declared limit is too
    #: high (decided at once by calibration; without it, at the last monitor sweep).
    limit_too_high: bool = False
    #: The limits it was declared with (the user's, or the library's default guess);
    #: ``limits`` are what the pool enforces now.
    declared_limits: tuple[str, ...] = ()
    #: Where ``limits`` come from: "declared", "default", "header" or "learned".
    limit_source: str = "declared"
    #: Units leased per resource other than requests (``units`` counts requests), as
    #: settled: e.g. ``{"tokens": 1_250_000}``. Empty for a token leased by requests only.
    usage: Mapping[str, float] = field(default_factory=dict)
    #: Scopes this token is cooling in (a 429 on a scoped lease), with the seconds left:
    #: e.g. ``{"search": 42.0}``. The token serves its other scopes meanwhile.
    scope_cooldowns: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PoolStats:
    """The pool as a whole."""

    #: Every token, in the pool's order (a read-only sequence; for a large pool each
    #: record is made when first read).
    tokens: Sequence[TokenStats]
    waiting: int  #: lease requests waiting in the queue
    active: int
    cooling: int
    disabled: int
    removed: int
    in_flight: int
    granted: int  #: leases granted since the pool started
    granted_per_second: float  #: over the last ten seconds or so

    def token(self, name: str) -> TokenStats:
        """The stats of the token with this masked name."""
        tokens = self.tokens
        position = getattr(tokens, "position", None)  # (the pool's records find it in C)
        try:
            if position is not None:
                index: int = position(name)
                return tokens[index]
            return next(stats for stats in tokens if stats.name == name)
        except (ValueError, StopIteration):
            raise KeyError(f"no token named {name!r} in this pool") from None
