"""How a token goes into a request: a header with a scheme, a bare header, a query
parameter, or a function of yours."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable


@runtime_checkable
class Auth(Protocol):
    """Puts ``token`` into a request's ``headers`` and ``params`` (both mutable copies)."""

    def apply(
        self, token: str, headers: MutableMapping[str, str], params: MutableMapping[str, str]
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class BearerAuth:
    """``Authorization: Bearer <token>`` (the default), or another header and scheme."""

    header: str = "Authorization"
    scheme: str = "Bearer"

    def apply(
        self, token: str, headers: MutableMapping[str, str], params: MutableMapping[str, str]
    ) -> None:
        headers[self.header] = f"{self.scheme} {token}" if self.scheme else token


@dataclass(frozen=True, slots=True)
class HeaderAuth:
    """The bare token in a header, e.g. ``X-API-Key: <token>``."""

    header: str = "X-API-Key"

    def apply(
        self, token: str, headers: MutableMapping[str, str], params: MutableMapping[str, str]
    ) -> None:
        headers[self.header] = token


@dataclass(frozen=True, slots=True)
class QueryAuth:
    """The token as a query parameter, e.g. ``?api_key=<token>``.

    The token is then part of the request URL that aiohttp keeps on the response
    (``resp.url``): aurora_async never logs it, but your own code might.
    """

    param: str = "api_key"

    def apply(
        self, token: str, headers: MutableMapping[str, str], params: MutableMapping[str, str]
    ) -> None:
        params[self.param] = token


AuthFunction: TypeAlias = Callable[[str, MutableMapping[str, str], MutableMapping[str, str]], None]


@dataclass(frozen=True, slots=True)
class FunctionAuth:
    """Wraps a plain function ``(token, headers, params) -> None``."""

    function: AuthFunction

    def apply(
        self, token: str, headers: MutableMapping[str, str], params: MutableMapping[str, str]
    ) -> None:
        self.function(token, headers, params)


def as_auth(auth: Auth | AuthFunction | None) -> Auth:
    if auth is None:
        return BearerAuth()
    if isinstance(auth, Auth):
        return auth
    if callable(auth):
        return FunctionAuth(auth)
    raise TypeError(
        "auth must be BearerAuth(), HeaderAuth(), QueryAuth(), an object with "
        f".apply(token, headers, params), or such a function; not {type(auth).__name__}"
    )
