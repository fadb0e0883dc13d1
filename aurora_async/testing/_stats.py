"""The mock server's books: what it saw per token, as counters and frozen snapshots."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MockTokenStats:
    """What the server saw for one token (or in total), as a snapshot.

    ``requests`` counts every request; each got exactly one of ``ok`` (200),
    ``rate_limited`` (refused by the token's limit: 429, or the status its profile answers
    with, such as 403 for :class:`FixedWindow`), ``unauthorized`` (401),
    ``server_errors`` (503) or ``bad_requests`` (400: a request :class:`LlmApi` cannot
    read). ``slow`` counts the requests that were answered after ``slow_latency``;
    ``delayed`` those admitted but held back by the limit (:class:`NginxLimitReq` without
    ``nodelay``). ``tokens`` adds up the tokens admitted requests were charged
    (:class:`LlmApi`; 0 for the other profiles).
    """

    requests: int = 0
    ok: int = 0
    rate_limited: int = 0
    unauthorized: int = 0
    server_errors: int = 0
    slow: int = 0
    delayed: int = 0
    bad_requests: int = 0
    tokens: int = 0


class Counters:
    """The mutable counts behind a :class:`MockTokenStats`."""

    __slots__ = (
        "bad_requests",
        "delayed",
        "ok",
        "rate_limited",
        "requests",
        "server_errors",
        "slow",
        "tokens",
        "unauthorized",
    )

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.requests = self.ok = self.rate_limited = 0
        self.unauthorized = self.server_errors = self.slow = self.delayed = 0
        self.bad_requests = self.tokens = 0

    def snapshot(self) -> MockTokenStats:
        return MockTokenStats(
            self.requests,
            self.ok,
            self.rate_limited,
            self.unauthorized,
            self.server_errors,
            self.slow,
            self.delayed,
            self.bad_requests,
            self.tokens,
        )
