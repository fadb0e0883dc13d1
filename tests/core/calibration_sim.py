"""A pure discrete-event simulation of calibrated tokens against real enforcers' models.

No asyncio, no clock: each token is a saturating client (there is always a waiter) whose
leaky buckets follow its :class:`Calibrator`'s effective limits, talking to a server
model keyed per token with a fixed round-trip time. The server decides a request half a
round trip after it is granted, the client hears the answer a round trip after; the
client fires the moment its buckets fit one unit and no cooldown holds it (the pool's
"soonest fire"), ticks its calibrator every :data:`TICK` seconds, and acts on its
decisions the way the pool does: a 429 cools the token and fills its buckets, a change
replaces its limits (windows of the same ``per`` keep their level), a level hint raises
a bucket's level, and an answer saying nothing remains cools the token until the reset.

Servers:

* :class:`NginxLimitReq`: nginx ``limit_req`` with ``nodelay``, exactly as
  ``ngx_http_limit_req_lookup`` does it: per key an ``excess`` in milli-requests and the
  millisecond of its last update; a request ``ms`` milliseconds later makes
  ``excess = max(0, excess - rate * ms + 1000)`` (``rate`` in requests a second, so
  ``rate * ms`` milli-requests), and is refused (429, no Retry-After) if that exceeds
  ``burst * 1000``, leaving the state untouched. The first request of a key creates it
  with ``excess = 0``. Times are nginx's integer milliseconds (``ngx_current_msec``), with
  1e-6 ms of slack so that float noise in ``t * 1000`` does not move a request to the
  previous millisecond.
* :class:`FixedWindow`: ``quota`` calls per window of ``window`` seconds (GitHub style),
  stating ``limit``, ``remaining`` and the reset on every answer, and ``window`` only
  when ``announce_window`` (IETF ``RateLimit-Policy: w=``).

Capacity is what the server accepts at most from a client that fires at every chance:
for nginx ``burst + 1`` at once plus ``rate`` a second; for a fixed window ``quota`` per
window begun in the run.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aurora_async import Limit
from aurora_async._core.calibrate import TICK, Calibrator
from aurora_async._core.calibrate_types import Change

#: The 12-token mix of issue 11: (rate a second, nginx burst), four tokens each.
TIERS = ((5, 2), (20, 3), (50, 5))
MIX = tuple(tier for tier in TIERS for _ in range(4))
#: Token ``i`` of a mix starts ``i * STAGGER`` seconds in (the pool starts them as waiters
#: come), so that tokens of one tier meet their server at different phases.
STAGGER = 0.0173


# -- servers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    ok: bool
    limit: float | None = None
    remaining: float | None = None
    reset_after: float | None = None
    window: float | None = None


class NginxLimitReq:
    """One key of nginx ``limit_req zone=... rate=Nr/s burst=B nodelay``."""

    def __init__(self, rate: float, burst: int, changes: Sequence[tuple[float, float]] = ()):
        self.rate = rate
        self.burst = burst
        self.changes = deque(sorted(changes))  # (at, new rate)
        self.excess = 0  # milli-requests
        self.last: int | None = None  # ms

    def capacity(self, duration: float) -> float:
        """The most it accepts in ``duration`` seconds from a fresh key."""
        total, at, rate = self.burst + 1.0, 0.0, self.rate
        for when, new in self.changes:
            if when < duration:
                total += rate * (when - at)
                at, rate = when, new
        return total + rate * (duration - at)

    def rate_at(self, t: float) -> float:
        rate = self.rate
        for when, new in self.changes:
            if when <= t:
                rate = new
        return rate

    def request(self, t: float) -> Answer:
        while self.changes and self.changes[0][0] <= t:
            self.rate = self.changes.popleft()[1]
        now = math.floor(t * 1000.0 + 1e-6)
        if self.last is None:
            self.last = now
            self.excess = 0
            return Answer(True)
        ms = max(0, now - self.last)
        excess = self.excess - round(self.rate * 1000) * ms // 1000 + 1000
        excess = max(0, excess)
        if excess > self.burst * 1000:
            return Answer(False)
        self.excess = excess
        if ms:
            self.last = now
        return Answer(True)


class FixedWindow:
    """``quota`` calls per fixed window of ``window`` seconds, with rate-limit headers."""

    def __init__(self, quota: int, window: float, *, announce_window: bool, phase: float = 0.0):
        self.quota = quota
        self.window = window
        self.announce = announce_window
        self.phase = phase
        self.index: int | None = None
        self.count = 0

    def capacity(self, duration: float) -> float:
        return self.quota * math.ceil((duration - self.phase) / self.window - 1e-9)

    def request(self, t: float) -> Answer:
        index = math.floor((t - self.phase) / self.window)
        if index != self.index:
            self.index, self.count = index, 0
        reset = self.phase + (index + 1) * self.window - t
        window = self.window if self.announce else None
        if self.count >= self.quota:
            return Answer(False, self.quota, 0, reset, window)
        self.count += 1
        return Answer(True, self.quota, self.quota - self.count, reset, window)


Server = NginxLimitReq | FixedWindow


# -- the client ------------------------------------------------------------------------------


class Bucket:
    """aiolimiter's leaky bucket, as ``_core/buckets.Window`` reads it."""

    __slots__ = ("burst", "last", "level", "per", "rate")

    def __init__(self, limit: Limit, now: float, level: float = 0.0) -> None:
        self.per = limit.per
        self.rate = limit.per_second
        self.burst = limit.burst
        self.level = level
        self.last = now

    def level_at(self, now: float) -> float:
        return max(0.0, self.level - (now - self.last) * self.rate)

    def ready_at(self, cost: float) -> float:
        if cost > self.burst:
            return math.inf
        return self.last + (self.level + cost - self.burst) / self.rate

    def take(self, cost: float, now: float) -> None:
        self.level = self.level_at(now) + cost
        self.last = now

    def set_level(self, level: float, now: float) -> None:
        self.level = level
        self.last = now


@dataclass
class TokenRun:
    """What one token did."""

    tier: tuple[float, int]
    fired: int = 0
    accepted: int = 0
    refused: int = 0
    capacity: float = 0.0
    refusals: list[float] = field(default_factory=list)  # times the 429s were heard
    changes: list[tuple[float, Change]] = field(default_factory=list)
    final: tuple[Limit, ...] = ()

    def refused_after(self, at: float) -> int:
        return sum(1 for t in self.refusals if t >= at)

    def settled_after(self, at: float) -> float:
        """Seconds from ``at`` to the last 429 heard after it (0 if none)."""
        late = [t for t in self.refusals if t >= at]
        return late[-1] - at if late else 0.0

    def converged_after(self, at: float, rate: float) -> float:
        """Seconds from ``at`` until the token's effective rate (its least window's)
        first came within 3% of ``rate`` or below (``inf`` if it never did)."""
        for when, change in self.changes:
            if when >= at and min(limit.per_second for limit in change.limits) <= rate * 1.03:
                return when - at
        return math.inf


@dataclass
class Result:
    tokens: list[TokenRun]

    @property
    def capacity_share(self) -> float:
        return sum(t.accepted for t in self.tokens) / sum(t.capacity for t in self.tokens)

    @property
    def refused_share(self) -> float:
        return sum(t.refused for t in self.tokens) / max(1, sum(t.fired for t in self.tokens))

    @property
    def refused(self) -> int:
        return sum(t.refused for t in self.tokens)

    @property
    def fired(self) -> int:
        return sum(t.fired for t in self.tokens)

    def converged_after(self, at: float, factor: float) -> float:
        """The slowest token's :meth:`TokenRun.converged_after` its tier's rate times
        ``factor`` (the server's new rate)."""
        return max(t.converged_after(at, t.tier[0] * factor) for t in self.tokens)

    def tier(self, rate: float) -> Result:
        """The tokens of one tier."""
        return Result([t for t in self.tokens if t.tier[0] == rate])


def run_token(
    calibrator: Calibrator,
    server: Server,
    *,
    rtt: float,
    duration: float,
    tier: tuple[float, int] = (0, 0),
    start: float = 0.0,
    arrivals: Sequence[float] | None = None,
) -> TokenRun:
    """One client from ``start`` to ``duration`` seconds: saturating (always a waiter),
    or with requests arriving at the sorted times ``arrivals``. Counts the requests
    fired before the end (their answers may come later)."""
    run = TokenRun(tier, capacity=server.capacity(duration - start))
    buckets = [Bucket(limit, 0.0) for limit in calibrator.effective]
    pending: deque[tuple[float, float, Answer]] = deque()  # (heard at, granted at, answer)
    cool_until = start
    next_tick = TICK
    ok = 0
    units = 0.0

    def apply(change: Change | None, now: float) -> None:
        nonlocal buckets
        if change is None:
            return
        run.changes.append((now, change))
        by_per = {bucket.per: bucket for bucket in buckets}
        new = []
        for i, limit in enumerate(change.limits):
            old = by_per.get(limit.per)
            level = old.level_at(now) if old is not None else 0.0
            hint = change.levels[i] if change.levels is not None else None
            if hint is not None and hint > level:
                level = hint
            new.append(Bucket(limit, now, level))
        buckets = new

    while True:
        fire_at = max([cool_until, *(bucket.ready_at(1.0) for bucket in buckets)])
        if arrivals is not None:  # the next request must have arrived
            waiting = arrivals[run.fired] if run.fired < len(arrivals) else math.inf
            fire_at = max(fire_at, waiting)
        heard_at = pending[0][0] if pending else math.inf
        now = min(fire_at, heard_at, next_tick)
        if now >= duration and not pending:
            break
        if now == heard_at:
            _, granted_at, answer = pending.popleft()
            if answer.ok:
                ok += 1
                run.accepted += 1
            else:
                run.refused += 1
                run.refusals.append(now)
                retry = answer.reset_after if answer.limit is not None else None
                decision = calibrator.rate_limited(now, granted_at, ok, units, retry)
                cool_until = max(cool_until, now + decision.cooldown)
                if decision.new_episode:
                    for bucket in buckets:
                        bucket.set_level(max(bucket.level_at(now), bucket.burst), now)
                apply(decision.change, now)
            if answer.limit is not None:
                window = answer.window
                change = calibrator.from_headers(
                    now, answer.limit, answer.remaining, answer.reset_after, window
                )
                apply(change, now)
                if answer.ok and answer.remaining == 0 and answer.reset_after is not None:
                    cool_until = max(cool_until, now + answer.reset_after)
        elif now == next_tick:
            if calibrator.wants_ticks:  # as the pool does
                apply(calibrator.tick(now, ok, units), now)
            next_tick += TICK
        else:
            if now >= duration:  # stop firing; hear what is in flight
                next_tick = math.inf
                cool_until = math.inf
                continue
            for bucket in buckets:
                bucket.take(1.0, now)
            units += 1.0
            run.fired += 1
            pending.append((now + rtt, now, server.request(now + rtt / 2)))
    run.final = calibrator.effective
    return run


def simulate(
    declare: Callable[[float, int], tuple[Sequence[Limit], bool]],
    *,
    rtt: float,
    duration: float = 20.0,
    servers: Callable[[float, int], Server] | None = None,
    mix: Sequence[tuple[float, int]] = MIX,
    backoff: tuple[float, float] = (1.0, 60.0),
) -> Result:
    """Every token of ``mix`` against its own server; ``declare(rate, burst)`` gives a
    token's declared limits and whether they are trusted, ``servers(rate, burst)`` its
    server (nginx ``limit_req`` with that rate and burst unless given)."""
    runs = []
    for i, (rate, burst) in enumerate(mix):
        limits, trusted = declare(rate, burst)
        calibrator = Calibrator(limits, trusted=trusted, now=0.0, backoff=backoff)
        server = servers(rate, burst) if servers else NginxLimitReq(rate, burst)
        start = i * STAGGER
        run = run_token(
            calibrator, server, rtt=rtt, duration=duration, tier=(rate, burst), start=start
        )
        runs.append(run)
    return Result(runs)


# -- the scenarios of issue 11 ---------------------------------------------------------------


def exact(rate: float, burst: int) -> tuple[Sequence[Limit], bool]:
    return [Limit(rate, burst=burst + 1)], True


def default_burst(rate: float, burst: int) -> tuple[Sequence[Limit], bool]:
    return [Limit(rate)], True


def too_high(factor: float) -> Callable[[float, int], tuple[Sequence[Limit], bool]]:
    def declare(rate: float, burst: int) -> tuple[Sequence[Limit], bool]:
        return [Limit(rate * factor)], True

    return declare


def nothing(rate: float, burst: int) -> tuple[Sequence[Limit], bool]:
    return [Limit(10)], False


def halved_at(at: float) -> Callable[[float, int], Server]:
    def server(rate: float, burst: int) -> Server:
        return NginxLimitReq(rate, burst, [(at, rate / 2)])

    return server


def fixed_windows(window: float, *, announce: bool) -> Callable[[float, int], Server]:
    def server(rate: float, burst: int) -> Server:
        return FixedWindow(round(rate * window), window, announce_window=announce)

    return server


Declare = Callable[[float, int], tuple[Sequence[Limit], bool]]


@dataclass(frozen=True)
class Scenario:
    name: str
    declare: Declare
    servers: Callable[[float, int], Server] | None = None
    #: issue 11's target: (least share of capacity, most share of requests answered 429)
    target: tuple[float, float] | None = None
    changed_at: float | None = None  # when the server changes its limits...
    changed_by: float = 1.0  # ... and by what factor


#: Issue 11's scenarios, with the 12-token mix over 20 simulated seconds.
SCENARIOS = (
    Scenario("declared exact", exact, target=(0.99, 0.0)),
    Scenario("right rates, default burst", default_burst, target=(0.95, 0.01)),
    Scenario("rates 2x too high", too_high(2), target=(0.90, 0.02)),
    Scenario("rates 5x too high", too_high(5)),
    Scenario("nothing declared", nothing, target=(0.90, 0.02)),
    Scenario(
        "server halves rates at 10 s",
        default_burst,
        halved_at(10.0),
        changed_at=10.0,
        changed_by=0.5,
    ),
    Scenario("quota by headers, window stated", nothing, fixed_windows(10.0, announce=True)),
    Scenario("quota by headers, window not", nothing, fixed_windows(10.0, announce=False)),
)
