"""The token's header on the common path: ``BearerAuth`` and ``HeaderAuth`` are written
without calling ``apply`` (the same header, the same text); any other auth, a subclass
of theirs included, has its own ``apply`` called."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from aurora_async import TokenPool
from aurora_async._http.auth import BearerAuth, HeaderAuth

from .support import A, serve

pytestmark = pytest.mark.looptime


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"headers": list(request.headers.items())})


@dataclass(frozen=True, slots=True)
class SignedBearer(BearerAuth):
    """A subclass with its own apply: a second header beside the usual one."""

    def apply(
        self, token: str, headers: MutableMapping[str, str], params: MutableMapping[str, str]
    ) -> None:
        headers[self.header] = f"{self.scheme} {token}"
        headers["X-Signed"] = "yes"


def carrying(seen: list[list[str]], *names: str) -> list[list[str]]:
    wanted = {n.lower() for n in names}
    return [[k, v] for k, v in seen if k.lower() in wanted]


@pytest.mark.parametrize(
    ("auth", "caller", "expected"),
    [
        (BearerAuth(), None, [["Authorization", f"Bearer {A}"]]),
        (BearerAuth(scheme=""), None, [["Authorization", A]]),
        (BearerAuth("X-Token", scheme="Token"), None, [["X-Token", f"Token {A}"]]),
        (HeaderAuth("X-API-Key"), None, [["X-API-Key", A]]),
        # the caller's own header of that name, in any case, is replaced in its place
        (BearerAuth(), {"AUTHORIZATION": "Bearer stale"}, [["Authorization", f"Bearer {A}"]]),
        (
            HeaderAuth("X-API-Key"),
            [("x-api-key", "old"), ("X-Api-Key", "older")],
            [["X-API-Key", A]],
        ),
        (SignedBearer(), None, [["Authorization", f"Bearer {A}"], ["X-Signed", "yes"]]),
    ],
)
async def test_the_token_header_as_sent(auth: Any, caller: Any, expected: list[list[str]]) -> None:
    async with serve(echo) as url, TokenPool([A], auth=auth) as pool:
        resp = await pool.get(f"{url}/x", headers=caller)
        seen = (await resp.json())["headers"]
    names = {name for name, _ in expected}
    assert carrying(seen, *names, "X-API-Key", "X-Token", "Authorization") == expected
