"""The public API as users write it, type-checked by ``mypy --strict`` (``dev.py test``).

Never run and never collected by pytest (the name does not start with ``test_``): it
only has to type-check, so a signature that drifts from the documented use fails CI.
"""

from __future__ import annotations

from pathlib import Path

from aurora_async import (
    AuroraError,
    BackendUnavailable,
    Lease,
    LeaseTimeout,
    Limit,
    NoTokensAvailable,
    PoolClosed,
    PoolStats,
    RequestFailed,
    Token,
    TokenFileError,
    TokenPool,
    TokenState,
    TokenStats,
)

limits: list[Limit] = [Limit(3, per=1), Limit(5000, per=3600), Limit(rate=10, per=1.0, burst=20)]
sliding: Limit = Limit.sliding_window(100, per=60, burst=2)
per_second: float = limits[0].per_second
token: Token = Token("tok-b-0123456789", limits=limits, max_in_flight=2)
masked: str = token.name
documented = Limit(rate=10, per=1.0, burst=None)  # the design's spelling: burst = rate
documented_burst: float = documented.burst

ERRORS: tuple[type[AuroraError], ...] = (
    TokenFileError,
    NoTokensAvailable,
    LeaseTimeout,
    PoolClosed,
    RequestFailed,
    BackendUnavailable,
)
timeout_error: type[TimeoutError] = LeaseTimeout


def use(*values: object) -> None:
    """Marks values as used (the annotations above them are the point)."""


def make_pool() -> TokenPool:
    return TokenPool(
        ["tok-a-0123456789", token],
        limits=Limit(rate=10, per=1.0),
        max_in_flight=None,
        trial_in_flight=1,
        low_water=0.25,
        backoff=(1.0, 60.0),
    )


def from_a_file(path: Path) -> TokenPool:
    return TokenPool.from_file(path, limits=[Limit(3), Limit(5000, per=3600)], watch=False)


async def crawl(pool: TokenPool) -> PoolStats:
    async with pool:
        async with pool.lease(cost=1, timeout=None) as lease:
            secret: str = lease.token
            name: str = lease.name
            use(secret, name)
            lease.rate_limited(retry_after=None)
            lease.rate_limited(retry_after=2.5)
            lease.revoked(reason=None)
            lease.revoked("401 from the API")
            lease.failed()
            lease.succeeded()
        try:
            held: Lease = await pool.acquire(cost=2, timeout=0.5)
        except LeaseTimeout as error:
            waited_too_long: TimeoutError = error
            raise waited_too_long from None
        else:
            held.release()
            done: bool = held.done
            use(done)
        pool.disable(name, "quota spent")
        pool.enable(name)
        pool.cool(name, 30.0)
        pool.replace_tokens(["tok-c-0123456789", Token("tok-d-0123456789")])
        stats: PoolStats = pool.stats()
        one: TokenStats = stats.token(name)
        state: TokenState = one.state
        counts: tuple[int, int, int, int, int] = (
            one.leases,
            one.ok,
            one.rate_limited,
            one.errors,
            one.in_flight,
        )
        cooling: float = one.cooldown_left
        reason: str | None = one.reason
        waiting: int = stats.waiting
        use(state, counts, cooling, reason, waiting)
    await pool.aclose()
    closed: bool = pool.closed
    use(closed)
    return stats
