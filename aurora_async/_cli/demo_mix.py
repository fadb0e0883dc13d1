"""The demo's tokens and its local API: tiers of different rates, two revoked tokens and
one that starts cooling down, served by :class:`~aurora_async.testing.MockAPI`.

The cooling token: another client (say a nightly job on the same token) has just used
up its quota, so the server answers it ``429`` with a ``Retry-After`` of a few seconds at
first and accepts it normally afterwards (``MockAPI.exhaust``); :func:`start_cooling`
checks what the server answers with a probe, and the demo reports it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import aiohttp

from .._core.limits import Limit
from .._core.tokens import Token, mask
from ..testing import MockAPI

__all__ = ["TOLERANCE", "Mix", "Tier", "make_mix", "start_cooling", "start_server"]

#: The server admits a request that would fit this much later (arrival jitter).
TOLERANCE = 0.02
#: Requests a second of each tier, slow to fast.
TIER_RATES = (5.0, 20.0, 50.0)
#: What the client's configuration says of the revoked tokens (they look ordinary).
REVOKED_RATE = 20.0
REVOKED = 2


def _secret(kind: str, number: int) -> str:
    """A realistic-looking secret whose masked name ends with its number (unique)."""
    digest = hashlib.sha256(f"aurora-demo:{kind}:{number}".encode()).hexdigest()[:24]
    return f"sk-demo-{digest}{number:04d}"


@dataclass(frozen=True, slots=True)
class Tier:
    rate: float  #: requests a second, per token
    secrets: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.rate:g}/s"

    @property
    def capacity(self) -> float:
        return self.rate * len(self.secrets)


@dataclass(frozen=True, slots=True)
class Mix:
    """Every token of the demo, with the limit the client is configured with."""

    tiers: tuple[Tier, ...]
    revoked: tuple[str, ...]
    cooling: str  #: the secret of the token that starts cooling down
    cooling_seconds: float

    @property
    def live(self) -> tuple[str, ...]:
        return tuple(s for tier in self.tiers for s in tier.secrets)

    @property
    def capacity(self) -> float:
        """The sum of the live tokens' rates (requests a second)."""
        return sum(tier.capacity for tier in self.tiers)

    @property
    def bursts(self) -> float:
        """What fresh buckets admit at once, over every live token (burst = rate)."""
        return self.capacity

    def rate_of(self, secret: str) -> float:
        for tier in self.tiers:
            if secret in tier.secrets:
                return tier.rate
        return REVOKED_RATE

    def tokens(self) -> list[Token]:
        """Every token in the client's configuration, revoked ones among them (the
        client cannot tell), in a fixed interleaved order."""
        order = [*self.live]
        for k, secret in enumerate(self.revoked):
            order.insert((k + 1) * len(order) // (len(self.revoked) + 1), secret)
        return [Token(s, limits=Limit(self.rate_of(s), per=1.0)) for s in order]

    def describe(self) -> str:
        tiers = ", ".join(f"{len(t.secrets)} at {t.label}" for t in self.tiers)
        return (
            f"{len(self.live)} tokens ({tiers}; capacity {self.capacity:g}/s), "
            f"{len(self.revoked)} revoked, and {mask(self.cooling)} cooling down at first"
        )


def make_mix(tokens: int = 24, *, cooling_seconds: float = 3.0) -> Mix:
    """``tokens`` live tokens split over the three tiers (the remainder to the fastest),
    two revoked ones, and one of the slowest tier that starts cooling down."""
    if tokens < len(TIER_RATES):
        raise ValueError(f"the demo needs at least {len(TIER_RATES)} tokens, one per tier")
    share = tokens // len(TIER_RATES)
    counts = [share] * len(TIER_RATES)
    counts[-1] += tokens - share * len(TIER_RATES)
    number = 0
    tiers = []
    for rate, count in zip(TIER_RATES, counts, strict=True):
        secrets = []
        for _ in range(count):
            number += 1
            secrets.append(_secret("live", number))
        tiers.append(Tier(rate, tuple(secrets)))
    revoked = tuple(_secret("revoked", tokens + k + 1) for k in range(REVOKED))
    return Mix(tuple(tiers), revoked, tiers[0].secrets[0], cooling_seconds)


async def start_server(mix: Mix) -> tuple[MockAPI, float]:
    """A started MockAPI for ``mix``, its cooling token already cooling; returns it and
    the Retry-After the server now answers that token with (0 if it does not)."""
    limits = {s: Limit(mix.rate_of(s), per=1.0) for s in mix.live}
    api = MockAPI(limits, revoked=mix.revoked, tolerance=TOLERANCE, seed=1)
    await api.start()
    try:
        retry_after = await start_cooling(api, mix.cooling, mix.cooling_seconds)
    except BaseException:
        await api.close()
        raise
    api.reset_stats()
    return api, retry_after


async def start_cooling(api: MockAPI, secret: str, seconds: float) -> float:
    """Spend ``secret``'s quota on the server for ``seconds`` (another client used it up),
    and return the Retry-After the server then answers it with."""
    api.exhaust(secret, seconds)
    headers = {"Authorization": f"Bearer {secret}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{api.url}/probe", headers=headers) as resp,
    ):
        await resp.read()
        return float(resp.headers.get("Retry-After", "0")) if resp.status == 429 else 0.0
