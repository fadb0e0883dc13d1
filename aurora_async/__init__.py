"""aurora_async: share a pool of rate-limited API tokens across many coroutines."""

from ._core.limits import Limit
from ._core.scheduler import TokenState
from ._core.stats import PoolStats, TokenStats
from ._core.tokens import Token
from ._errors import (
    AuroraError,
    BackendUnavailable,
    LeaseTimeout,
    NoTokensAvailable,
    PoolClosed,
    RequestFailed,
    TokenFileError,
)
from ._pool.lease import Lease
from ._pool.pool import TokenPool

__all__ = [
    "AuroraError",
    "BackendUnavailable",
    "Lease",
    "LeaseTimeout",
    "Limit",
    "NoTokensAvailable",
    "PoolClosed",
    "PoolStats",
    "RequestFailed",
    "Token",
    "TokenFileError",
    "TokenPool",
    "TokenState",
    "TokenStats",
]
