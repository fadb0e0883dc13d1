"""``PoolPort``: every call the HTTP layer makes into the pool, in one place.

Nothing else in ``aurora_async._http`` touches the pool, its leases' internals or
``aurora_async._pool``: when the pool's internal API changes, this class is what to
repoint. What it calls today:

=============================  ===========================================================
port                           pool
=============================  ===========================================================
``acquire(cost, wait, None)``  ``pool.lease(cost, wait).__aenter__()``
``acquire(cost, wait, slot)``  ``RetryLease(pool, cost, wait, slot).__aenter__()``
``slot(lease)``                ``lease.slot``: the token the next attempt should avoid
``token(lease)``               ``lease.token``
``name(lease)``                ``lease.name``
``succeeded(lease)``           ``lease.succeeded()``
``failed(lease)``              ``lease.failed()``
``release(lease)``             ``lease.release()``
``account(lease, ...)``        ``pool._account_response(lease, outcome, info, slack)``
``redact(text)``               ``pool._redact(text)``
``redact(text, lease)``        ``pool._redact(text, (lease.token, lease.name))``
=============================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

from .._pool.lease import Lease, RetryLease

if TYPE_CHECKING:
    from .._core.headers import RateLimitInfo
    from .._core.policy import Outcome
    from .._core.scheduler import Slot

__all__ = ["Pool", "PoolPort"]


class Pool(Protocol):
    """The pool as typed here (``TokenPool``, without importing it: it imports us)."""

    def lease(self, cost: float = 1, timeout: float | None = None) -> Lease: ...


class PoolPort:
    """The pool, as the HTTP layer sees it."""

    __slots__ = ("_pool",)

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def acquire(self, cost: float, wait: float | None, avoid: Slot | None) -> Awaitable[Lease]:
        """A lease of ``cost``, waiting at most ``wait`` seconds (``None``: no bound);
        with ``avoid``, on another token than that one if any can fire now. Ended by
        :meth:`release` on every path."""
        pool = self._pool
        if avoid is None:
            return pool.lease(cost, wait).__aenter__()
        # TODO(seam): RetryLease takes the pool core; it converts a TokenPool for now.
        retry = RetryLease(pool, cost, wait, avoid)  # type: ignore[arg-type]
        return retry.__aenter__()

    @staticmethod
    def slot(lease: Lease) -> Slot | None:
        """The lease's token, for :meth:`acquire` to avoid on the next attempt."""
        return lease.slot

    @staticmethod
    def token(lease: Lease) -> str:
        """The secret, to put into the request (and nowhere else)."""
        return lease.token

    @staticmethod
    def name(lease: Lease) -> str:
        """The token's masked name, for logs and error messages."""
        return lease.name

    @staticmethod
    def succeeded(lease: Lease) -> None:
        lease.succeeded()

    @staticmethod
    def failed(lease: Lease) -> None:
        lease.failed()

    @staticmethod
    def release(lease: Lease) -> None:
        lease.release()

    # TODO(seam): the two below reach the pool's transitional shims (TokenPool sets
    # them at run time, so they are not typed).

    def account(self, lease: Lease, outcome: Outcome, info: RateLimitInfo, slack: float) -> None:
        """What a response from the token's origin means for the lease's token."""
        self._pool._account_response(lease, outcome, info, slack)  # type: ignore[attr-defined]

    def redact(self, text: str, lease: Lease | None = None) -> str:
        """``text`` with every token secret masked (the lease's own too, even if a reload
        has dropped it from the pool meanwhile)."""
        also = () if lease is None else ((lease.token, lease.name),)
        masked: str = self._pool._redact(text, *also)  # type: ignore[attr-defined]
        return masked
