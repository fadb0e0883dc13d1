"""Test helpers for users of aurora_async: a local rate-limited API to crawl offline.

See :class:`MockAPI`.
"""

from ._mockapi import MockAPI, MockTokenStats

__all__ = ["MockAPI", "MockTokenStats"]
