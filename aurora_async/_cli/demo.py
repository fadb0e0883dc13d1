"""``aurora-async demo``: the same work through soonest-fire and through round robin.

Each strategy gets a fresh local API (:mod:`.demo_mix`: tiers of rates, two revoked
tokens, one cooling down) and the same crowd of coroutines, each sending one request
after another for the same number of seconds:

* **soonest-fire**: ``pool.request`` of a :class:`~aurora_async.TokenPool`;
* **round robin**: what people write first (:mod:`.roundrobin`).

What is measured is the same for both: requests answered 200 before the time is up,
what the *server* saw (429s, 401s from the revoked tokens), and each request's wait, from
the moment its coroutine wanted to send it until the attempt that got through was sent
(aiohttp's request-start trace of that attempt, so retries and queueing count).

Both are configured alike, with one tier declared at twice the rate the server allows
(:data:`.demo_mix.MISDECLARED`). The pool's limits calibrate themselves: the live view
shows each tier's declared and effective limits (``stats()``), and the result says how
long the pool took to bring that tier down to the server's rate
(:data:`.demo_limits.CONVERGED`) and how many 429s it cost. Round robin keeps the
configured rate for the whole run.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Protocol

import aiohttp

from .._core.scheduler import TokenState
from .._core.tokens import mask
from .._errors import RequestFailed
from .._pool.pool import TokenPool
from ..testing import MockAPI
from .demo_limits import Convergence, by_name, describe_limits, tier_windows
from .demo_mix import TOLERANCE, Mix, make_mix, start_server
from .events import capture_events, condense
from .roundrobin import RoundRobin

__all__ = [
    "SOONEST_FIRE",
    "DemoResult",
    "Progress",
    "RunResult",
    "TierRow",
    "View",
    "run_demo",
]

SOONEST_FIRE = "soonest-fire"
ROUND_ROBIN = "round robin"


@dataclass(frozen=True, slots=True)
class TierRow:
    """One tier of tokens (or the revoked ones) as the server and the pool see it now."""

    label: str
    tokens: int
    capacity: float  #: the sum of the tier's rates
    ok: int
    rate: float  #: 200s a second, lately
    rate_limited: int
    unauthorized: int
    states: str  #: the pool's token states ("" for round robin: it keeps none)
    declared: str = ""  #: the limit the configuration declares ("" for the revoked)
    effective: str = ""  #: the limits the pool enforces now ("" for round robin)


@dataclass(frozen=True, slots=True)
class Progress:
    strategy: str
    elapsed: float
    seconds: float
    done: int
    rate: float  #: 200s a second, lately
    capacity: float
    requests: int  #: requests the server saw
    rate_limited: int
    unauthorized: int
    tiers: tuple[TierRow, ...]
    events: tuple[str, ...]  #: pool events since the last update


@dataclass(frozen=True, slots=True)
class RunResult:
    """One strategy's run, measured at its deadline."""

    strategy: str
    seconds: float
    done: int  #: requests answered 200 in time
    failed: int  #: requests given up after the retry budget
    requests: int  #: requests the server saw
    rate_limited: int  #: answered 429
    unauthorized: int  #: answered 401: sent with a revoked token
    most_per_revoked: int  #: the most requests any one revoked token was sent
    wait_mean: float
    wait_p50: float
    wait_p99: float
    capacity: float  #: the sum of the live tokens' rates
    bursts: float  #: what the fresh buckets admit at once, in all
    timeline: tuple[tuple[float, int], ...] = ()  #: (elapsed, done) samples
    #: The mis-declared tier: 429s the server answered its tokens; seconds until its
    #: effective limits came down to the server's rate (``None``: they never did); the
    #: highest effective rate among its tokens at the deadline (the configured one for
    #: round robin, which never changes it).
    misdeclared_429: int = 0
    converged_after: float | None = None
    misdeclared_rate: float | None = None

    @property
    def throughput(self) -> float:
        return self.done / self.seconds

    @property
    def allowed(self) -> float:
        """The most the server admits per second over this run: the rates plus the
        initial bursts spread over the run."""
        return self.capacity + self.bursts / self.seconds

    @property
    def share_of_allowed(self) -> float:
        return self.throughput / self.allowed

    @property
    def share_429(self) -> float:
        return self.rate_limited / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class DemoResult:
    mix: Mix
    concurrency: int
    retry_after: float  #: what the server first answered the cooling token with
    runs: tuple[RunResult, ...]

    def run(self, strategy: str) -> RunResult:
        return next(r for r in self.runs if r.strategy == strategy)


class View(Protocol):
    """Where the demo shows itself (live table or plain lines)."""

    interval: float  #: seconds between updates

    def begin(self, strategy: str, about: str) -> None: ...

    def update(self, progress: Progress) -> None: ...

    def end(self, result: RunResult) -> None: ...

    def summary(self, result: DemoResult) -> None: ...


@dataclass
class _Tally:
    done: int = 0
    failed: int = 0
    waits: list[float] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def traced_session(concurrency: int) -> aiohttp.ClientSession:
    """A session that notes, in each request's ``trace_request_ctx`` dict, the loop
    time the request started (its last attempt's, when there are several)."""

    async def started(
        _session: aiohttp.ClientSession, ctx: SimpleNamespace, _params: object
    ) -> None:
        marks = ctx.trace_request_ctx
        if isinstance(marks, dict):
            marks["sent"] = asyncio.get_running_loop().time()

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(started)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    return aiohttp.ClientSession(connector=connector, trace_configs=[trace])


class _Books:
    """The server's books read per tier, with recent rates."""

    def __init__(self, mix: Mix, api: MockAPI, start: float) -> None:
        self._mix = mix
        self._api = api
        groups = len(mix.tiers) + 1
        self._history: deque[tuple[float, list[int]]] = deque([(start, [0] * groups)])

    def rows(self, now: float, pool: TokenPool | None) -> tuple[TierRow, ...]:
        groups = [
            (f"{t.label} × {len(t.secrets)}", t.rate, t.secrets, f"{t.declared_rate:g}/s")
            for t in self._mix.tiers
        ]
        revoked = self._mix.revoked
        groups.append((f"revoked × {len(revoked)}", 0.0, revoked, ""))
        tokens = by_name(pool) if pool is not None else {}
        stats = [[self._api.stats(s) for s in secrets] for _, _, secrets, _ in groups]
        oks = [sum(s.ok for s in group) for group in stats]
        self._history.append((now, oks))
        while len(self._history) > 2 and now - self._history[1][0] >= 1.0:
            self._history.popleft()
        then, before = self._history[0]
        span = now - then
        rows = []
        for (label, rate, secrets, configured), group, ok, old in zip(
            groups, stats, oks, before, strict=True
        ):
            counted = [tokens[mask(s)].state for s in secrets if mask(s) in tokens]
            shown = ", ".join(
                f"{counted.count(state)} {state.value}"
                for state in TokenState
                if counted.count(state)
            )
            declared = describe_limits(tier_windows(tokens, secrets, declared=True), burst=False)
            rows.append(
                TierRow(
                    label=label,
                    tokens=len(secrets),
                    capacity=rate * len(secrets),
                    ok=ok,
                    rate=(ok - old) / span if span > 0 else 0.0,
                    rate_limited=sum(s.rate_limited for s in group),
                    unauthorized=sum(s.unauthorized for s in group),
                    states=shown,
                    declared=(declared or configured) if rate else "",
                    effective=describe_limits(tier_windows(tokens, secrets)) if rate else "",
                )
            )
        return tuple(rows)


async def _open_connections(session: aiohttp.ClientSession, api: MockAPI, concurrency: int) -> None:
    """Open the connections before the clock starts, as a long-running client has them:
    requests without a token, which the server answers 401 without touching any
    token's limits (and forgets: its books are reset)."""

    async def hello() -> None:
        async with session.get(f"{api.url}/hello") as resp:
            await resp.read()

    await asyncio.gather(*(hello() for _ in range(concurrency)))
    api.reset_stats()


def _misdeclared(
    mix: Mix, api: MockAPI, convergence: Convergence | None, now: float
) -> tuple[int, float | None, float | None]:
    """What became of the mis-declared tier by ``now`` (the deadline): its 429s at the
    server, when the pool's limits converged (``None``: not yet, or round robin) and the
    highest effective rate left (round robin keeps the configured one)."""
    tier = mix.misdeclared
    if tier is None:
        return 0, None, None
    refused = sum(api.stats(s).rate_limited for s in tier.secrets)
    if convergence is None:
        return refused, None, tier.declared_rate
    convergence.check(now)
    return refused, convergence.after, convergence.highest()


async def _show(
    strategy: str,
    mix: Mix,
    *,
    books: _Books,
    tally: _Tally,
    view: View,
    api: MockAPI,
    pool: TokenPool | None,
    start: float,
    seconds: float,
) -> list[tuple[float, int]]:
    """Update ``view`` every ``view.interval`` seconds until the deadline; the timeline."""
    loop = asyncio.get_running_loop()
    timeline: list[tuple[float, int]] = []
    deadline = start + seconds
    while (now := loop.time()) < deadline:
        await asyncio.sleep(min(view.interval, deadline - now))
        now = min(loop.time(), deadline)
        timeline.append((now - start, tally.done))
        totals = api.totals
        rows = books.rows(now, pool)
        events, tally.events[:] = tuple(condense(tally.events)), []
        view.update(
            Progress(
                strategy=strategy,
                elapsed=now - start,
                seconds=seconds,
                done=tally.done,
                rate=sum(row.rate for row in rows),
                capacity=mix.capacity,
                requests=totals.requests,
                rate_limited=totals.rate_limited,
                unauthorized=totals.unauthorized,
                tiers=rows,
                events=events,
            )
        )
    return timeline


async def _run(
    strategy: str,
    mix: Mix,
    *,
    seconds: float,
    concurrency: int,
    view: View,
    api: MockAPI,
    session: aiohttp.ClientSession,
    work: Callable[[str, _Tally], Coroutine[Any, Any, None]],
    pool: TokenPool | None = None,
) -> RunResult:
    loop = asyncio.get_running_loop()
    tally = _Tally()
    url = f"{api.url}/items"
    await _open_connections(session, api, concurrency)
    with capture_events(tally.events.append):
        tasks = [asyncio.create_task(work(url, tally)) for _ in range(concurrency)]
        start = loop.time()
        convergence = None
        if pool is not None and mix.misdeclared is not None:
            convergence = Convergence(mix.misdeclared, pool, start)
            tasks.append(asyncio.create_task(convergence.watch()))
        try:
            timeline = await _show(
                strategy,
                mix,
                books=_Books(mix, api, start),
                tally=tally,
                view=view,
                api=api,
                pool=pool,
                start=start,
                seconds=seconds,
            )
            totals = api.totals  # the server's books at the deadline
            done, failed, waits = tally.done, tally.failed, list(tally.waits)
            revoked = [api.stats(s).requests for s in mix.revoked]
            wrong = _misdeclared(mix, api, convergence, start + seconds)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if pool is not None:
                await pool.aclose()
    return RunResult(
        strategy=strategy,
        seconds=seconds,
        done=done,
        failed=failed,
        requests=totals.requests,
        rate_limited=totals.rate_limited,
        unauthorized=totals.unauthorized,
        most_per_revoked=max(revoked, default=0),
        wait_mean=sum(waits) / len(waits) if waits else math.nan,
        wait_p50=_quantile(waits, 0.50),
        wait_p99=_quantile(waits, 0.99),
        capacity=mix.capacity,
        bursts=mix.bursts,
        timeline=tuple(timeline),
        misdeclared_429=wrong[0],
        converged_after=wrong[1],
        misdeclared_rate=wrong[2],
    )


async def run_soonest_fire(
    mix: Mix, api: MockAPI, *, seconds: float, concurrency: int, view: View
) -> RunResult:
    """The work through ``pool.request`` (retries, cooling and disabling included)."""
    loop = asyncio.get_running_loop()
    async with traced_session(concurrency) as session:
        pool = TokenPool(mix.tokens(), session=session, max_attempts=6)

        async def work(url: str, tally: _Tally) -> None:
            while True:
                marks: dict[str, float] = {}
                wanted = loop.time()
                try:
                    resp = await pool.request("GET", url, trace_request_ctx=marks)
                except RequestFailed:
                    tally.failed += 1
                    continue
                if resp.status == 200:
                    tally.done += 1
                    tally.waits.append(marks["sent"] - wanted)
                else:  # pragma: no cover  # the demo's server answers nothing else
                    tally.failed += 1

        async with pool:
            return await _run(
                SOONEST_FIRE,
                mix,
                seconds=seconds,
                concurrency=concurrency,
                view=view,
                api=api,
                session=session,
                work=work,
                pool=pool,
            )


async def run_round_robin(
    mix: Mix, api: MockAPI, *, seconds: float, concurrency: int, view: View
) -> RunResult:
    """The same work, each coroutine taking the next token in turn."""
    loop = asyncio.get_running_loop()
    rr = RoundRobin([(t.value, t.limits[0]) for t in mix.tokens() if t.limits])
    async with traced_session(concurrency) as session:

        async def work(url: str, tally: _Tally) -> None:
            while True:
                marks: dict[str, float] = {}
                wanted = loop.time()
                await rr.get(session, url, trace_request_ctx=marks)
                tally.done += 1
                tally.waits.append(marks["sent"] - wanted)

        return await _run(
            ROUND_ROBIN,
            mix,
            seconds=seconds,
            concurrency=concurrency,
            view=view,
            api=api,
            session=session,
            work=work,
        )


async def run_demo(
    view: View, *, seconds: float = 10.0, tokens: int = 24, concurrency: int = 300
) -> DemoResult:
    """Run both strategies one after the other and show the comparison on ``view``."""
    if not seconds > 0:
        raise ValueError(f"--seconds must be positive, got {seconds!r}")
    if concurrency < 1:
        raise ValueError(f"--concurrency must be at least 1, got {concurrency!r}")
    mix = make_mix(tokens)
    runs = []
    retry_after = 0.0
    for strategy, runner in ((SOONEST_FIRE, run_soonest_fire), (ROUND_ROBIN, run_round_robin)):
        api, first_retry_after = await start_server(mix)
        retry_after = retry_after or first_retry_after
        try:
            view.begin(strategy, _about(strategy, mix, concurrency, first_retry_after))
            result = await runner(mix, api, seconds=seconds, concurrency=concurrency, view=view)
        finally:
            await api.close()
        view.end(result)
        runs.append(result)
    outcome = DemoResult(mix, concurrency, retry_after, tuple(runs))
    view.summary(outcome)
    return outcome


def _about(strategy: str, mix: Mix, concurrency: int, retry_after: float) -> str:
    how = (
        "TokenPool.request: the queue's head gets the token that can fire soonest"
        if strategy == SOONEST_FIRE
        else "each coroutine takes the next token in turn, one aiolimiter per token, "
        "429s and 401s retried on the next token"
    )
    cooling = (
        f"the server answers {mask(mix.cooling)} 429 with Retry-After {retry_after:.1f} s at first"
        if retry_after
        else f"{mask(mix.cooling)} could not be made to cool down"
    )
    return (
        f"{strategy}: {concurrency} coroutines, {how}. Local MockAPI (tolerance "
        f"{TOLERANCE * 1000:.0f} ms): {mix.describe()}; {cooling}."
    )
