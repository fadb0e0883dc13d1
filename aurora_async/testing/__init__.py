"""Test helpers for users of aurora_async: a local rate-limited API to crawl offline.

See :class:`MockAPI` and its profiles (:class:`LeakyBucket`, :class:`NginxLimitReq`,
:class:`FixedWindow`, :class:`IetfRateLimit`, :class:`LlmApi`, :class:`GitHubApi`), which
mimic how real servers enforce limits.
"""

from ._fixed import FixedWindow
from ._github import GitHubApi
from ._ietf import IetfRateLimit
from ._leaky import LeakyBucket
from ._llm import LlmApi
from ._mockapi import MockAPI
from ._nginx import NginxLimitReq
from ._profile import Profile
from ._stats import MockTokenStats

__all__ = [
    "FixedWindow",
    "GitHubApi",
    "IetfRateLimit",
    "LeakyBucket",
    "LlmApi",
    "MockAPI",
    "MockTokenStats",
    "NginxLimitReq",
    "Profile",
]
