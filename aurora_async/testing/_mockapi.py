"""``MockAPI``: a local stand-in for a rate-limited API, to test crawlers offline.

``MockAPI`` is a small aiohttp server on the loopback interface that knows a set of
tokens and enforces each token's limits the way a real API does: too fast and it refuses
the request (by default ``429`` with ``Retry-After``); a revoked or unknown token gets
``401``. Point your crawler at :attr:`MockAPI.url` instead of the real API and assert on
what the server saw::

    import aiohttp
    from aurora_async import Limit, Token, TokenPool
    from aurora_async.testing import MockAPI

    TOKENS = [
        Token("tok-alpha-0001", limits=Limit(3, per=1)),
        Token("tok-bravo-0002", limits=[Limit(10, per=1), Limit(500, per=3600)]),
    ]

    async def test_crawler_never_trips_a_limit() -> None:
        async with MockAPI(TOKENS, revoked=["tok-dead-0003"]) as api:
            pool = TokenPool([*TOKENS, "tok-dead-0003"])
            async with pool:
                await my_crawler(pool, base_url=api.url)   # e.g. f"{api.url}/items/42"
            assert api.totals.rate_limited == 0           # no 429 at all
            assert api.stats("tok-dead-0003").unauthorized >= 1

    # Or by hand, with plain aiohttp:
    async with MockAPI({"tok-alpha-0001": Limit(5, per=1)}) as api:
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": "Bearer tok-alpha-0001"}
            async with session.get(f"{api.url}/items/1", headers=headers) as resp:
                print(resp.status, await resp.json())  # 200 {'ok': True, 'token': 'tok…001', ...}

Profiles: how a token is limited. Real servers differ, and per credential (free and paid
keys), so each token has a *profile*, given per token or for the whole server:

- :class:`LeakyBucket` (the default, and what ``Limit`` objects mean): GCRA per
  :class:`~aurora_async.Limit`, ``429`` with ``Retry-After`` and ``X-RateLimit-*`` headers
  (below).
- :class:`NginxLimitReq`: nginx's ``limit_req`` exactly as nginx computes it (integer
  milli-requests, 1 ms ticks, ``burst``, ``nodelay`` or delays); a bare ``429`` page, no
  ``Retry-After``, no headers.
- :class:`FixedWindow`: N requests per window with GitHub's ``X-RateLimit-*`` headers,
  answered ``403`` (or ``429``) without ``Retry-After`` when spent.
- :class:`IetfRateLimit`: a quota per window announced in the IETF ``RateLimit`` and
  ``RateLimit-Policy`` headers.
- :class:`LlmApi`: an OpenAI-style ``POST /v1/chat/completions`` limited in requests and
  tokens per minute per key, with usage in the body, the ``x-ratelimit-*-requests`` and
  ``-tokens`` headers, streamed answers and an optional token quota.
- :class:`GitHubApi`: GitHub's per-resource buckets (``core``, ``search``, ``graphql``
  points) chosen by path, and its secondary limit on points per minute.

::

    MockAPI({"tok-a": NginxLimitReq(5, burst=2), "tok-b": NginxLimitReq(50, burst=5),
             "tok-c": Limit(10, per=1)})
    MockAPI(tokens, profile=NginxLimitReq(20, burst=3))   # every token without its own
    api.set_profile("tok-b", NginxLimitReq(25, burst=5))  # at run time: the rate halves

What it answers, on any method and any path:

- ``200`` with JSON ``{"ok": true, "token": <masked name>, "path": ..., "method": ...}``
  (plus ``"body_bytes"`` when the request had a body); ``GET /whoami`` answers
  ``{"token": <masked name>}``, for health probes. Every request counts against the limits.
- ``401`` with ``WWW-Authenticate: Bearer error="invalid_token"`` and a JSON body saying why,
  for a missing, malformed, unknown or revoked token (:meth:`~MockAPI.revoke` and
  :meth:`~MockAPI.restore` switch tokens at run time).
- A refusal by the token's profile: with :class:`LeakyBucket`, ``429`` with ``Retry-After``
  (the time until the request would fit, as ``"0.200"`` or, with ``retry_after="int"``,
  rounded up to whole seconds like most real servers) and JSON
  ``{"error": "rate_limited", "token": <masked name>}``; the other profiles say in their
  docs what they answer.
- ``503`` for a seeded random share ``error_rate`` of admitted requests.

With :class:`LeakyBucket`, admitted responses (and 429s) carry ``X-RateLimit-Limit`` (the
binding window's burst), ``X-RateLimit-Remaining`` (whole units left after this request,
the least over the token's windows), ``X-RateLimit-Reset-After`` (seconds until that
window frees its next whole unit, i.e. until ``Remaining`` goes up) and
``X-RateLimit-Reset`` (the same as Unix time, rounded up), unless
``rate_limit_headers=False``. A leaky bucket used at full speed shows ``Remaining: 0``
after nearly every request, with the next unit ``per / rate`` seconds away; reporting the
time until the bucket is *empty* instead would tell a client that obeys the header to wait
``burst`` times too long.

Time is the event loop's (``loop.time()`` when the handler starts), so tests on virtual
time see exact, instant behaviour, ``latency`` and slow responses included: with the
``looptime`` pytest plugin, start the server inside the marked test (its fixtures run on
real time). Unix times in headers are ``time.time()`` plus the delay, so a client that
reads them against its own ``time.time()`` gets the delay back. The server keeps its own
books: :meth:`~MockAPI.stats`, :meth:`~MockAPI.all_stats` (by masked name),
:attr:`~MockAPI.totals` and :meth:`~MockAPI.admitted_times`, which is what a test needs to
check "never over the limit" from the server's side.

``tolerance`` (default 5 ms; :class:`LeakyBucket` only) admits a request that would fit
that much later. Real servers need one: they see requests when they arrive, not when they
were sent, and a client that paces itself exactly at the limit has its requests delayed by
varying amounts on the way (a new connection, a busy event loop, the network), so two of
them can arrive closer together than they left. The tolerance never raises the long-run
rate; it lets at most ``burst + rate * (t + tolerance) / per`` units through in any
interval ``t``. Use ``tolerance=0`` for the strictest check of a client.

Secrets stay secret: the server never logs (aiohttp's access log is off, since it would
show a query-string token), and ``repr``, stats, errors and response bodies only ever
show masked names.
"""

from __future__ import annotations

import asyncio
import enum
import math
import random
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from types import TracebackType
from typing import Any, Final, TypeAlias

from aiohttp import web

from aurora_async._core.limits import Limit
from aurora_async._core.tokens import Token, as_token, mask

from ._auth import AUTH_NAMES, AuthMode, credentials, valid
from ._bucket import Bucket
from ._leaky import LeakyBucket, as_limits
from ._profile import Call, Enforcer, Profile, RetryAfterForm, ServerOptions, enforcer
from ._reply import Answer, read_call, send
from ._stats import Counters, MockTokenStats

#: What a token may be given: limits (a :class:`LeakyBucket`), a profile, or ``None``
#: for the server's default.
TokenLimits: TypeAlias = Limit | Sequence[Limit] | Profile | None

_WWW_AUTHENTICATE: Final = 'Bearer error="invalid_token"'
#: How long ``close()`` lets in-flight responses finish (delays are cut short at close).
_SHUTDOWN_TIMEOUT: Final = 0.5
#: How many masked names ``repr`` shows.
_REPR_NAMES: Final = 5


class _Entry:
    """One known token: its masked name, profile, limiter state and books."""

    __slots__ = ("counters", "enforcer", "exhausted_until", "name", "profile", "revoked", "times")

    def __init__(self, name: str, profile: Profile, state: Enforcer) -> None:
        self.name = name
        self.profile = profile
        self.enforcer = state
        self.revoked = False
        self.exhausted_until = -math.inf  # loop time
        self.counters = Counters()
        self.times: list[float] = []

    @property
    def bucket(self) -> Bucket:
        """The GCRA state of a :class:`LeakyBucket` token."""
        bucket = getattr(self.enforcer, "bucket", None)
        if not isinstance(bucket, Bucket):
            raise TypeError(f"token {self.name} has no leaky bucket: {self.profile!r}")
        return bucket


class _State(enum.Enum):
    NEW = "not started"
    RUNNING = "running"
    CLOSED = "closed"


def _share(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"MockAPI {name} must be between 0 and 1, got {value!r}")
    return float(value)


def _seconds(name: str, value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"MockAPI {name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _rng(seed: int | None, salt: str) -> random.Random:
    return random.Random(None if seed is None else f"{salt}:{seed}")


def _as_profile(limits: TokenLimits, where: str) -> Profile | None:
    """``limits`` as a profile (``Limit`` objects make a :class:`LeakyBucket`)."""
    if limits is None or isinstance(limits, Profile):
        return limits
    return LeakyBucket(as_limits(limits, where))


def _loop_time() -> float | None:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return None


class MockAPI:
    """A local aiohttp server that enforces per-token rate limits (see the module docs).

    ``tokens`` maps each token to its limits (a :class:`Limit` or several, which make a
    :class:`LeakyBucket`) or to a :class:`Profile`, or lists tokens (strings or
    :class:`~aurora_async.Token` objects, whose own limits apply). Tokens without their
    own get ``profile`` if given, else ``LeakyBucket(default_limit)`` (``default_limit``
    defaults to ``Limit(10, per=1)``; give one of the two, not both). ``revoked`` tokens
    are known but answered with 401 (they need not be listed in ``tokens``). Unknown
    tokens get 401 unless ``accept_unknown``, which admits them under the default.

    ``tolerance`` (seconds) admits a request that would fit that much later (GCRA's
    delay-variation tolerance, for arrival jitter); it, ``retry_after`` and
    ``rate_limit_headers`` apply to :class:`LeakyBucket` tokens that do not set their own.
    ``error_rate`` is the share of admitted requests answered 503; every response waits
    ``latency`` seconds, except a ``slow_rate`` share that waits ``slow_latency`` instead.
    Both draws are seeded by ``seed`` (``None``: not reproducible). ``auth`` says where
    the token goes: ``"bearer"`` (header ``Authorization: Bearer <token>``), ``"header"``
    (header ``X-API-Key: <token>``) or ``"query"`` (``?api_key=<token>``); ``auth_name``
    renames that header or parameter. ``port=0`` picks a free port; :attr:`url` tells
    which.
    """

    def __init__(
        self,
        tokens: Mapping[str, TokenLimits] | Iterable[str | Token] = (),
        *,
        default_limit: Limit | Sequence[Limit] | None = None,
        profile: Profile | None = None,
        revoked: Iterable[str] = (),
        accept_unknown: bool = False,
        tolerance: float = 0.005,
        error_rate: float = 0.0,
        latency: float = 0.0,
        slow_rate: float = 0.0,
        slow_latency: float = 1.0,
        rate_limit_headers: bool = True,
        retry_after: RetryAfterForm = "float",
        auth: AuthMode = "bearer",
        auth_name: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = 0,
    ) -> None:
        for what, value in (("tokens", tokens), ("revoked", revoked)):
            if isinstance(value, str):
                raise TypeError(f"MockAPI {what} must be a collection of tokens, not one str")
        if retry_after not in ("float", "int"):
            raise ValueError(f"MockAPI retry_after must be 'float' or 'int', got {retry_after!r}")
        if auth not in AUTH_NAMES:
            raise ValueError(f"MockAPI auth must be 'bearer', 'header' or 'query', got {auth!r}")
        if profile is not None and default_limit is not None:
            raise ValueError(
                "MockAPI takes default_limit or profile for tokens without "
                "their own limits, not both"
            )
        if profile is not None and not isinstance(profile, Profile):
            raise TypeError(
                f"MockAPI profile must be a Profile such as NginxLimitReq(5, burst=2), "
                f"not {type(profile).__name__}"
            )
        if profile is None:
            default = Limit(10, per=1.0) if default_limit is None else default_limit
            profile = LeakyBucket(as_limits(default, "MockAPI default_limit"))
        self._default_profile: Profile = profile
        self._options = ServerOptions(
            tolerance=_seconds("tolerance", tolerance),
            retry_after=retry_after,
            rate_limit_headers=rate_limit_headers,
        )
        self._accept_unknown = accept_unknown
        self._error_rate = _share("error_rate", error_rate)
        self._latency = _seconds("latency", latency)
        self._slow_rate = _share("slow_rate", slow_rate)
        self._slow_latency = _seconds("slow_latency", slow_latency)
        self._auth = auth
        self._auth_name = auth_name or AUTH_NAMES[auth]
        self._host = host
        self._port = port
        self._error_rng = _rng(seed, "errors")
        self._slow_rng = _rng(seed, "slow")

        self._tokens: dict[str, _Entry] = {}
        self._names: set[str] = set()
        self._anonymous = Counters()  # requests with no known token
        self._state = _State.NEW
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()  # set by close(): delayed responses go out at once

        pairs: list[tuple[Token, TokenLimits]]
        if isinstance(tokens, Mapping):
            pairs = [(Token(value), limits) for value, limits in tokens.items()]
        else:
            pairs = [(token, token.limits) for token in map(as_token, tokens)]
        for token, limits in pairs:
            if token.value in self._tokens:
                raise ValueError(f"MockAPI: token {token.name} is listed twice")
            self._add(token.value, _as_profile(limits, f"MockAPI token {token.name}"))
        for value in revoked:
            self.revoke(value)

    # -- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving on ``host:port`` (a free port if 0)."""
        if self._state is not _State.NEW:
            raise RuntimeError(
                f"MockAPI is already {self._state.value}; create a new MockAPI to serve again"
            )
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        # No access log: its request line would show a token sent in the query string.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = runner.addresses[0][1]
        self._runner = runner
        self._state = _State.RUNNING

    async def close(self) -> None:
        """Stop serving. Delayed responses go out at once; safe to call again."""
        runner, self._runner = self._runner, None
        self._state = _State.CLOSED
        self._closing.set()
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> MockAPI:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_state", None) is _State.RUNNING:
            _warn(
                f"unclosed {self!r}: use 'async with MockAPI(...)' or 'await api.close()'",
                ResourceWarning,
                source=self,
            )

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:40123`` (no trailing slash)."""
        if self._state is not _State.RUNNING:
            raise RuntimeError(
                f"MockAPI has no url: it is {self._state.value}; "
                "use 'async with MockAPI(...) as api' or 'await api.start()' first"
            )
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    def __repr__(self) -> str:
        where = self.url if self._state is _State.RUNNING else self._state.value
        names = [entry.name for entry in self._tokens.values()]
        shown = ", ".join(names[:_REPR_NAMES])
        if len(names) > _REPR_NAMES:
            shown += f", … (+{len(names) - _REPR_NAMES} more)"
        plural = "" if len(names) == 1 else "s"
        return f"<MockAPI {where}, {len(names)} token{plural}: [{shown}]>"

    # -- tokens -----------------------------------------------------------------------

    def add_token(self, token: str, limits: TokenLimits = None) -> None:
        """Make ``token`` known from now on, with ``limits`` (``Limit`` objects or a
        :class:`Profile`; default: the server's default profile)."""
        item = Token(token)
        if item.value in self._tokens:
            raise ValueError(f"MockAPI: token {item.name} is already known")
        self._add(item.value, _as_profile(limits, f"MockAPI token {item.name}"))

    def set_profile(self, token: str, profile: Limit | Sequence[Limit] | Profile) -> None:
        """Limit ``token`` by ``profile`` (or ``Limit`` objects) from now on, as a server
        that changes a credential's tier at run time.

        If the new profile is of the same kind as the old one, what the token has spent
        carries over (each profile's docs say how, e.g. nginx keeps a node's excess across
        a reload); otherwise the token starts afresh under the new one.
        """
        entry = self._entry(token)
        new = _as_profile(profile, f"MockAPI token {entry.name}")
        if new is None:
            raise TypeError(f"MockAPI.set_profile needs a Profile or limits for {entry.name}")
        state = enforcer(new, self._options)
        now = _loop_time()
        if now is not None:  # without a running loop nothing has been served yet
            state.adopt(entry.enforcer, now)
        entry.profile, entry.enforcer = new, state

    def profile(self, token: str) -> Profile:
        """The profile that limits ``token`` now."""
        return self._entry(token).profile

    def revoke(self, token: str) -> None:
        """Answer ``token`` with 401 from now on (an unknown token becomes known, revoked)."""
        entry = self._tokens.get(token)
        if entry is None:
            entry = self._add(Token(token).value, None)
        entry.revoked = True

    def restore(self, token: str) -> None:
        """Accept a revoked ``token`` again, with the bucket state it had."""
        self._entry(token).revoked = False

    def exhaust(self, token: str, seconds: float) -> None:
        """Spend ``token``'s quota for the next ``seconds``, as if another client had
        used it up: until then every request with it is refused as its profile refuses a
        spent quota (nothing is charged to its state). With :class:`LeakyBucket`: 429
        with a ``Retry-After`` of the time left; with :class:`FixedWindow` and
        :class:`IetfRateLimit`, headers that reset when the time is up; with
        :class:`NginxLimitReq`, its bare refusal."""
        seconds = _seconds("seconds", seconds)
        entry = self._entry(token)
        entry.exhausted_until = asyncio.get_running_loop().time() + seconds

    def _add(self, value: str, profile: Profile | None) -> _Entry:
        name = base = mask(value)
        number = 1
        while name in self._names:  # two secrets with the same masked name: keep both
            number += 1
            name = f"{base}#{number}"
        profile = self._default_profile if profile is None else profile
        entry = _Entry(name, profile, enforcer(profile, self._options))
        self._names.add(name)
        self._tokens[value] = entry
        return entry

    def _entry(self, token: str) -> _Entry:
        try:
            return self._tokens[token]
        except KeyError:
            raise KeyError(f"MockAPI does not know token {mask(token)}") from None

    # -- books ------------------------------------------------------------------------

    def stats(self, token: str) -> MockTokenStats:
        """What the server saw for ``token`` (the secret value); ``KeyError`` if unknown."""
        return self._entry(token).counters.snapshot()

    def all_stats(self) -> dict[str, MockTokenStats]:
        """Every known token's stats, keyed by masked name (never by secret)."""
        return {entry.name: entry.counters.snapshot() for entry in self._tokens.values()}

    @property
    def totals(self) -> MockTokenStats:
        """Stats summed over every request, including those with no known token."""
        counters = [self._anonymous, *(entry.counters for entry in self._tokens.values())]
        return MockTokenStats(
            *(sum(getattr(c, field.name) for c in counters) for field in fields(MockTokenStats))
        )

    def admitted_times(self, token: str) -> list[float]:
        """The loop times at which ``token``'s requests were admitted (200 or 503), in order."""
        return list(self._entry(token).times)

    def reset_stats(self) -> None:
        """Zero every counter and forget admitted times. Limits keep their state."""
        self._anonymous.clear()
        for entry in self._tokens.values():
            entry.counters.clear()
            entry.times.clear()

    # -- serving ----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        now = asyncio.get_running_loop().time()
        wall = time.time()
        slow = self._slow_rate > 0 and self._slow_rng.random() < self._slow_rate
        # A profile that reads requests gets the whole body first (time stays ``now``).
        call = await read_call(request) if self._reads_body(request) else None
        # Decide and count synchronously, then do the awaiting.
        answer = self._decide(request, now, wall, slow, call)
        body = answer.body
        if answer.status == 200 and call is None and request.body_exists and isinstance(body, dict):
            size = 0  # counted as it streams in: no size limit, nothing kept
            async for chunk in request.content.iter_any():
                size += len(chunk)
            body["body_bytes"] = size
        delay = answer.held + (self._slow_latency if slow else self._latency)
        return await send(request, answer, delay, self._closing)

    def _reads_body(self, request: web.Request) -> bool:
        """Whether the request's token is limited by a profile that reads requests."""
        secret, _ = credentials(request, self._auth, self._auth_name, self._tokens)
        entry = None if secret is None else self._tokens.get(secret)
        if entry is not None:
            return entry.profile.reads_body and not entry.revoked
        return secret is not None and self._accept_unknown and self._default_profile.reads_body

    def _decide(
        self, request: web.Request, now: float, wall: float, slow: bool, call: Call | None
    ) -> Answer:
        secret, problem = credentials(request, self._auth, self._auth_name, self._tokens)
        entry = self._tokens.get(secret) if secret is not None else None
        if entry is None and secret is not None:
            if self._accept_unknown and valid(secret):
                entry = self._add(secret, None)
            else:
                problem = "unknown token"
        counters = self._anonymous if entry is None else entry.counters
        counters.requests += 1
        counters.slow += slow
        if entry is None or entry.revoked:
            counters.unauthorized += 1
            if entry is not None:
                problem = f"token {entry.name} is revoked"
            return Answer(
                401,
                {"error": "invalid_token", "error_description": problem},
                {"WWW-Authenticate": _WWW_AUTHENTICATE},
            )

        if now < entry.exhausted_until:
            decision = entry.enforcer.exhausted(now, entry.exhausted_until, wall)
        elif call is not None:
            decision = entry.enforcer.decide_call(call, now, wall)
        else:
            decision = entry.enforcer.decide(now, wall)
        headers = decision.headers
        if not decision.admitted:
            if decision.bad_request:
                counters.bad_requests += 1
            else:
                counters.rate_limited += 1
            refusal = (
                decision.body or decision.page or {"error": "rate_limited", "token": entry.name}
            )
            return Answer(decision.status, refusal, headers, stream=decision.stream)

        entry.times.append(now)
        counters.delayed += decision.delay > 0
        counters.tokens += decision.tokens
        if self._error_rate > 0 and self._error_rng.random() < self._error_rate:
            counters.server_errors += 1
            return Answer(503, {"error": "unavailable", "token": entry.name}, headers)
        counters.ok += 1
        if decision.body is not None or decision.stream is not None:
            body = decision.body or {}
            return Answer(200, body, headers, decision.delay, decision.stream)
        if request.method == "GET" and request.path == "/whoami":
            return Answer(200, {"token": entry.name}, headers, decision.delay)
        body = {"ok": True, "token": entry.name, "path": request.path, "method": request.method}
        if call is not None and call.body is not None and request.body_exists:
            body["body_bytes"] = len(call.body)  # read whole for the profile
        return Answer(200, body, headers, decision.delay)
