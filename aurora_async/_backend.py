"""The contract between a pool and a shared-state backend (``RedisBackend``).

The protocol itself lives beside the pool core it plugs into
(``aurora_async._pool.core.Backend``); this module names it for the public package.
"""

from __future__ import annotations

from ._core.scheduler import Slot
from ._pool.core import Backend

__all__ = ["Backend", "Slot"]
