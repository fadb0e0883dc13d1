"""The demo's tokens and its local API: tiers of different rates, one tier the client's
configuration gets wrong, two revoked tokens and one that starts cooling down, served by
:class:`~aurora_async.testing.MockAPI`.

The mis-declared tier: the configuration says 20 requests a second, as for a paid key,
but the server holds these tokens to half that, the way nginx's ``limit_req`` does
(:class:`~aurora_async.testing.NginxLimitReq`: a bare ``429``, no ``Retry-After``, no
rate-limit headers). Both strategies get the same wrong configuration, as a naive client
would; the pool's self-calibrating limits are expected to bring the tier down to the
server's rate within seconds.

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
from ..testing import MockAPI, NginxLimitReq, Profile

__all__ = [
    "MISDECLARED",
    "TOLERANCE",
    "Mix",
    "Tier",
    "make_mix",
    "start_cooling",
    "start_server",
]

#: The server admits a request that would fit this much later (arrival jitter; the
#: leaky-bucket tiers only: nginx has no such slack).
TOLERANCE = 0.02
#: Requests a second of each correctly declared tier, slow to fast.
TIER_RATES = (5.0, 20.0, 50.0)
#: The mis-declared tier: (the server's rate, the rate the configuration declares, the
#: ``burst`` of the server's nginx ``limit_req``).
MISDECLARED = (10.0, 20.0, 3)
#: What the client's configuration says of the revoked tokens (they look ordinary).
REVOKED_RATE = 20.0
REVOKED = 2


def _secret(kind: str, number: int) -> str:
    """A realistic-looking secret whose masked name ends with its number (unique)."""
    digest = hashlib.sha256(f"aurora-demo:{kind}:{number}".encode()).hexdigest()[:24]
    return f"sk-demo-{digest}{number:04d}"


@dataclass(frozen=True, slots=True)
class Tier:
    rate: float  #: requests a second, per token, as the server enforces it
    secrets: tuple[str, ...]
    declared: float = 0.0  #: the rate the client's configuration says (0: ``rate``)
    nginx_burst: int | None = None  #: served by nginx ``limit_req`` with this burst

    @property
    def declared_rate(self) -> float:
        return self.declared or self.rate

    @property
    def misdeclared(self) -> bool:
        return self.declared_rate != self.rate

    @property
    def label(self) -> str:
        if self.misdeclared:
            return f"{self.rate:g}/s declared {self.declared_rate:g}/s"
        return f"{self.rate:g}/s"

    @property
    def capacity(self) -> float:
        return self.rate * len(self.secrets)

    @property
    def burst(self) -> float:
        """What one fresh token of the tier is admitted at once."""
        return self.rate if self.nginx_burst is None else self.nginx_burst + 1

    @property
    def profile(self) -> Limit | Profile:
        """How the server limits each token of the tier."""
        if self.nginx_burst is None:
            return Limit(self.rate, per=1.0)
        return NginxLimitReq(round(self.rate), burst=self.nginx_burst)


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
        """The sum of the live tokens' rates, as the server enforces them (requests a
        second)."""
        return sum(tier.capacity for tier in self.tiers)

    @property
    def bursts(self) -> float:
        """What fresh buckets admit at once, over every live token."""
        return sum(tier.burst * len(tier.secrets) for tier in self.tiers)

    @property
    def misdeclared(self) -> Tier | None:
        """The tier the configuration gets wrong, if any."""
        return next((tier for tier in self.tiers if tier.misdeclared), None)

    def tier_of(self, secret: str) -> Tier | None:
        return next((tier for tier in self.tiers if secret in tier.secrets), None)

    def rate_of(self, secret: str) -> float:
        """The rate the server holds ``secret`` to."""
        tier = self.tier_of(secret)
        return REVOKED_RATE if tier is None else tier.rate

    def declared_of(self, secret: str) -> float:
        """The rate the client's configuration says ``secret`` has."""
        tier = self.tier_of(secret)
        return REVOKED_RATE if tier is None else tier.declared_rate

    def tokens(self) -> list[Token]:
        """Every token in the client's configuration, revoked ones among them (the
        client cannot tell), in a fixed interleaved order, each with the limit the
        configuration declares (``burst`` left at its default, as most people write it)."""
        order = [*self.live]
        for k, secret in enumerate(self.revoked):
            order.insert((k + 1) * len(order) // (len(self.revoked) + 1), secret)
        return [Token(s, limits=Limit(self.declared_of(s), per=1.0)) for s in order]

    def server_limits(self) -> dict[str, Limit | Profile]:
        """What the server enforces for each live token."""
        return {s: tier.profile for tier in self.tiers for s in tier.secrets}

    def describe(self) -> str:
        tiers = ", ".join(f"{len(t.secrets)} at {t.label}" for t in self.tiers if not t.misdeclared)
        text = f"{len(self.live)} tokens ({tiers}"
        wrong = self.misdeclared
        if wrong is not None:
            text += (
                f", {len(wrong.secrets)} declared {wrong.declared_rate:g}/s that the server "
                f"(nginx limit_req, burst {wrong.nginx_burst}, 429 without Retry-After) "
                f"holds to {wrong.rate:g}/s"
            )
        return (
            f"{text}; capacity {self.capacity:g}/s), {len(self.revoked)} revoked, and "
            f"{mask(self.cooling)} cooling down at first"
        )


def make_mix(tokens: int = 24, *, cooling_seconds: float = 3.0) -> Mix:
    """``tokens`` live tokens split evenly over the three tiers and the mis-declared one
    (the remainder to the fastest), two revoked ones, and one of the slowest tier that
    starts cooling down."""
    kinds: list[tuple[float, float, int | None]] = [(rate, 0.0, None) for rate in TIER_RATES]
    kinds.append(MISDECLARED)
    if tokens < len(kinds):
        raise ValueError(f"the demo needs at least {len(kinds)} tokens, one per tier")
    share = tokens // len(kinds)
    counts = [share] * len(kinds)
    counts[len(TIER_RATES) - 1] += tokens - share * len(kinds)
    number = 0
    tiers = []
    for (rate, declared, burst), count in zip(kinds, counts, strict=True):
        secrets = []
        for _ in range(count):
            number += 1
            secrets.append(_secret("live", number))
        tiers.append(Tier(rate, tuple(secrets), declared, burst))
    revoked = tuple(_secret("revoked", tokens + k + 1) for k in range(REVOKED))
    return Mix(tuple(tiers), revoked, tiers[0].secrets[0], cooling_seconds)


async def start_server(mix: Mix) -> tuple[MockAPI, float]:
    """A started MockAPI for ``mix``, its cooling token already cooling; returns it and
    the Retry-After the server now answers that token with (0 if it does not)."""
    api = MockAPI(mix.server_limits(), revoked=mix.revoked, tolerance=TOLERANCE, seed=1)
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
