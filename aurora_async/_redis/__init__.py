"""Shared token limits on Redis (``pip install 'aurora_async[redis]'``).

Importing this package does not import ``redis``; constructing a :class:`RedisBackend`
does, and fails with a message naming the extra when it is missing.
"""

from .backend import RedisBackend, RedisTokenState, Reservation

__all__ = ["RedisBackend", "RedisTokenState", "Reservation"]
