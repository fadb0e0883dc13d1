"""The reserve call on the wire: its one JSON argument, and its one-string reply.

Pure text, written by hand: this is a lease's own cost on an idle worker, and
``json.dumps`` is slower. ``scripts.py`` (``RESERVE``) documents both formats.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from .._core.costs import Costs, scope_of
from .records import text
from .waiters import Ticket

US = 1_000_000
INF = math.inf

#: The status of one lease in a reply.
RESERVED, TOO_LATE, CAPPED, NO_TOKEN = 0, 1, 2, 3


class GiveBack(NamedTuple):
    """A Redis reservation to give back (its waiter left before it came due)."""

    tid: str
    #: "before after" server times per window it counts in (its scope's made ones last)
    undo: Sequence[str]
    at: str  #: the reservation's server time (µs), for the audit log
    cost: float


def cost_arg(cost: float) -> str:
    """A lease's cost as the scripts read it: a number (requests), or for a ``Costs``
    ``[requests, "scope" or "", "unit", units, ...]``."""
    if isinstance(cost, Costs):
        parts = "".join(f',"{unit}",{units!r}' for unit, units in cost.parts.items())
        return f'[{float(cost)!r},"{cost.scope or ""}"{parts}]'
    return repr(cost)


def reserve_arg(
    config: str,
    flags: int,
    gives: Iterable[GiveBack],
    caps: str,
    batch: list[Ticket],
    now: float,
    calendars: str = "",
) -> str:
    """The reserve script's argument: ``config`` (``[ttl, worker, emax, tau``), the flags,
    the give-backs, the in-flight budgets (``caps``: ``"id",n,...``), each lease's
    cost and longest wait (µs, or -1) as of ``now``, then ``calendars`` (``Calendars.arg``:
    the wall clock and the resets, if this worker has calendar windows)."""
    given = ",".join(
        f'["{g.tid}",{g.at},{float(g.cost)!r},[{",".join(g.undo)}],"{scope_of(g.cost) or ""}"]'
        for g in gives
    )
    leases = ",".join(
        f"{cost_arg(t.cost)},-1"
        if t.deadline == INF
        else f"{cost_arg(t.cost)},{max(0, math.floor((t.deadline - now) * US))}"
        for t in batch
    )
    return f"{config},{flags},[{given}],[{caps}],[{leases}]{calendars}]"


def budgets(items: Iterable[tuple[str, int]], n: int) -> str:
    """``"id",budget,...`` for the budgets a batch of ``n`` leases could use up (a larger
    one need not be sent)."""
    return ",".join(f'"{tid}",{left if left > 0 else 0}' for tid, left in items if left < n)


class Reply(NamedTuple):
    """A reserve call's reply."""

    version: str  #: of the namespace's shared states
    resync: bool  #: some token had lost its state: register again
    workers: int  #: the namespace's workers (never too few)
    #: per lease: status, delay (µs), then id, at, limits version, undo... if reserved
    leases: list[list[str]]


def parse_reply(reply: Any) -> Reply:
    parts = text(reply).split("|")
    version, resync, _, workers = parts[0].split()
    return Reply(version, resync == "1", int(workers), [part.split() for part in parts[1:]])
