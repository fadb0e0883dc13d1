"""The contract between ``TokenPool`` and a shared-state backend (``RedisBackend``).

In memory (no backend), the pool's own scheduler decides every lease. With a backend,
the pool keeps its token slots, names, counters and per-process in-flight caps, and asks
the backend *which token* may fire and *when*: the backend owns the limiter state that
every process shares, and its own local queue of waiters (served first come, first
served, woken by one timer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._pool.lease import Lease
    from ._pool.pool import TokenPool

#: The pool's record of one token (``aurora_async._core.scheduler.Slot``): its masked
#: ``name``, ``token``, counters and local state. Internal: backends ship with the package.
Slot = Any


@runtime_checkable
class Backend(Protocol):
    """What the pool calls on its backend. Every method but ``acquire`` and ``aclose``
    is synchronous: it may start I/O in the background, but never blocks the caller."""

    def bind(self, pool: TokenPool) -> None:
        """Called once by the pool's constructor, after its tokens are in place."""

    async def acquire(self, lease: Lease) -> None:
        """Grant ``lease`` (set ``lease.slot``, ``granted_at``, ``enqueued_at`` and mark
        the slot's ``in_flight`` and ``leases``) or raise ``LeaseTimeout``,
        ``NoTokensAvailable`` or ``PoolClosed``; cancel-safe."""

    def released(self, slot: Slot, outcome: str) -> None:
        """A lease of ``slot`` ended with ``outcome`` ("ok", "failed", "client_error",
        "rate_limited", "revoked"); the pool has updated the slot's counters."""

    def cooled(self, slot: Slot, seconds: float, spent: bool = False) -> None:
        """Every process should keep ``slot`` from firing for ``seconds``. ``spent``: the
        server said the token's quota is used up (the pool filled the windows whose
        period is no longer than the cooldown, or the shortest one, to all but one unit
        as of the cooldown's end); do the same to the shared state."""

    @property
    def waiting(self) -> int:
        """Leases of this process waiting for the backend."""

    def disabled(self, slot: Slot, reason: str) -> None:
        """Every process should stop using ``slot``."""

    def enabled(self, slot: Slot) -> None:
        """Every process may use ``slot`` again."""

    def tokens_changed(self) -> None:
        """The pool's token set changed (a reload): sync the shared membership."""

    async def aclose(self) -> None:
        """Stop background work and close connections the backend owns."""
