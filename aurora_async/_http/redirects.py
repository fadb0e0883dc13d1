"""One attempt whose redirects ``pool.request`` follows itself (when it must: see
``_core.redirect.follow_ourselves``), by the rules of ``_core.redirect``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
from multidict import CIMultiDict, MultiDict

from .._core.redirect import carried, dropped_headers, is_redirect, next_hop
from .timeouts import bounded
from .urls import location_url, merged, without_params

if TYPE_CHECKING:
    from .auth import Auth
    from .call import Call

__all__ = ["send_following"]


async def send_following(
    session: aiohttp.ClientSession,
    call: Call,
    auth: Auth,
    token: str,
    loop: asyncio.AbstractEventLoop,
) -> tuple[aiohttp.ClientResponse, bool]:
    """Send ``call`` with ``token`` and follow its redirects. The token goes again only
    to the origin it was meant for; to another origin go neither the token (in a header
    or the query, even where the Location repeats it) nor the caller's credentials. A
    redirect that would re-send a body that cannot be sent twice is returned, not
    followed. Returns the final response and whether it came from another origin."""
    auth_headers: dict[str, str] = {}
    auth_params: MultiDict[str] = MultiDict()
    auth.apply(token, auth_headers, auth_params)
    headers_in = call.headers_in
    headers: CIMultiDict[str] = CIMultiDict(headers_in) if headers_in else CIMultiDict()
    headers.update(auth_headers)
    auth_keys = frozenset(auth_params)
    method = call.method
    resp = await session.request(
        method,
        call.target,
        headers=headers,
        params=merged(call.params_in, auth_params),
        raise_for_status=False,
        **bounded(call.timeout, call.deadline, loop.time()),
        **call.kwargs,
    )
    origin = call.target.origin()
    foreign = body_dropped = False
    for _ in range(call.max_redirects):
        hop = next_hop(
            resp.status, resp.headers.get("Location"), method, replayable=call.replayable
        )
        if hop is None:
            return resp, foreign
        base = resp.url
        resp.release()
        # The Location is the whole URL: the auth's query parameters come out of it
        # (never twice on the same origin, never the token elsewhere) ...
        url = without_params(location_url(base, hop.location), auth_keys, token)
        method = hop.method
        body_dropped = body_dropped or hop.drop_body
        foreign = url.origin() != origin
        if foreign:  # ... and go back in only for the origin the token is meant for.
            hop_headers, hop_params = _elsewhere(headers_in, auth_headers), None
        else:
            hop_headers, hop_params = headers, auth_params or None
        resp = await session.request(
            method,
            url,
            headers=hop_headers,
            params=hop_params,
            raise_for_status=False,
            **bounded(call.timeout, call.deadline, loop.time()),
            **carried(call.kwargs, drop_body=body_dropped, same_origin=not foreign),
        )
    if is_redirect(resp.status, resp.headers.get("Location")):
        resp.release()
        raise aiohttp.TooManyRedirects(resp.request_info, (), status=resp.status)
    return resp, foreign


def _elsewhere(headers_in: Any, auth_headers: dict[str, str]) -> CIMultiDict[str]:
    """The caller's headers for another origin: without the token or credentials."""
    headers: CIMultiDict[str] = CIMultiDict(headers_in) if headers_in else CIMultiDict()
    for name in dropped_headers(auth_headers):
        headers.popall(name, None)
    return headers
