"""Settling a request's lease from its answer: ``pool.request(..., settle=fn)``, and a
stream's from the usage it reported: ``pool.stream(..., settle=usage.StreamUsage(...))``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..usage import StreamUsage

if TYPE_CHECKING:
    import aiohttp

    from .._pool.lease import Lease
    from .options import SettleFunction


async def settle_from(settle: SettleFunction, resp: aiohttp.ClientResponse, lease: Lease) -> None:
    """Ask ``settle`` what the answer cost and settle ``lease`` with it (its lease has
    ended: a settle after the end is what ``Lease.settle`` allows). ``None`` or an
    empty mapping keeps the reservation; anything else but a mapping is a ``TypeError``
    naming what came back (not its value: it may echo the answer)."""
    costs = settle(resp)
    if inspect.isawaitable(costs):
        costs = await costs
    if costs is None:
        return
    if not isinstance(costs, Mapping):
        raise TypeError(
            f"settle= must return a mapping of resource to units (or None), "
            f"not {type(costs).__name__}"
        )
    if costs:
        lease.settle(costs)


def stream_meter(kwargs: dict[str, Any]) -> StreamUsage | None:
    """``pool.stream``'s ``settle=``, taken out of ``kwargs``: the
    :class:`~aurora_async.usage.StreamUsage` the caller feeds as the body is read (the
    pool settles the lease from it when the block ends). A function there (it would need
    the whole answer, which the caller reads) is a ``TypeError`` saying what to pass."""
    if "settle" not in kwargs:
        return None
    meter = kwargs.pop("settle")
    if meter is None or isinstance(meter, StreamUsage):
        return meter
    raise TypeError(
        "pool.stream's settle= takes a usage.StreamUsage that you feed as you read the body "
        "(async for chunk in meter.chunks(resp)); a function of the whole answer, "
        f"such as usage.openai_response, is for pool.request (got {type(meter).__name__})"
    )


def settle_stream(meter: StreamUsage, lease: Lease) -> None:
    """At the end of a stream's block: settle ``lease`` with what the stream said it
    used. A stream that said nothing (cut off, or no usage asked for) keeps its
    reservation: the safe side."""
    meter.end()
    used = meter.usage
    if used:
        lease.settle(used)
