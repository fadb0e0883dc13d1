"""``gc_paused()``: no cyclic garbage collection while a pool builds a million objects at
once.

A full collection walks every object the interpreter tracks and holds the interpreter's
lock while it does. Building a pool of a million tokens (several million objects) sets
off several, each walking everything built so far: seconds in all. A young collection is
not cheap either while a container of a million entries is young: it walks all of them.
So the bulk steps pause the collector and put it back as it was: building a large token
set; copying every token's fields for ``stats()`` (one young collection afterwards walks
the copies once, instead of many during the copy); and, in a worker thread, parsing a
token file, planning a reload and building a redaction index, whose million-entry lists,
dicts and sets are gone before the collector is back. Objects are still freed as their
last reference goes, and the next collection looks once at what was built. Not for steps
that run beside the event loop for long (a reload's slices): the objects they make are
looked at by the young generation's small collections, and a pause would only gather
them into one long one. (An application
holding a pool of a million tokens keeps its own full collections short with
``gc.freeze()`` once the pool is built.)
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["BULK", "gc_paused"]

#: How many tokens make a step bulk enough to pause the collector for.
BULK = 10_000


@contextmanager
def gc_paused(size: int = BULK) -> Iterator[None]:
    """Pause the cyclic collector for the block if ``size`` is at least :data:`BULK`
    (and it is on); as it was afterwards."""
    if size < BULK or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
