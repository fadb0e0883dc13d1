"""Limits declared wrong, against an enforcer like nginx ``limit_req``: what the pool gets.

    python benchmarks/bench_calibrate.py [--quick]

The server: 12 tokens in three tiers, 4 at 5 r/s (nginx ``burst=2``), 4 at 20 r/s
(``burst=3``) and 4 at 50 r/s (``burst=5``), all ``nodelay``, answering 429 without
``Retry-After`` or rate-limit headers when a token goes over, plus 2 revoked tokens (401).
Its capacity is the summed rate, 300 requests a second. The client: 2,000 coroutines calling
``pool.get`` in a loop for the run (20 s; 5 s with ``--quick``), the pool's tokens declared
four ways:

- ``exact``: each token's rate and the server's burst (``Limit(r, burst=b + 1)``: nginx
  admits ``burst + 1`` at once);
- ``default burst``: the right rates, ``burst`` left at its default (``Limit(r)``): what a
  new user writes;
- ``rates 2x``: every rate declared twice too high (``Limit(2 * r)``);
- ``nothing``: ``TokenPool(tokens)``, no limits at all;
- and the naive client as the baseline: strict round robin over aiolimiter at the right
  rates, retrying a 429 or 401 on the next token.

Each runs against MockAPI's nginx profile (``NginxLimitReq``, nginx's own arithmetic) and,
when the ``nginx`` binary is installed (``apt-get install nginx``), against a real nginx on
loopback. Figures: the share of the server's capacity served (200s per second over the
summed rate) and the share of requests answered 429. Targets (issue 11): exact >= 99% with
no 429; default burst >= 95% with at most 1% 429s; rates 2x and nothing declared >= 90%
with at most 2%.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
import structlog
from _common import Figure, Report, finish, quick, secrets

from aurora_async import Limit, Token, TokenPool
from aurora_async._cli.roundrobin import RoundRobin
from aurora_async.testing import MockAPI, NginxLimitReq

#: (tokens, rate r/s, nginx burst) per tier.
TIERS = ((4, 5, 2), (4, 20, 3), (4, 50, 5))
REVOKED = 2
COROUTINES = 2000
CAPACITY = sum(n * rate for n, rate, _ in TIERS)

DECLARATIONS: dict[str, Callable[[int, int], Limit | None]] = {
    "exact": lambda rate, burst: Limit(rate, burst=burst + 1),
    "default burst": lambda rate, burst: Limit(rate),
    "rates 2x": lambda rate, burst: Limit(2 * rate),
    "nothing": lambda rate, burst: None,
}
TARGETS = {  # name: (least share of capacity, most share of 429s)
    "exact": (0.99, 0.0),
    "default burst": (0.95, 0.01),
    "rates 2x": (0.90, 0.02),
    "nothing": (0.90, 0.02),
}
ROUND_ROBIN = "round robin"


@dataclass(frozen=True, slots=True)
class Server:
    tokens: tuple[tuple[str, int, int], ...]  # (secret, rate, burst) of the good tokens
    revoked: tuple[str, ...]


def server() -> Server:
    values = iter(secrets(sum(n for n, _, _ in TIERS) + REVOKED, prefix="sk"))
    good = tuple((next(values), rate, burst) for n, rate, burst in TIERS for _ in range(n))
    return Server(good, tuple(values))


@contextlib.asynccontextmanager
async def mock(spec: Server) -> AsyncIterator[str]:
    profiles = {secret: NginxLimitReq(rate, burst=burst) for secret, rate, burst in spec.tokens}
    async with MockAPI(profiles, revoked=list(spec.revoked)) as api:  # type: ignore[arg-type]
        yield f"{api.url}/items"


@contextlib.asynccontextmanager
async def real_nginx(spec: Server) -> AsyncIterator[str]:
    from _nginx import nginx_server

    tiers = {secret: NginxLimitReq(rate, burst=burst) for secret, rate, burst in spec.tokens}
    async with nginx_server(tiers, revoked=list(spec.revoked)) as url:
        yield f"{url}/items"


def pool_for(spec: Server, declaration: str) -> TokenPool:
    declare = DECLARATIONS[declaration]
    tokens: list[str | Token] = []
    for secret, rate, burst in spec.tokens:
        limit = declare(rate, burst)
        tokens.append(secret if limit is None else Token(secret, limits=limit))
    tokens += spec.revoked
    return TokenPool(tokens)


async def drive(call: Callable[[], object], seconds: float) -> int:
    """``COROUTINES`` coroutines calling ``call`` for ``seconds``: how many answered 200."""
    counts = {"ok": 0}
    stop = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < stop:
            status = await call()  # type: ignore[misc]
            if status == 200:
                counts["ok"] += 1

    tasks = [asyncio.create_task(worker()) for _ in range(COROUTINES)]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return counts["ok"]


async def run_pool(url: str, spec: Server, declaration: str, seconds: float) -> tuple[float, float]:
    """Share of capacity and share of 429s at the server, for the pool."""
    pool = pool_for(spec, declaration)
    async with pool:

        async def call() -> int:
            resp = await pool.get(url)
            return resp.status

        ok = await drive(call, seconds)
        stats = pool.stats()
    attempts = sum(t.leases for t in stats.tokens)
    limited = sum(t.rate_limited for t in stats.tokens)
    return ok / (CAPACITY * seconds), limited / max(1, attempts)


async def run_round_robin(url: str, spec: Server, seconds: float) -> tuple[float, float]:
    """Share of capacity, and share of requests refused (429, or 401 on a revoked token)."""
    tokens = [(s, Limit(rate)) for s, rate, _ in spec.tokens]
    tokens += [(s, Limit(10)) for s in spec.revoked]
    rr = RoundRobin(tokens)
    async with aiohttp.ClientSession() as session:

        async def call() -> int:
            return await rr.get(session, url)

        ok = await drive(call, seconds)
    return ok / (CAPACITY * seconds), (rr.attempts - ok) / max(1, rr.attempts)


async def against(
    make: Callable[[Server], contextlib.AbstractAsyncContextManager[str]],
    spec: Server,
    seconds: float,
    declaration: str | None,
) -> tuple[float, float]:
    """One run against a fresh server: the pool declared as ``declaration``, or round
    robin for ``None``."""
    async with make(spec) as url:
        if declaration is None:
            return await run_round_robin(url, spec, seconds)
        return await run_pool(url, spec, declaration, seconds)


def run(seconds: float) -> Report:
    report = Report("calibrate")
    spec = server()
    servers: dict[str, Callable[[Server], contextlib.AbstractAsyncContextManager[str]]] = {
        "MockAPI nginx profile": mock
    }
    try:
        import _nginx

        if _nginx.find_nginx() is not None:
            servers["real nginx"] = real_nginx
        else:
            report.notes.append("real nginx: skipped, no nginx binary (apt-get install nginx)")
    except ImportError:  # pragma: no cover
        report.notes.append("real nginx: skipped, benchmarks/_nginx.py missing")
    for where, make in servers.items():
        for declaration, (least, most) in TARGETS.items():
            share, limited = asyncio.run(against(make, spec, seconds, declaration))
            met = share >= least and limited <= most
            target = f">= {least:.0%}, 429s <= {most:.0%}"
            detail = f"429s {limited:.2%}"
            report.add(Figure(f"{where}: {declaration}", share * 100, "%", target, met, detail))
        share, refused = asyncio.run(against(make, spec, seconds, None))
        detail = f"429s and 401s {refused:.2%}"
        report.add(Figure(f"{where}: {ROUND_ROBIN}", share * 100, "%", detail=detail))
    report.notes.append(
        f"{' + '.join(f'{n} x {r} r/s (burst {b})' for n, r, b in TIERS)} = {CAPACITY} r/s, "
        f"{REVOKED} revoked, {COROUTINES} coroutines, {seconds:g} s per run (real time)."
    )
    return report


def main() -> int:
    # The pool logs each cooldown and disable; this benchmark reads its figures instead.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    return finish(run(5.0 if quick() else 20.0))


if __name__ == "__main__":
    sys.exit(main())
