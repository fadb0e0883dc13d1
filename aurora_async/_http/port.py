"""``PoolPort``: every call the HTTP layer makes into the pool, in one place.

Nothing else in ``aurora_async._http`` touches the pool or its leases' internals: it goes
through the pool core's internal API (``aurora_async._pool.core.PoolCore``), a lease's
public methods, and ``account_response`` (the HTTP layer's report: the same outcome
path a lease's own report takes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

from .._pool.core import PoolCore
from .._pool.lease import Lease, RetryLease, lease_slot
from .._pool.responses import account_levels, account_response, calendar_reset

if TYPE_CHECKING:
    from .._core.headers import RateLimitInfo
    from .._core.policy import Outcome
    from .._core.scheduler import Slot
    from .._core.vendor_headers import ResourceReading

__all__ = ["PoolPort"]


class PoolPort:
    """The pool, as the HTTP layer sees it."""

    __slots__ = ("_core",)

    def __init__(self, core: PoolCore) -> None:
        self._core = core

    def acquire(self, cost: float, wait: float | None, avoid: Slot | None) -> Awaitable[Lease]:
        """A lease of ``cost``, waiting at most ``wait`` seconds (``None``: no bound);
        with ``avoid``, on another token than that one if any can fire now. Ended by
        :meth:`release` on every path."""
        if avoid is None:
            return Lease(self._core, cost, wait).__aenter__()
        return RetryLease(self._core, cost, wait, avoid).__aenter__()

    def first_lease(self) -> Callable[[float, float | None], Lease]:
        """A maker of first attempts' leases, ``first_lease()(cost, wait).__aenter__()``:
        :meth:`acquire` with no token to avoid, with no frame of ours (a partial of the
        lease's class) on every request. Ended by :meth:`release` on every path."""
        return partial(Lease, self._core)

    @staticmethod
    def slot(lease: Lease) -> Slot | None:
        """The lease's token, for :meth:`acquire` to avoid on the next attempt."""
        return lease_slot(lease)

    @staticmethod
    def proven(lease: Lease) -> bool:
        """Whether the lease's token had served a call (a 401 from one that never did
        is most likely the token's fault, not the request's)."""
        slot = lease_slot(lease)
        return slot is not None and slot.proven

    @staticmethod
    def token(lease: Lease) -> str:
        """The secret, to put into the request (and nowhere else)."""
        return lease.token

    @staticmethod
    def name(lease: Lease) -> str:
        """The token's masked name, for logs and error messages."""
        return lease.name

    # A lease's own methods, not wrappers of them: no frame of ours around each call.
    succeeded = staticmethod(Lease.succeeded)
    failed = staticmethod(Lease.failed)
    #: End the lease (on every path: see ``client``).
    release = staticmethod(Lease.release)

    def account(self, lease: Lease, outcome: Outcome, info: RateLimitInfo, slack: float) -> None:
        """What a response from the token's origin means for the lease's token."""
        account_response(self._core, lease, outcome, info, slack)

    def server_levels(self, lease: Lease, readings: Sequence[ResourceReading]) -> None:
        """What the API's own headers say is left of each resource (OpenAI, Anthropic,
        GitHub families): the lease's token counts at least that much as used."""
        account_levels(self._core, lease, readings)

    def calendar_reset(self, lease: Lease, resource: str | None) -> float | None:
        """Seconds until the lease's token's declared calendar quota (of ``resource``)
        resets; ``None`` when it declared none."""
        return calendar_reset(self._core, lease, resource)

    def redact(self, text: str, lease: Lease | None = None) -> str:
        """``text`` with every token secret masked (the lease's own too, even if a reload
        has dropped it from the pool meanwhile)."""
        also = () if lease is None else ((lease.token, lease.name),)
        return self._core.redact(text, *also)
