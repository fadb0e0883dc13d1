"""``pool.request``: aiohttp with a leased token, outcome accounting and retries.

One attempt: lease a token, put it into the request, send it, classify the response
(your policy first, then the default table), tell the pool what happened to the token,
and either return the response or retry on another token. Decisions come from the pure
core (``_core.headers``, ``_core.policy``); this module only does the I/O they ask for.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, overload

import aiohttp
from multidict import CIMultiDict, MultiDict
from yarl import URL

from .. import _log
from .._core.headers import parse_rate_limit_headers
from .._core.policy import Outcome, Verdict, classify
from .._core.scheduler import INF
from .._errors import LeaseTimeout, RequestFailed
from .auth import BearerAuth, HeaderAuth
from .options import HttpOptions

if TYPE_CHECKING:
    from .._pool.lease import Lease
    from .._pool.pool import TokenPool

_NO_PARAMS: MultiDict[str] = MultiDict()  # shared, never written: header auth leaves it be

#: Methods a retry cannot make worse (RFC 9110 section 9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

#: Transport errors that certainly happened before the server saw the request.
_BEFORE_SERVER = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
_TRANSPORT = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class HttpClient:
    """The HTTP side of one pool: its session and its request loop."""

    def __init__(self, pool: TokenPool, options: HttpOptions) -> None:
        self._pool = pool
        self.options = options
        self._session = options.session
        self._owned = options.session is None
        self._base = options.base_url.rstrip("/") if options.base_url else None

    def _session_for_use(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(limit=self.options.connections, limit_per_host=0)
            session = self._session = aiohttp.ClientSession(connector=connector)
        return session

    def _url(self, url: str) -> str:
        if self._base is not None and not url.startswith(("http://", "https://")):
            return f"{self._base}/{url.lstrip('/')}"
        return url

    async def aclose(self) -> None:
        if self._owned and self._session is not None:
            await self._session.close()
        self._session = None

    # -- one request, with retries ------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        *,
        cost: float = 1,
        lease_timeout: float | None = None,
        **kwargs: Any,
    ) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        """Send, retry on another token where the outcome allows, read the body, return.

        Not a coroutine itself: it hands back the attempt loop's coroutine, which also
        reads the body, so every ``await`` inside aiohttp resumes through one frame of
        ours, not three (that is most of what pool.request costs over plain aiohttp)."""
        raise_for_status = self._wants_raise(kwargs)
        return self._attempts(method, url, cost, lease_timeout, kwargs, raise_for_status)

    async def _read(
        self, resp: aiohttp.ClientResponse, lease: Lease, method: str, url: str, raising: bool
    ) -> aiohttp.ClientResponse:
        """Read the final response's body and end its lease."""
        try:
            await resp.read()  # once read, aiohttp frees the connection by itself
        except _TRANSPORT as exc:
            lease.failed()
            resp.release()
            raise RequestFailed(
                method,
                url,
                [f"{lease.name}: {self._describe(exc)}"],
                "the response body could not be read",
            ) from None
        except BaseException:
            lease.failed()
            resp.release()
            raise
        finally:
            lease.release()
        if raising:
            self._raise_for_status(resp, method, url)
        return resp

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        cost: float = 1,
        lease_timeout: float | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Like :meth:`request`, but the body is yours to read inside the block, and the
        lease is held until the block ends (the response is released then)."""
        raise_for_status = self._wants_raise(kwargs)
        resp, lease = await self._attempts(method, url, cost, lease_timeout, kwargs, None)
        try:
            if raise_for_status:
                self._raise_for_status(resp, method, url)
            yield resp
        except BaseException:
            lease.failed()
            raise
        finally:
            resp.release()
            lease.release()

    def _wants_raise(self, kwargs: dict[str, Any]) -> bool:
        """aiohttp's ``raise_for_status`` (the argument, else the session's), applied by
        us after accounting: aiohttp raising first would hide every 429 from the pool."""
        wanted = kwargs.pop("raise_for_status", None)
        if wanted is None:
            wanted = self._session.raise_for_status if self._session is not None else False
        if callable(wanted):
            raise TypeError(
                "raise_for_status as a function is not supported by pool.request; "
                "check resp.status yourself"
            )
        return bool(wanted)

    def _raise_for_status(self, resp: aiohttp.ClientResponse, method: str, url: str) -> None:
        if resp.status >= 400:
            resp.release()
            raise RequestFailed(
                method.upper(), url, [f"HTTP {resp.status}"], f"HTTP {resp.status} {resp.reason}"
            )

    @overload
    async def _attempts(
        self,
        method: str,
        url: str,
        cost: float,
        lease_timeout: float | None,
        kwargs: dict[str, Any],
        read: None,
    ) -> tuple[aiohttp.ClientResponse, Lease]: ...

    @overload
    async def _attempts(
        self,
        method: str,
        url: str,
        cost: float,
        lease_timeout: float | None,
        kwargs: dict[str, Any],
        read: bool,
    ) -> aiohttp.ClientResponse: ...

    async def _attempts(
        self,
        method: str,
        url: str,
        cost: float,
        lease_timeout: float | None,
        kwargs: dict[str, Any],
        read: bool | None,
    ) -> tuple[aiohttp.ClientResponse, Lease] | aiohttp.ClientResponse:
        """Try until an outcome says stop. With ``read`` ``None`` (streaming), return the
        final response (body unread) and its lease, still held; otherwise read the body,
        end the lease, apply ``raise_for_status`` if ``read`` is true, and return the
        response. Every other lease and response is ended here."""
        method = method.upper()
        options = self.options
        pool = self._pool
        loop = asyncio.get_running_loop()
        full_url = self._url(url)
        deadline = INF if options.deadline is None else loop.time() + options.deadline
        safe = method in IDEMPOTENT or options.retry_unsafe
        headers_in = kwargs.pop("headers", None)
        params_in = _params(kwargs.pop("params", None))
        user_timeout = kwargs.pop("timeout", None)
        attempts: list[str] = []
        backoff = options.retry_backoff[0]
        for attempt in range(1, options.max_attempts + 1):
            try:
                lease = pool.lease(cost, _remaining(lease_timeout, deadline, loop.time()))
                await lease.__aenter__()  # released by hand below, on every path
            except LeaseTimeout:
                if not attempts:
                    raise
                raise RequestFailed(
                    method, url, attempts, "no token came free for another attempt in time"
                ) from None
            # A case-insensitive copy only when there is something to merge with.
            headers: MutableMapping[str, str] = CIMultiDict(headers_in) if headers_in else {}
            params: MultiDict[str] = MultiDict(params_in) if params_in else _NO_PARAMS
            if params is _NO_PARAMS and not isinstance(options.auth, BearerAuth | HeaderAuth):
                params = MultiDict()
            options.auth.apply(lease.token, headers, params)
            session = self._session_for_use()
            try:
                resp = await session.request(
                    method,
                    full_url,
                    headers=headers,
                    params=params or None,
                    raise_for_status=False,
                    **_timeout_kwargs(user_timeout, deadline, loop.time()),
                    **kwargs,
                )
            except _TRANSPORT as exc:
                lease.failed()
                lease.release()
                before = isinstance(exc, _BEFORE_SERVER)
                attempts.append(f"{lease.name}: {self._describe(exc)}")
                _log.info(
                    "aurora.http.transport_error",
                    token=lease.name,
                    error=type(exc).__name__,
                    attempt=attempt,
                    method=method,
                    url=url,
                )
                if attempt < options.max_attempts and (safe or before) and loop.time() < deadline:
                    backoff = await _pause(backoff, options.retry_backoff[1], deadline, loop)
                    continue
                raise RequestFailed(
                    method, url, attempts, _transport_why(exc, before, safe)
                ) from None
            except BaseException:
                lease.failed()
                lease.release()
                raise
            try:
                outcome = self._judge(resp, lease)
                if not isinstance(outcome, Outcome):  # a policy that must be awaited
                    outcome = await self._judged(outcome, resp, lease)
            except BaseException:
                resp.release()
                lease.failed()
                lease.release()
                raise
            retry = (
                outcome.retry
                and attempt < options.max_attempts
                and (safe or outcome.before_server_acted)
                and loop.time() < deadline
            )
            if not retry:
                if read is None:
                    return resp, lease
                return await self._read(resp, lease, method, url, read)
            attempts.append(f"{lease.name}: {resp.status}")
            resp.release()
            lease.release()
            _log.info(
                "aurora.http.retry",
                token=lease.name,
                status=resp.status,
                verdict=outcome.verdict.value,
                attempt=attempt,
                method=method,
                url=url,
            )
            if outcome.verdict is Verdict.SERVER_ERROR:
                backoff = await _pause(backoff, options.retry_backoff[1], deadline, loop)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def _describe(self, exc: BaseException) -> str:
        """The exception's class and message, with any token in it masked."""
        text = self._pool._redact(str(exc))
        if len(text) > 160:
            text = text[:157] + "..."
        return f"{type(exc).__name__}({text})" if text else type(exc).__name__

    def _judge(
        self, resp: aiohttp.ClientResponse, lease: Lease
    ) -> Outcome | Awaitable[Outcome | None]:
        """Classify a response and account for it on the lease's token, or hand back
        the awaitable of an async policy (see :meth:`_judged`)."""
        policy = self.options.policy
        if policy is not None:
            result = policy(resp)
            if inspect.isawaitable(result):
                return result
            return self._account(resp, lease, _checked(result))
        return self._account(resp, lease, None)

    async def _judged(
        self, pending: Awaitable[Outcome | None], resp: aiohttp.ClientResponse, lease: Lease
    ) -> Outcome:
        return self._account(resp, lease, _checked(await pending))

    def _account(
        self, resp: aiohttp.ClientResponse, lease: Lease, outcome: Outcome | None
    ) -> Outcome:
        info, problems = parse_rate_limit_headers(resp.headers, now=time.time())
        for problem in problems:
            _log.debug(
                "aurora.http.header_ignored",
                token=lease.name,
                header=problem.header,
                reason=problem.reason,
            )
        if outcome is None:
            outcome = classify(resp.status, info)
        self._pool._account_response(lease, outcome, info, self.options.header_slack)
        return outcome


def _checked(outcome: object) -> Outcome | None:
    if outcome is not None and not isinstance(outcome, Outcome):
        raise TypeError(
            f"the policy returned {type(outcome).__name__}; it must return an Outcome or None"
        )
    return outcome


def _params(params: Any) -> Any:
    """Query parameters in any form aiohttp takes (mapping, pairs, or a query string)."""
    if params is None:
        return ()
    if isinstance(params, str):
        return URL("?" + params.lstrip("?")).query
    return params


def _timeout_kwargs(user: Any, deadline: float, now: float) -> dict[str, Any]:
    """The user's aiohttp timeout, bounded by what is left of the overall deadline."""
    if deadline == INF:
        return {} if user is None else {"timeout": user}
    left = max(0.001, deadline - now)
    if user is None:
        return {"timeout": aiohttp.ClientTimeout(total=left)}
    total = left if user.total is None else min(user.total, left)
    bounded = aiohttp.ClientTimeout(
        total=total,
        connect=user.connect,
        sock_read=user.sock_read,
        sock_connect=user.sock_connect,
        ceil_threshold=user.ceil_threshold,
    )
    return {"timeout": bounded}


def _remaining(lease_timeout: float | None, deadline: float, now: float) -> float | None:
    if deadline == INF:
        return lease_timeout
    left = max(0.0, deadline - now)
    return left if lease_timeout is None else min(lease_timeout, left)


async def _pause(backoff: float, cap: float, deadline: float, loop: Any) -> float:
    """Wait before retrying a failure that may be the server's (never past the deadline)."""
    delay = min(backoff, max(0.0, deadline - loop.time()))
    if delay > 0:
        await asyncio.sleep(delay)
    return min(cap, backoff * 2) if backoff else cap


def _transport_why(exc: BaseException, before: bool, safe: bool) -> str:
    if before or safe:
        return f"the last attempt failed with {type(exc).__name__}"
    return (
        f"{type(exc).__name__} after the request may have reached the server; a "
        "non-idempotent request is not retried then (pass retry_unsafe=True to allow it)"
    )
