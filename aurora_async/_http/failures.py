"""Attempts that end without a usable response: each is noted (token name and what went
wrong, secrets masked), its lease ended, and the request retried or failed with
``RequestFailed`` saying why."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import aiohttp

from .. import _log
from .._core.retry import Stop
from .._errors import LeaseTimeout, NoTokensAvailable, PoolClosed, RequestFailed
from .call import TRANSPORT_AFTER, TRANSPORT_BEFORE

if TYPE_CHECKING:
    from .._pool.lease import Lease
    from .call import Call
    from .port import PoolPort

__all__ = [
    "BEFORE_SERVER",
    "LEASE_FAILURES",
    "READ_FAILURES",
    "TRANSPORT",
    "abandon",
    "failed",
    "lease_failure",
    "no_answer",
    "refused",
    "status_error",
    "status_failure",
    "unread",
]

#: Failures of the connection: retried on another token (where the method allows).
TRANSPORT = (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError)
#: ... of which these certainly happened before the server saw the request.
BEFORE_SERVER = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
#: Failures reading a response's body.
READ_FAILURES = (*TRANSPORT, aiohttp.ClientError)
#: No token for an attempt.
LEASE_FAILURES = (LeaseTimeout, NoTokensAvailable, PoolClosed)


def failed(
    port: PoolPort, call: Call, why: str, lease: Lease | None = None, status: int | None = None
) -> RequestFailed:
    """``RequestFailed`` for ``call``: its URL as the caller gave it, with every token in
    it masked (a pool token pasted into the query, say; the lease's own too)."""
    url = port.redact(call.url, lease)
    return RequestFailed(call.method, url, call.notes, why, status=status)


def lease_failure(port: PoolPort, call: Call, exc: Exception) -> Exception:
    """What to raise when no token came for a retry: the pool's error, with what this
    request tried (a timeout becomes ``RequestFailed``)."""
    if isinstance(exc, LeaseTimeout):
        return failed(port, call, "no token came free for another attempt in time")
    return type(exc)(f"{exc} (this request tried: {'; '.join(call.notes)})")


def no_answer(
    port: PoolPort, call: Call, lease: Lease, exc: BaseException, now: float
) -> float | RequestFailed:
    """A transport failure (no response): note it, end the lease, and return the pause
    before the retry, or the ``RequestFailed`` to raise if the retry rules say stop."""
    call.last = port.slot(lease)
    call.notes.append(f"{port.name(lease)}: {_describe(port, exc, lease)}")
    port.failed(lease)
    port.release(lease)
    before = isinstance(exc, BEFORE_SERVER)
    _log.info(
        "aurora.http.transport_error",
        token=port.name(lease),
        error=type(exc).__name__,
        attempt=call.attempt,
        method=call.method,
        url=port.redact(call.url, lease),
    )
    step = call.retry(TRANSPORT_BEFORE if before else TRANSPORT_AFTER, now, answered=False)
    if isinstance(step, Stop):
        return failed(port, call, _why(step, exc), lease)
    return step.pause


def refused(port: PoolPort, call: Call, lease: Lease, exc: BaseException) -> RequestFailed:
    """An aiohttp error that is not the connection's (the request itself): not retried."""
    call.notes.append(f"{port.name(lease)}: {_describe(port, exc, lease)}")
    port.failed(lease)
    port.release(lease)
    return failed(port, call, "the request was refused", lease)


def unread(
    port: PoolPort, call: Call, lease: Lease, resp: aiohttp.ClientResponse, exc: BaseException
) -> RequestFailed:
    """The final response's body could not be read (the lease is ended by the caller)."""
    call.notes.append(f"{port.name(lease)}: {_describe(port, exc, lease)}")
    port.failed(lease)
    resp.release()
    return failed(port, call, "the response body could not be read", lease)


def abandon(port: PoolPort, lease: Lease, resp: aiohttp.ClientResponse | None = None) -> None:
    """An exception of another kind (a cancellation, a bug): the response, if any, is
    released and the lease ended as failed; the exception goes on."""
    if resp is not None:
        resp.release()
    port.failed(lease)
    port.release(lease)


def status_failure(
    port: PoolPort, call: Call, lease: Lease, resp: aiohttp.ClientResponse
) -> RequestFailed:
    """``raise_for_status`` on the final response, read and accounted."""
    call.notes.append(f"{port.name(lease)}: {resp.status}")
    return status_error(resp, call.method, port.redact(call.url, lease), call.notes)


def status_error(
    resp: aiohttp.ClientResponse, method: str, url: str, notes: list[str]
) -> RequestFailed:
    """``raise_for_status``: an error status, applied after accounting (``url`` with its
    secrets masked already)."""
    return RequestFailed(
        method.upper(),
        url,
        notes,
        f"HTTP {resp.status} {resp.reason} (raise_for_status)",
        status=resp.status,
    )


def _describe(port: PoolPort, exc: BaseException, lease: Lease) -> str:
    """The exception's class and message, with any token in it masked (the lease's own
    too, even if a reload has dropped it from the pool meanwhile)."""
    text = port.redact(str(exc), lease)
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(exc).__name__}({text})" if text else type(exc).__name__


def _why(stop: Stop, exc: BaseException) -> str:
    """Why a transport failure ended the request (``Stop`` from ``_core.retry``).
    ``ONE_ATTEMPT`` is said as the usual cause, a body that cannot be sent twice."""
    name = type(exc).__name__
    if stop is Stop.ONE_ATTEMPT:
        return (
            f"{name}; the request body cannot be sent twice (a file or a stream), so it was "
            "not retried"
        )
    if stop is Stop.UNSAFE:
        return (
            f"{name} after the request may have reached the server; a non-idempotent "
            "request is not retried then (pass retry_unsafe=True to allow it)"
        )
    return f"the last attempt failed with {name}"
