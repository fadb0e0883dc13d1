"""aurora_async: share a pool of rate-limited API tokens across many coroutines."""

from ._backend import Backend
from ._core.headers import RateLimitInfo
from ._core.limits import Limit
from ._core.policy import Outcome, Verdict
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
from ._http.auth import Auth, BearerAuth, HeaderAuth, QueryAuth
from ._http.options import HttpOptions
from ._pool.lease import Lease
from ._pool.pool import TokenPool
from ._pool.reload import ReloadResult

__all__ = [
    "AuroraError",
    "Auth",
    "Backend",
    "BackendUnavailable",
    "BearerAuth",
    "HeaderAuth",
    "HttpOptions",
    "Lease",
    "LeaseTimeout",
    "Limit",
    "NoTokensAvailable",
    "Outcome",
    "PoolClosed",
    "PoolStats",
    "QueryAuth",
    "RateLimitInfo",
    "ReloadResult",
    "RequestFailed",
    "Token",
    "TokenFileError",
    "TokenPool",
    "TokenState",
    "TokenStats",
    "Verdict",
]
