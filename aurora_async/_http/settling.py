"""Settling a request's lease from its answer: ``pool.request(..., settle=fn)``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING

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
