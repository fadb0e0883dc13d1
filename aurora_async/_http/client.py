"""``pool.request``: aiohttp with a leased token, outcome accounting and retries.

Each attempt is three steps, in :meth:`HttpClient._run`:

1. **lease** a token (on a retry, another one than last time's if one can fire now);
2. **send** the request with the token in it (``auth``), following redirects where
   aiohttp cannot be trusted to (``redirects.py``);
3. **settle**: judge the response (your policy, then the default table) and account
   for it on the token (``outcomes.py``), then return it, or retry as the retry rules
   say (``_core.retry``); a failure with no response is settled in ``failures.py``.

Decisions come from the pure core (``_core.headers``, ``_core.policy``, ``_core.retry``,
``_core.redirect``); this package does the I/O they ask for, and reaches the pool only
through ``port.PoolPort``. Rules a reader should know:

* A lease taken is released on every path, exceptions and cancellation included.
* The URL is parsed once, and a URL no attempt could send (malformed, no host, not
  http(s), a bad port) is a ``ValueError`` before any token is leased.
* A request body that cannot be sent twice (a file, a stream, a generator, a form with
  a file in it) is never retried, nor re-sent by a redirect: the first answer, whatever
  it is, goes back to the caller.
* A 401 disables the token and is retried once on another token; a second 401 within
  the same request is returned (it is more likely the request than the tokens). A 401
  from a token that never served a call (unproven: most likely a dead key) does not use
  up that one retry; it still counts as one of ``max_attempts``.
* Redirects: aiohttp drops ``Authorization`` when a redirect leaves the origin, but no
  other header. For any other way of sending the token (``HeaderAuth``, ``QueryAuth``,
  a custom ``BearerAuth`` header, a function), and for bodies that cannot be sent twice,
  this package follows redirects itself: the token, the caller's ``Authorization``,
  ``Cookie`` and ``Proxy-Authorization`` headers, ``auth=`` and ``cookies=`` go only to
  the origin the request was meant for. A response from another origin (after such a
  redirect) says nothing of the token's limits: it is returned and counted as fine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias, overload

import aiohttp
from multidict import CIMultiDict, MultiDict

from .. import _log
from .._core.policy import Outcome
from .._core.retry import Retry
from . import failures
from .arguments import request_options
from .auth import BearerAuth, HeaderAuth
from .call import Call
from .failures import LEASE_FAILURES, READ_FAILURES, TRANSPORT
from .outcomes import Judge, may_carry_rate_limits
from .port import PoolPort
from .redirects import send_following
from .settling import settle_from, settle_stream, stream_meter
from .timeouts import bounded
from .urls import has_credentials, in_session, left_origin, merged, resolved

if TYPE_CHECKING:
    from yarl import URL

    from .._pool.core import PoolCore
    from .._pool.lease import Lease
    from .options import HttpOptions

__all__ = ["HttpClient"]

_NO_PARAMS: MultiDict[str] = MultiDict()  # shared, never written: header auth leaves it be
_TARGETS_KEPT = 1024  # parsed URLs a client keeps (all forgotten when it is full)
_has_credentials = has_credentials  # its old home: tests import it from here


#: What a request's coroutine returns: the response, read; or, streaming, the response
#: with its lease (still held) and the notes of the attempts so far.
_Result: TypeAlias = "tuple[aiohttp.ClientResponse, Lease, list[str]] | aiohttp.ClientResponse"


class HttpClient:
    """The HTTP side of one pool: its session and its request loop."""

    def __init__(self, core: PoolCore, options: HttpOptions) -> None:
        self._port = port = PoolPort(core)
        self._first_lease = port.first_lease()  # port.acquire(cost, wait, None), no frame
        self.options = options
        self._session = options.session
        self._owned = options.session is None
        self._base = options.base_url.rstrip("/") if options.base_url else None
        self._judge = Judge(port, options.policy, options.header_slack)
        auth = options.auth
        # aiohttp already keeps a bearer token in Authorization from other origins.
        self._token_in_authorization = (
            isinstance(auth, BearerAuth) and auth.header.lower() == "authorization"
        )
        self._header_auth = isinstance(auth, BearerAuth | HeaderAuth)
        # The token's header, written here for the two built-in kinds (their apply()
        # would write the same): (name, text before the token), else None.
        self._header: tuple[str, str] | None = None
        if type(auth) is BearerAuth:
            self._header = (auth.header, f"{auth.scheme} " if auth.scheme else "")
        elif type(auth) is HeaderAuth:
            self._header = (auth.header, "")
        self._policy = options.policy
        # URL as given -> the URL to send to, for those that depend on nothing but the
        # pool's options (not on a borrowed session's base_url): parsed once, not per request.
        self._targets: dict[str, URL] = {}
        # The straight lane (_straight) serves a request without keyword arguments when
        # nothing about it needs the careful loop's preparation: the token goes in
        # Authorization (so aiohttp may follow redirects itself), no deadline bounds the
        # request, and the session does not raise for status by itself.
        session = options.session
        self._straight_ok = (
            self._header is not None
            and self._token_in_authorization
            and options.deadline is None
            and options.settle is None  # a pool-wide settle: the general loop applies it
            and (session is None or session.raise_for_status is False)
        )
        self._active = 0  # requests under way
        self._drained: asyncio.Future[None] | None = None  # aclose waits on it

    def _session_for_use(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(limit=self.options.connections, limit_per_host=0)
            session = self._session = aiohttp.ClientSession(connector=connector)
        return session

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

    def _finished(self) -> None:
        """One request (or stream) under way less; the last one lets ``aclose`` go on."""
        self._active -= 1
        if self._drained is not None:
            self._wake_aclose()

    def _wake_aclose(self) -> None:
        """``aclose`` waits: let it go on if no request is under way any more."""
        drained = self._drained
        if not self._active and drained is not None and not drained.done():
            drained.set_result(None)

    # -- the entry points ---------------------------------------------------------

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
        ours, not three (that is most of what pool.request costs over plain aiohttp).

        ``kwargs`` are aiohttp's request arguments and the per-request options
        (``max_attempts``, ``deadline``, ``retry_backoff``, ``retry_unsafe``: see
        ``arguments.PER_REQUEST``); any other keyword is a ``TypeError`` here, before
        a token is leased."""
        if not kwargs and self._straight_ok:
            method = method.upper()
            try:
                full_url = self._targets[url]
            except (KeyError, TypeError):
                full_url = self._target(url)
            return self._straight(method, url, full_url, cost, lease_timeout)
        raise_for_status = self._wants_raise(kwargs)
        options = request_options(self.options, kwargs, "pool.request")
        return self._attempts(method, url, cost, lease_timeout, kwargs, raise_for_status, options)

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
        meter = stream_meter(kwargs)
        options = request_options(self.options, kwargs, "pool.stream")
        self._active += 1  # until the block ends: aclose waits for open streams too
        try:
            resp, lease, notes = await self._attempts(
                method, url, cost, lease_timeout, kwargs, None, options
            )
            if raise_for_status and resp.status >= 400:
                resp.release()
                self._port.release(lease)
                raise failures.status_error(resp, method, self._port.redact(url, lease), notes)
            try:
                yield resp
            finally:
                resp.release()
                try:
                    if meter is not None:
                        settle_stream(meter, lease)
                finally:
                    self._port.release(lease)
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

    @overload
    def _attempts(
        self,
        method: str,
        url: str,
        cost: float,
        lease_timeout: float | None,
        kwargs: dict[str, Any],
        read: None,
        options: HttpOptions,
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
        options: HttpOptions,
    ) -> Coroutine[Any, Any, aiohttp.ClientResponse]: ...

    def _attempts(
        self,
        method: str,
        url: str,
        cost: float,
        lease_timeout: float | None,
        kwargs: dict[str, Any],
        read: bool | None,
        options: HttpOptions,
    ) -> Coroutine[Any, Any, Any]:
        """The request's coroutine, after checking what can be checked at once (the
        URL: a ``ValueError`` now, before any token is leased).

        With ``read`` ``None`` (streaming), the coroutine returns the final response
        (body unread), its lease (still held) and the attempts so far; otherwise it
        reads the body, ends the lease, applies ``raise_for_status`` if ``read`` is
        true, and returns the response. Every other lease and response ends inside it."""
        method = method.upper()
        full_url = self._targets.get(url) if type(url) is str else None
        if full_url is None:
            full_url = self._target(url)
        call = Call(method, url, full_url, cost, lease_timeout, kwargs, read, options)
        return self._run(call)

    def _target(self, url: str) -> URL:
        """The URL to send to (``ValueError`` if none: see ``urls.resolved``), kept for the
        next request to ``url`` unless a borrowed session's base_url completed it."""
        redact = self._port.redact
        result = resolved(url, self._base, redact)
        if not result.absolute:
            return in_session(result, url, self._session, redact)
        targets = self._targets
        if len(targets) >= _TARGETS_KEPT:
            targets.clear()
        targets[url] = result
        return result

    # -- the straight lane: one lease, one send, one settle ------------------------

    async def _straight(
        self, method: str, url: str, target: URL, cost: float, lease_timeout: float | None
    ) -> aiohttp.ClientResponse:
        """:meth:`request` without keyword arguments, where ``_straight_ok``: what the
        general loop (:meth:`_run`) would do, with nothing built that the answer does not
        need. The token goes in one header of a fresh dict; aiohttp follows redirects; a
        response below 400 from the token's origin, with no header name that could carry
        a rate limit and no policy to ask, needs no accounting (a lease ended without a
        report counts as fine) nor any header parsing. A failed attempt or a retry hands
        the request to :meth:`_run` in the state it would have reached there."""
        self._active += 1
        try:
            port = self._port
            # A first attempt's lease failure is raised as it is, as in _run.
            lease = await self._first_lease(cost, lease_timeout).__aenter__()
            call: Call | None = None
            failure: BaseException | float = 0.0
            try:
                name, prefix = self._header  # type: ignore[misc]  # set: see _straight_ok
                session = self._session
                if session is None:
                    session = self._session_for_use()
                resp = await session.request(
                    method, target, headers={name: prefix + lease.token}, raise_for_status=False
                )
            except TRANSPORT as exc:
                call = self._first_call(method, url, target, cost, lease_timeout)
                now = asyncio.get_running_loop().time()
                failure = failures.no_answer(port, call, lease, exc, now)
            except aiohttp.ClientError as exc:
                call = self._first_call(method, url, target, cost, lease_timeout)
                failure = failures.refused(port, call, lease, exc)
            except BaseException:
                failures.abandon(port, lease)
                raise
            if call is not None:
                return await self._again(call, failure)
            foreign = bool(resp.history) and left_origin(target, resp)
            if (
                foreign
                or resp.status >= 400
                or self._policy is not None
                or may_carry_rate_limits(resp.headers)
            ):
                outcome = await self._settled(resp, lease, foreign)
                if outcome.retry:
                    call = self._first_call(method, url, target, cost, lease_timeout)
                    now = asyncio.get_running_loop().time()
                    step = call.retry(outcome, now, proven=port.proven(lease))
                    if isinstance(step, Retry):
                        self._retrying(call, lease, resp, outcome)
                        return await self._again(call, step.pause)
            unread: BaseException | None = None
            try:
                await resp.read()  # once read, aiohttp frees the connection itself
            except READ_FAILURES as exc:
                if call is None:
                    call = self._first_call(method, url, target, cost, lease_timeout)
                unread = failures.unread(port, call, lease, resp, exc)
            except BaseException:
                port.failed(lease)
                resp.release()
                raise
            finally:
                port.release(lease)
            if unread is not None:
                raise unread
            return resp
        finally:  # self._finished(), inline: no frame of its own on every request
            self._active -= 1
            if self._drained is not None:
                self._wake_aclose()

    def _first_call(
        self, method: str, url: str, target: URL, cost: float, lease_timeout: float | None
    ) -> Call:
        """The straight lane's request as the general loop's ``Call``, after its first
        attempt: prepared as :meth:`_run` prepares it (with no keyword arguments and no
        deadline, the start time changes nothing)."""
        call = Call(method, url, target, cost, lease_timeout, {}, False, self.options)
        call.prepare(self._token_in_authorization, 0.0)
        call.attempt = 1
        return call

    async def _settled(self, resp: aiohttp.ClientResponse, lease: Lease, foreign: bool) -> Outcome:
        """The response judged and accounted (as in :meth:`_run`)."""
        try:
            outcome = self._judge.judge(resp, lease, foreign)
            if not isinstance(outcome, Outcome):
                outcome = await self._judge.judged(outcome, resp, lease)
        except BaseException:
            failures.abandon(self._port, lease, resp)
            raise
        return outcome

    async def _again(self, call: Call, failure: BaseException | float) -> aiohttp.ClientResponse:
        """After the straight lane's first attempt: raise ``failure``, or pause that many
        seconds and go on in the general loop."""
        if isinstance(failure, BaseException):
            raise failure
        if failure > 0:
            await asyncio.sleep(failure)
        resp = await self._run(call, prepared=True)
        assert not isinstance(resp, tuple)  # read is not None
        return resp

    # -- one request: lease, send, settle, until an outcome says stop --------------

    async def _run(self, call: Call, prepared: bool = False) -> _Result:
        """One coroutine frame for the whole request (attempts, sending, reading): every
        await inside aiohttp resumes through each frame of ours, so each step below is a
        plain function whose awaitable is awaited here. ``prepared``: attempts were made."""
        self._active += 1
        try:
            port = self._port
            loop = asyncio.get_running_loop()
            if not prepared:
                call.prepare(self._token_in_authorization, loop.time())
            while True:
                call.attempt += 1
                # Our own errors are raised outside the except clauses: raised inside
                # one, they would keep aiohttp's exception (its request_info holds the
                # token's header) reachable as their __context__.
                failure: BaseException | float | None = None
                try:  # 1. lease
                    lease = await port.acquire(call.cost, call.lease_wait(loop.time()), call.last)
                except LEASE_FAILURES as exc:
                    if not call.notes:
                        raise
                    failure = failures.lease_failure(port, call, exc)
                if isinstance(failure, BaseException):
                    raise failure
                try:  # 2. send (the lease is ended by hand below, on every path)
                    if call.max_redirects is None:  # the usual case: aiohttp follows them
                        resp = await self._send(call, port.token(lease), loop.time())
                        # Once a hop left the origin, aiohttp sent no token any more,
                        # back at the origin too: not the token's answer.
                        foreign = bool(resp.history) and left_origin(call.target, resp)
                    else:
                        resp, foreign = await self._follow(call, port.token(lease), loop)
                except TRANSPORT as exc:  # a pause before the retry, or the error
                    failure = failures.no_answer(port, call, lease, exc, loop.time())
                except aiohttp.ClientError as exc:  # not the connection: the request itself
                    failure = failures.refused(port, call, lease, exc)
                except BaseException:
                    failures.abandon(port, lease)
                    raise
                if failure is not None:
                    if isinstance(failure, BaseException):
                        raise failure
                    if failure > 0:
                        await asyncio.sleep(failure)
                    continue
                try:  # 3. settle: judge and account ...
                    outcome = self._judge.judge(resp, lease, foreign)
                    if not isinstance(outcome, Outcome):  # a policy that must be awaited
                        outcome = await self._judge.judged(outcome, resp, lease)
                except BaseException:
                    failures.abandon(port, lease, resp)
                    raise
                if outcome.retry:  # ... then retry, if the rules say so ...
                    step = call.retry(outcome, loop.time(), proven=port.proven(lease))
                    if isinstance(step, Retry):
                        self._retrying(call, lease, resp, outcome)
                        if step.pause > 0:
                            await asyncio.sleep(step.pause)
                        continue
                if call.read is None:  # ... or hand the response back, or read it
                    return resp, lease, call.notes
                try:
                    await resp.read()  # once read, aiohttp frees the connection itself
                except READ_FAILURES as exc:
                    failure = failures.unread(port, call, lease, resp, exc)
                except BaseException:
                    port.failed(lease)
                    resp.release()
                    raise
                finally:
                    port.release(lease)
                if isinstance(failure, BaseException):
                    raise failure
                if call.read and resp.status >= 400:
                    raise failures.status_failure(port, call, lease, resp)
                if call.options.settle is not None and resp.status < 400:
                    await settle_from(call.options.settle, resp, lease)
                return resp
        finally:
            self._finished()

    def _send(self, call: Call, token: str, now: float) -> Awaitable[aiohttp.ClientResponse]:
        """The request with ``token`` in it, as aiohttp's awaitable (which follows any
        redirect itself: only used where that keeps the token and credentials safe)."""
        headers: Any
        header = self._header
        if header is not None:  # the usual case: the token in one header
            name, prefix = header
            headers = {name: prefix + token}
            if call.headers_in:  # a case-insensitive merge only when there is something to merge
                headers = CIMultiDict(call.headers_in)
                headers[name] = prefix + token
            params = merged(call.params_in, _NO_PARAMS)
        else:
            headers, params = self._credentials(call, token)
        return self._session_for_use().request(
            call.method,
            call.target,
            headers=headers,
            params=params,
            raise_for_status=False,
            **bounded(call.timeout, call.deadline, now),
            **call.kwargs,
        )

    def _follow(
        self, call: Call, token: str, loop: asyncio.AbstractEventLoop
    ) -> Coroutine[Any, Any, tuple[aiohttp.ClientResponse, bool]]:
        """The request with ``token`` in it, following its redirects ourselves."""
        session = self._session_for_use()
        return send_following(session, call, self.options.auth, token, loop)

    def _credentials(self, call: Call, token: str) -> tuple[Any, Any]:
        """The request's headers and query parameters with ``token`` put in by ``auth``."""
        auth_headers: dict[str, str] = {}
        auth_params: MultiDict[str] = _NO_PARAMS if self._header_auth else MultiDict()
        self.options.auth.apply(token, auth_headers, auth_params)
        headers: Any = auth_headers
        if call.headers_in:
            headers = CIMultiDict(call.headers_in)
            headers.update(auth_headers)
        return headers, merged(call.params_in, auth_params)

    def _retrying(
        self, call: Call, lease: Lease, resp: aiohttp.ClientResponse, outcome: Outcome
    ) -> None:
        """This attempt's response is not the last: note it, end it and its lease."""
        port = self._port
        call.notes.append(f"{port.name(lease)}: {resp.status}")
        call.last = port.slot(lease)
        resp.release()
        port.release(lease)
        _log.info(
            "aurora.http.retry",
            token=port.name(lease),
            status=resp.status,
            verdict=outcome.verdict.value,
            attempt=call.attempt,
            method=call.method,
            url=port.redact(call.url, lease),
        )
