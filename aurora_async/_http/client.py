"""``pool.request``: aiohttp with a leased token, outcome accounting and retries.

One attempt: lease a token, put it into the request, send it, classify the response
(your policy first, then the default table), tell the pool what happened to the token,
and either return the response or retry on another token. Decisions come from the pure
core (``_core.headers``, ``_core.policy``); this module only does the I/O they ask for.

Rules a reader of the loop below should know:

* A lease taken is released on every path, exceptions and cancellation included.
* The URL is parsed once, and a URL no attempt could send (malformed, no host, not
  http(s), a bad port) is a ``ValueError`` before any token is leased.
* A request body that cannot be sent twice (a file, a stream, a generator, a form with
  a file in it) is never retried, nor re-sent by a redirect: the first answer, whatever
  it is, goes back to the caller.
* A 401 disables the token and is retried once on another token; a second 401 within
  the same request is returned (it is more likely the request than the tokens).
* Redirects: aiohttp drops ``Authorization`` when a redirect leaves the origin, but no
  other header. For any other way of sending the token (``HeaderAuth``, ``QueryAuth``,
  a custom ``BearerAuth`` header, a function), and for bodies that cannot be sent twice,
  this module follows redirects itself: the token, the caller's ``Authorization``,
  ``Cookie`` and ``Proxy-Authorization`` headers, ``auth=`` and ``cookies=`` go only to
  the origin the request was meant for. A response from another origin (after such a
  redirect) says nothing of the token's limits: it is returned and counted as fine.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine, MutableMapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, overload

import aiohttp
from multidict import CIMultiDict, MultiDict, MultiDictProxy
from yarl import URL

from .. import _log
from .._core.headers import parse_rate_limit_headers
from .._core.policy import Outcome, Verdict, classify
from .._core.scheduler import INF, Slot
from .._errors import LeaseTimeout, NoTokensAvailable, PoolClosed, RequestFailed
from .._pool.lease import RetryLease
from .auth import BearerAuth, HeaderAuth
from .options import HttpOptions

if TYPE_CHECKING:
    from .._pool.lease import Lease
    from .._pool.pool import TokenPool

_NO_PARAMS: MultiDict[str] = MultiDict()  # shared, never written: header auth leaves it be

#: Methods a retry cannot make worse (RFC 9110 section 9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

#: Failures of the connection: retried on another token (where the method allows).
_TRANSPORT = (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError)
#: ... of which these certainly happened before the server saw the request.
_BEFORE_SERVER = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Request headers with credentials of the caller's: never sent to another origin.
_CREDENTIAL_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")
#: ... and the same as aiohttp arguments.
_CREDENTIAL_KWARGS = frozenset({"auth", "cookies"})
#: Bodies aiohttp builds afresh for every attempt (a form's fields are checked too).
_BYTES = (bytes, bytearray, memoryview, str)
_PLAIN = (*_BYTES, int, float)
_FORMS = (dict, MultiDict, MultiDictProxy)
#: What a response from another origin means for the token: nothing (it went fine).
_ELSEWHERE = Outcome(Verdict.OK)
#: A relative URL may begin with a path segment holding a colon ("items:batchGet"), so
#: only these are taken as absolute URLs, never joined with base_url.
_ABSOLUTE = re.compile(r"(?:[a-z][a-z0-9+.\-]*://|https?:)", re.IGNORECASE)
#: Characters no host name has (yarl lets some through).
_BAD_HOST = re.compile(r"[\x00-\x20\x7f<>\"{}|\\^`]")
_UNSET: Any = object()


class HttpClient:
    """The HTTP side of one pool: its session and its request loop."""

    def __init__(self, pool: TokenPool, options: HttpOptions) -> None:
        self._pool = pool
        self.options = options
        self._session = options.session
        self._owned = options.session is None
        self._base = options.base_url.rstrip("/") if options.base_url else None
        auth = options.auth
        # aiohttp already keeps a bearer token in Authorization from other origins.
        self._manual_redirects = not (
            isinstance(auth, BearerAuth) and auth.header.lower() == "authorization"
        )
        self._header_auth = isinstance(auth, BearerAuth | HeaderAuth)
        self._active = 0  # requests under way
        self._drained: asyncio.Future[None] | None = None  # aclose waits on it

    def _session_for_use(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(limit=self.options.connections, limit_per_host=0)
            session = self._session = aiohttp.ClientSession(connector=connector)
        return session

    def _url(self, url: str) -> str:
        if (
            self._base is not None
            and not url.startswith(("http://", "https://"))
            and not _ABSOLUTE.match(url)
        ):
            return f"{self._base}/{url.lstrip('/')}"
        return url

    def _target(self, url: str) -> URL:
        """The URL to send to, parsed once (aiohttp takes it as it is), or a
        ``ValueError`` saying what is wrong with it."""
        full = self._url(url)
        try:
            target = _parsed(full)
        except ValueError as exc:
            joined = f" (joined with base_url: {full!r})" if full != url else ""
            # A token pasted into the URL by hand is masked too.
            raise ValueError(self._pool._redact(f"{exc}: {url!r}{joined}")) from None
        if target.absolute:
            return target
        # A relative URL and no base_url of the pool: a borrowed session's own base_url
        # completes it (joined here as aiohttp would), else it names no host to send to.
        base = getattr(self._session, "_base_url", None)
        if not isinstance(base, URL):
            raise ValueError(
                self._pool._redact(
                    f"not an absolute URL, and there is no base_url to join it with: {url!r}"
                )
            )
        return base.join(target)

    async def aclose(self, grace: float = 30.0) -> None:
        """Let requests under way finish (at most ``grace`` seconds), then close the
        session if it is ours."""
        if self._active:
            self._drained = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._drained), grace)
            except TimeoutError:
                _log.warning("aurora.http.close_timeout", requests=self._active, grace=grace)
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
        lease is held until the block ends (the response is released then). An
        exception in your block does not change what the response said of the token."""
        raise_for_status = self._wants_raise(kwargs)
        self._active += 1  # until the block ends: aclose waits for open streams too
        try:
            resp, lease, attempts = await self._attempts(
                method, url, cost, lease_timeout, kwargs, None
            )
            if raise_for_status and resp.status >= 400:
                resp.release()
                lease.release()
                raise self._status_error(resp, method, url, attempts)
            try:
                yield resp
            finally:
                resp.release()
                lease.release()
        finally:
            self._finished()

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

    @staticmethod
    def _status_error(
        resp: aiohttp.ClientResponse, method: str, url: str, attempts: list[str]
    ) -> RequestFailed:
        return RequestFailed(
            method.upper(),
            url,
            attempts,
            f"HTTP {resp.status} {resp.reason} (raise_for_status)",
            status=resp.status,
        )

    @overload
    def _attempts(
        self,
        method: str,
        url: str,
        cost: float,
        lease_timeout: float | None,
        kwargs: dict[str, Any],
        read: None,
    ) -> Coroutine[Any, Any, tuple[aiohttp.ClientResponse, Lease, list[str]]]: ...

    @overload
    def _attempts(
        self,
        method: str,
        url: str,
        cost: float,
        lease_timeout: float | None,
        kwargs: dict[str, Any],
        read: bool,
    ) -> Coroutine[Any, Any, aiohttp.ClientResponse]: ...

    def _attempts(
        self,
        method: str,
        url: str,
        cost: float,
        lease_timeout: float | None,
        kwargs: dict[str, Any],
        read: bool | None,
    ) -> Coroutine[Any, Any, Any]:
        """The request's coroutine, after checking what can be checked at once (the
        URL: a ``ValueError`` now, before any token is leased).

        Try until an outcome says stop. With ``read`` ``None`` (streaming), the
        coroutine returns the final response (body unread), its lease (still held) and
        the attempts so far; otherwise it reads the body, ends the lease, applies
        ``raise_for_status`` if ``read`` is true, and returns the response. Every other
        lease and response ends inside it. It is one coroutine frame for the whole
        request (attempts, sending, reading): every await inside aiohttp resumes
        through each frame of ours, so one is faster than three."""
        method = method.upper()
        target = self._target(url)
        return self._loop(method, url, target, cost, lease_timeout, kwargs, read)

    async def _loop(
        self,
        method: str,
        url: str,
        full_url: URL,
        cost: float,
        lease_timeout: float | None,
        kwargs: dict[str, Any],
        read: bool | None,
    ) -> tuple[aiohttp.ClientResponse, Lease, list[str]] | aiohttp.ClientResponse:
        self._active += 1
        try:
            options = self.options
            pool = self._pool
            loop = asyncio.get_running_loop()
            deadline = INF if options.deadline is None else loop.time() + options.deadline
            safe = method in IDEMPOTENT or options.retry_unsafe
            headers_in = kwargs.pop("headers", None)
            params_in = _params(kwargs.pop("params", None))
            user_timeout = _timeout(kwargs.pop("timeout", _UNSET))
            replayable = _replayable(kwargs.get("data"))
            # aiohttp would re-send a body on a 307 (or fail on a spent one), and before
            # 3.14 kept a caller's cookies on a redirect to another origin: not that.
            manual = (
                self._manual_redirects
                or not replayable
                or "cookies" in kwargs
                or _has_credentials(headers_in)
            ) and kwargs.get("allow_redirects", True)
            max_redirects = kwargs.pop("max_redirects", 10) if manual else None
            if manual:
                kwargs["allow_redirects"] = False
            tries = options.max_attempts if replayable else 1
            attempts: list[str] = []
            unauthorized = 0
            backoff = options.retry_backoff[0]
            last: Slot | None = None  # the previous attempt's token: the next goes elsewhere
            for attempt in range(1, tries + 1):
                try:
                    left = _remaining(lease_timeout, deadline, loop.time())
                    lease = (
                        pool.lease(cost, left)
                        if last is None
                        else RetryLease(pool, cost, left, last)
                    )
                    await lease.__aenter__()  # released by hand below, on every path
                except LeaseTimeout:
                    if not attempts:
                        raise
                    raise RequestFailed(
                        method, url, attempts, "no token came free for another attempt in time"
                    ) from None
                except (NoTokensAvailable, PoolClosed) as exc:
                    if not attempts:
                        raise
                    raise type(exc)(f"{exc} (this request tried: {'; '.join(attempts)})") from None
                try:
                    if max_redirects is None:  # the usual case, awaited right here
                        headers, params = self._credentials(lease, headers_in, params_in)
                        resp = await self._session_for_use().request(
                            method,
                            full_url,
                            headers=headers,
                            params=params,
                            raise_for_status=False,
                            **_timeout_kwargs(user_timeout, deadline, loop.time()),
                            **kwargs,
                        )
                        # aiohttp followed redirects. Once a hop left the origin, it sent
                        # no token any more, back at the origin too: not the token's answer.
                        foreign = bool(resp.history) and _left(full_url, resp)
                    else:
                        resp, foreign = await self._send_following(
                            method, full_url, lease.token, headers_in, params_in,
                            user_timeout, deadline, kwargs, max_redirects, replayable,
                        )  # fmt: skip
                except _TRANSPORT as exc:
                    last = lease.slot
                    attempts.append(f"{lease.name}: {self._describe(exc, lease)}")
                    lease.failed()
                    lease.release()
                    before = isinstance(exc, _BEFORE_SERVER)
                    _log.info(
                        "aurora.http.transport_error",
                        token=lease.name,
                        error=type(exc).__name__,
                        attempt=attempt,
                        method=method,
                        url=url,
                    )
                    if attempt < tries and (safe or before) and loop.time() < deadline:
                        backoff = await _pause(backoff, options.retry_backoff[1], deadline, loop)
                        continue
                    raise RequestFailed(
                        method, url, attempts, _transport_why(exc, before, safe, tries)
                    ) from None
                except aiohttp.ClientError as exc:  # not the connection: the request itself
                    attempts.append(f"{lease.name}: {self._describe(exc, lease)}")
                    lease.failed()
                    lease.release()
                    raise RequestFailed(method, url, attempts, "the request was refused") from None
                except BaseException:
                    lease.failed()
                    lease.release()
                    raise
                try:
                    if foreign:  # another origin's answer: nothing to do with the token
                        lease.succeeded()
                        outcome = _ELSEWHERE
                    else:
                        judged = self._judge(resp, lease)
                        if isinstance(judged, Outcome):
                            outcome = judged
                        else:  # a policy that must be awaited
                            outcome = await self._judged(judged, resp, lease)
                except BaseException:
                    resp.release()
                    lease.failed()
                    lease.release()
                    raise
                if outcome.verdict is Verdict.REVOKED:
                    unauthorized += 1
                retry = (
                    outcome.retry
                    and attempt < tries
                    and (safe or outcome.before_server_acted)
                    and unauthorized < 2
                    and loop.time() < deadline
                )
                if not retry:
                    if read is None:
                        return resp, lease, attempts
                    try:
                        await resp.read()  # once read, aiohttp frees the connection itself
                    except (*_TRANSPORT, aiohttp.ClientError) as exc:
                        attempts.append(f"{lease.name}: {self._describe(exc, lease)}")
                        lease.failed()
                        resp.release()
                        raise RequestFailed(
                            method, url, attempts, "the response body could not be read"
                        ) from None
                    except BaseException:
                        lease.failed()
                        resp.release()
                        raise
                    finally:
                        lease.release()
                    if read and resp.status >= 400:
                        attempts.append(f"{lease.name}: {resp.status}")
                        raise self._status_error(resp, method, url, attempts)
                    return resp
                attempts.append(f"{lease.name}: {resp.status}")
                last = lease.slot
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
            raise AssertionError(
                "unreachable: the last attempt returns or raises"
            )  # pragma: no cover
        finally:
            self._finished()

    def _finished(self) -> None:
        """One request (or stream) under way less; the last one lets ``aclose`` go on."""
        self._active -= 1
        drained = self._drained
        if not self._active and drained is not None and not drained.done():
            drained.set_result(None)

    def _credentials(
        self, lease: Lease, headers_in: Any, params_in: Any
    ) -> tuple[MutableMapping[str, str], Any]:
        """The request's headers and query parameters with ``lease``'s token put in."""
        auth_headers: MutableMapping[str, str] = {}
        auth_params: MultiDict[str] = _NO_PARAMS if self._header_auth else MultiDict()
        self.options.auth.apply(lease.token, auth_headers, auth_params)
        headers: MutableMapping[str, str] = auth_headers
        if headers_in:  # a case-insensitive merge only when there is something to merge
            headers = CIMultiDict(headers_in)
            headers.update(auth_headers)
        return headers, _merged(params_in, auth_params)

    async def _send_following(
        self,
        method: str,
        url: URL,
        token: str,
        headers_in: Any,
        params_in: Any,
        user_timeout: Any,
        deadline: float,
        kwargs: dict[str, Any],
        max_redirects: int,
        replayable: bool,
    ) -> tuple[aiohttp.ClientResponse, bool]:
        """One attempt whose redirects this module follows itself. The token goes again
        only to the origin it was meant for; to another origin go neither the token (in
        a header or the query, even where the Location repeats it) nor the caller's
        credentials. A redirect that would re-send a body that cannot be sent twice is
        returned, not followed. Returns the final response and whether it came from
        another origin."""
        auth_headers: dict[str, str] = {}
        auth_params: MultiDict[str] = MultiDict()
        self.options.auth.apply(token, auth_headers, auth_params)
        headers: CIMultiDict[str] = CIMultiDict(headers_in) if headers_in else CIMultiDict()
        headers.update(auth_headers)
        auth_keys = frozenset(auth_params)
        session = self._session_for_use()
        loop = asyncio.get_running_loop()
        resp = await session.request(
            method,
            url,
            headers=headers,
            params=_merged(params_in, auth_params),
            raise_for_status=False,
            **_timeout_kwargs(user_timeout, deadline, loop.time()),
            **kwargs,
        )
        origin = url.origin()
        foreign = False
        for _ in range(max_redirects):
            location = resp.headers.get("Location")
            if resp.status not in _REDIRECTS or not location:
                return resp, foreign
            # As aiohttp and browsers do: a 303, or a POST's 301/302, goes on as a GET
            # without the body; any other redirect sends the same body again.
            drop_body = (resp.status == 303 and method != "HEAD") or (
                resp.status in {301, 302} and method == "POST"
            )
            if not drop_body and not replayable:
                return resp, foreign
            base = resp.url
            resp.release()
            try:
                hop = URL(location)
            except ValueError:
                hop = None
            if hop is None or hop.scheme not in {"", "http", "https"}:
                raise aiohttp.InvalidURL(location)  # as aiohttp does (a ClientError)
            current = base.join(hop)
            if not current.absolute or not current.raw_host:
                raise aiohttp.InvalidURL(location)  # "https:/x" from an http page, say
            if drop_body:
                method = "GET"
                kwargs = {k: v for k, v in kwargs.items() if k not in {"data", "json"}}
            # The Location is the whole URL: the auth's query parameters come out of it
            # (never twice on the same origin, never the token elsewhere) ...
            current = _without_params(current, auth_keys, token)
            if current.origin() == origin:
                # ... and go back in for the origin the token is meant for.
                foreign = False
                hop_headers: CIMultiDict[str] | None = headers
                hop_params: MultiDict[str] | None = auth_params or None
                hop_kwargs = kwargs
            else:
                foreign = True
                hop_headers = CIMultiDict(headers_in) if headers_in else CIMultiDict()
                for name in (*_CREDENTIAL_HEADERS, *auth_headers):
                    hop_headers.popall(name, None)
                hop_params = None
                hop_kwargs = {k: v for k, v in kwargs.items() if k not in _CREDENTIAL_KWARGS}
            resp = await session.request(
                method,
                current,
                headers=hop_headers,
                params=hop_params,
                raise_for_status=False,
                **_timeout_kwargs(user_timeout, deadline, loop.time()),
                **hop_kwargs,
            )
        if resp.status in _REDIRECTS and resp.headers.get("Location"):
            resp.release()
            raise aiohttp.TooManyRedirects(resp.request_info, (), status=resp.status)
        return resp, foreign

    def _describe(self, exc: BaseException, lease: Lease) -> str:
        """The exception's class and message, with any token in it masked (the lease's
        own too, even if a reload has dropped it from the pool meanwhile)."""
        text = self._pool._redact(str(exc), (lease.token, lease.name))
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


@functools.lru_cache(maxsize=1024)
def _parsed(url: str) -> URL:
    """``url`` parsed, or a ``ValueError`` saying why no request could go there. A
    relative URL (no scheme, no host) is returned as it is: the caller decides. Cached:
    an ordinary URL is parsed once however often it is requested."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a valid URL ({exc})") from None
    scheme = parsed.scheme
    host = parsed.raw_host
    if not scheme and not host:
        return parsed
    if scheme not in {"http", "https"}:
        what = scheme or "a URL without a scheme"
        raise ValueError(f"pool.request sends http(s) requests only, not {what}")
    if not host:
        raise ValueError("the URL has no host")
    if _BAD_HOST.search(host):
        raise ValueError(f"the URL's host {host!r} is not a host name")
    if parsed.explicit_port == 0:
        raise ValueError("the URL's port is 0 (valid ports are 1 to 65535)")
    return parsed


def _replayable(data: Any) -> bool:
    """Whether a request body (aiohttp's ``data``) can be sent again, on another attempt
    or after a redirect: bytes, text, a form of plain values (a mapping, pairs, or a
    ``FormData`` without files), not a file, a stream, a generator, or a form holding
    one. (``json=`` is always replayable: aiohttp encodes it for each request.)"""
    if data is None or isinstance(data, _BYTES):
        return True
    if isinstance(data, aiohttp.FormData):
        fields = getattr(data, "_fields", None)
        if not isinstance(fields, list):
            return False
        # aiohttp builds a multipart body once (older versions refuse to build it again;
        # newer ones reuse it, with its fields gone from the form).
        multipart = getattr(data, "_is_multipart", True)
        if multipart and (not fields or hasattr(data, "_is_processed")):
            return False
        return all(_plain(value) for _, _, value in fields)
    if isinstance(data, _FORMS):
        return all(_plain(value) for value in data.values())
    if isinstance(data, list | tuple):
        return all(_plain_field(field) for field in data)
    return isinstance(data, aiohttp.payload.BytesPayload)


def _plain_field(field: Any) -> bool:
    """One element of a form given as a list: a (name, value) pair or a multidict."""
    if isinstance(field, MultiDict | MultiDictProxy):
        return all(_plain(value) for value in field.values())
    return isinstance(field, list | tuple) and len(field) == 2 and _plain(field[1])


def _plain(value: Any) -> bool:
    """A form field's value that aiohttp encodes afresh each time it builds the form."""
    if value is None or isinstance(value, _PLAIN):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(item) for item in value)
    return isinstance(value, aiohttp.payload.BytesPayload)


def _has_credentials(headers: Any) -> bool:
    """Whether the caller's own headers carry a cookie or proxy credentials."""
    if not headers:
        return False
    given = CIMultiDict(headers)  # a mapping or (name, value) pairs
    return "Cookie" in given or "Proxy-Authorization" in given


def _left(origin_url: URL, resp: aiohttp.ClientResponse) -> bool:
    """Whether any hop of the redirects aiohttp followed was on another origin."""
    origin = origin_url.origin()
    return resp.url.origin() != origin or any(h.url.origin() != origin for h in resp.history)


def _without_params(url: URL, keys: frozenset[str], token: str) -> URL:
    """``url`` without the query parameters named ``keys`` or holding ``token``."""
    query = url.query
    if not query:
        return url
    kept = [(k, v) for k, v in query.items() if k not in keys and v != token]
    return url if len(kept) == len(query) else url.with_query(kept)


def _params(params: Any) -> Any:
    """Query parameters in any form aiohttp takes (mapping, pairs, or a query string)."""
    if params is None:
        return ()
    if isinstance(params, str):
        return URL("?" + params.lstrip("?")).query
    return params


def _merged(params_in: Any, auth_params: MultiDict[str]) -> Any:
    if not params_in:
        return auth_params or None
    merged: MultiDict[str] = MultiDict(params_in)
    merged.extend(auth_params)
    return merged


def _timeout(user: Any) -> Any:
    """aiohttp's ``timeout`` argument as given: a number is a total, ``None`` means no
    timeout at all (left out: aiohttp's default)."""
    if user is _UNSET or isinstance(user, aiohttp.ClientTimeout):
        return user
    if user is None:
        return aiohttp.ClientTimeout(total=None)
    if isinstance(user, bool) or not isinstance(user, int | float):
        raise TypeError(f"timeout must be aiohttp.ClientTimeout, a number or None, not {user!r}")
    return aiohttp.ClientTimeout(total=float(user))


def _timeout_kwargs(user: Any, deadline: float, now: float) -> dict[str, Any]:
    """The user's aiohttp timeout, bounded by what is left of the overall deadline."""
    if deadline == INF:
        return {} if user is _UNSET else {"timeout": user}
    left = max(0.001, deadline - now)
    if user is _UNSET:
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
    """Wait before retrying a failure that may be the server's (never past the deadline).
    Returns the next wait: double this one (from 50 ms if this one was 0), capped."""
    delay = min(backoff, max(0.0, deadline - loop.time()))
    if delay > 0:
        await asyncio.sleep(delay)
    return min(cap, max(backoff * 2, 0.05))


def _transport_why(exc: BaseException, before: bool, safe: bool, tries: int) -> str:
    if tries == 1:
        return (
            f"{type(exc).__name__}; the request body cannot be sent twice (a file or a "
            "stream), so it was not retried"
        )
    if before or safe:
        return f"the last attempt failed with {type(exc).__name__}"
    return (
        f"{type(exc).__name__} after the request may have reached the server; a "
        "non-idempotent request is not retried then (pass retry_unsafe=True to allow it)"
    )
