"""aurora_async: share a pool of rate-limited API tokens across many coroutines."""

from ._backend import Backend
from ._core.calendar import Calendar
from ._core.costs import Costs
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
from ._io.statefile import StateFile
from ._io.tokenfile import read_tokens
from ._pool.health import (
    HealthChecker,
    MonitorReport,
    Probe,
    ProbeAction,
    ProbeReport,
    TokenMonitor,
)
from ._pool.lease import Lease
from ._pool.pool import TokenPool
from ._pool.reload import ReloadResult
from ._redis import RedisBackend, RedisTokenState, Reservation

__all__ = [
    "AuroraError",
    "Auth",
    "Backend",
    "BackendUnavailable",
    "BearerAuth",
    "Calendar",
    "Costs",
    "HeaderAuth",
    "HealthChecker",
    "HttpOptions",
    "Lease",
    "LeaseTimeout",
    "Limit",
    "MonitorReport",
    "NoTokensAvailable",
    "Outcome",
    "PoolClosed",
    "PoolStats",
    "Probe",
    "ProbeAction",
    "ProbeReport",
    "QueryAuth",
    "RateLimitInfo",
    "RedisBackend",
    "RedisTokenState",
    "ReloadResult",
    "RequestFailed",
    "Reservation",
    "StateFile",
    "Token",
    "TokenFileError",
    "TokenMonitor",
    "TokenPool",
    "TokenState",
    "TokenStats",
    "Verdict",
    "read_tokens",
]
