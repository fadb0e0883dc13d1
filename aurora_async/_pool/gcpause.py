"""``gc_paused()``: no cyclic garbage collection while a pool builds or copies a million
objects at once.

A full collection walks every object the interpreter tracks (a pool of a million tokens
holds several million) and holds the interpreter's lock while it does: seconds, during
which no coroutine runs. Building a million tokens (or copying their fields for
``stats()``, or applying a reload) allocates enough to set several off. So the bulk
steps pause the collector and put it back as it was (a reload's for its few seconds,
across its slices); objects are still freed as their last reference goes, only reference
cycles wait for the next collection. (An application holding a pool of a
million tokens keeps its own collections short with ``gc.freeze()`` after building it.)
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
