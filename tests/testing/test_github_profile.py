"""``GitHubApi``: GitHub's primary buckets per resource (by path), GraphQL points and the
secondary limit on points per minute. Exact decisions on explicit times, then the server
on virtual time, its answers read back by ``parse_vendor`` and ``classify``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from aurora_async._core.quota import QuotaExhausted, classify
from aurora_async._core.vendor_headers import ResourceReading, parse_vendor
from aurora_async.testing import GitHubApi, MockTokenStats
from aurora_async.testing._github import GRAPHQL_COST_HEADER, resource_of
from aurora_async.testing._profile import Call, Decision, Enforcer, ServerOptions, enforcer

from .support import TOKEN, WALL, now, serve

PRIMARY = "API rate limit exceeded for user ID 1."
SECONDARY = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
DOCS = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"


def state(profile: GitHubApi) -> Enforcer:
    return enforcer(profile, ServerOptions())


def at(
    limiter: Enforcer,
    seconds: float,
    path: str = "/repos/o/r",
    method: str = "GET",
    cost: int | None = None,
    query: str = "query { viewer { login } }",
) -> Decision:
    headers = {} if cost is None else {GRAPHQL_COST_HEADER: str(cost)}
    body = json.dumps({"query": query}).encode() if path == "/graphql" else b""
    return limiter.decide_call(Call(method, path, headers, body), seconds, WALL + seconds)


def github(limit: int, used: int, reset: float, resource: str = "core") -> dict[str, str]:
    """GitHub's headers, for a window that ends ``reset`` seconds after the start."""
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(max(0, limit - used)),
        "x-ratelimit-used": str(used),
        "x-ratelimit-reset": str(int(WALL + reset)),
        "x-ratelimit-resource": resource,
    }


def test_resources_by_path() -> None:
    assert resource_of("/search/code") == "search"
    assert resource_of("/search") == "search"
    assert resource_of("/searches") == "core"
    assert resource_of("/graphql") == "graphql"
    assert resource_of("/graphql/x") == "core"
    assert resource_of("/repos/o/r/issues") == "core"


def test_core_bucket_with_github_headers_and_a_403_when_spent() -> None:
    limiter = state(GitHubApi(core=3))
    assert at(limiter, 0) == Decision(True, headers=github(3, 1, 3600))
    assert at(limiter, 10) == Decision(True, headers=github(3, 2, 3600))
    assert at(limiter, 20) == Decision(True, headers=github(3, 3, 3600))
    body = {"message": PRIMARY, "documentation_url": DOCS, "status": "403"}
    assert at(limiter, 30) == Decision(False, 403, github(3, 3, 3600), body=body)
    assert at(limiter, 3599.5).status == 403
    assert at(limiter, 3600) == Decision(True, headers=github(3, 1, 7200))


def test_search_has_its_own_bucket() -> None:
    limiter = state(GitHubApi(core=2, search=1, search_window=60))
    assert at(limiter, 0, "/search/issues").headers == github(1, 1, 60, "search")
    refused = at(limiter, 1, "/search/issues")
    assert (refused.status, refused.headers) == (403, github(1, 1, 60, "search"))
    assert at(limiter, 2).headers == github(2, 1, 3602)  # core opens its own window
    assert at(limiter, 60, "/search/code").admitted


def test_graphql_points_and_its_200_refusal() -> None:
    limiter = state(GitHubApi(graphql=10))
    assert at(limiter, 0, "/graphql", "POST", cost=4).headers == github(10, 4, 3600, "graphql")
    assert at(limiter, 1, "/graphql", "POST", cost=4).admitted
    refused = at(limiter, 2, "/graphql", "POST", cost=4)
    error = {"type": "RATE_LIMITED", "code": "graphql_rate_limit", "message": PRIMARY}
    headers = github(10, 8, 3600, "graphql")
    assert refused == Decision(False, 200, headers, body={"errors": [error]})
    assert at(limiter, 3, "/graphql", "POST", cost=2).headers == github(10, 10, 3600, "graphql")
    assert at(limiter, 4, "/graphql", "POST").headers["x-ratelimit-remaining"] == "0"


def test_secondary_limit_on_points_per_minute() -> None:
    limiter = state(GitHubApi(rest_points=12, points_window=60))
    assert at(limiter, 0, method="POST").admitted  # 5 points
    assert at(limiter, 1, method="DELETE").admitted  # 10
    assert at(limiter, 2, method="HEAD").admitted  # 11
    assert at(limiter, 3).admitted  # 12
    refused = at(limiter, 20.5)
    body = {"message": SECONDARY, "documentation_url": DOCS, "status": "403"}
    headers = {**github(5000, 4, 3600), "retry-after": "40"}
    assert refused == Decision(False, 403, headers, body=body)  # core is not charged
    assert at(limiter, 59.9).status == 403
    assert at(limiter, 60).headers == github(5000, 5, 3600)


def test_graphql_mutations_cost_five_secondary_points() -> None:
    limiter = state(GitHubApi(graphql_points=6, points_window=60))
    mutation = "  mutation { addStar(input: {starrableId: 1}) { clientMutationId } }"
    assert at(limiter, 0, "/graphql", "POST", query=mutation).admitted  # 5 points
    assert at(limiter, 1, "/graphql", "POST").admitted  # 6
    refused = at(limiter, 2, "/graphql", "POST")
    assert (refused.status, refused.headers["retry-after"]) == (403, "58")
    assert at(limiter, 3, "/repos/o/r").admitted  # REST has its own points
    broken = limiter.decide_call(Call("POST", "/graphql", {}, b"{not json"), 60, WALL)
    assert broken.admitted  # an unreadable body costs what a query costs


def test_other_statuses() -> None:
    limiter = state(GitHubApi(core=1, rest_points=1, status=429, secondary_status=429))
    assert at(limiter, 0).admitted
    assert at(limiter, 1).status == 429  # primary
    other = state(GitHubApi(rest_points=1, secondary_status=429))
    assert at(other, 0).admitted
    assert at(other, 1).status == 429  # secondary


def test_exhausted_by_another_client_and_change_of_profile() -> None:
    limiter = state(GitHubApi(core=10))
    refused = limiter.exhausted(5.0, 65.0, WALL + 5)
    assert (refused.status, refused.headers) == (403, github(10, 10, 65))
    at(limiter, 0)
    at(limiter, 1)
    bigger = state(GitHubApi(core=20))
    bigger.adopt(limiter, 2)
    assert at(bigger, 2).headers == github(20, 3, 3600)


def test_profile_validation() -> None:
    with pytest.raises(ValueError, match="search must be at least 1"):
        GitHubApi(search=0)
    with pytest.raises(ValueError, match="points_window must be a positive"):
        GitHubApi(points_window=0)
    with pytest.raises(ValueError, match="status must be at least 400"):
        GitHubApi(secondary_status=200)


# --- the server, on virtual time ----------------------------------------------------------


async def get(
    session: aiohttp.ClientSession, path: str, method: str = "GET", **kwargs: Any
) -> tuple[int, Any, bytes]:
    headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
    async with session.request(method, path, headers=headers, **kwargs) as resp:
        return resp.status, resp.headers, await resp.read()


@pytest.mark.looptime
async def test_primary_limits_read_back_as_parked_quotas() -> None:
    profile = GitHubApi(core=2, search=1, graphql=3)
    async with serve({TOKEN: profile}) as (api, session):
        for _ in range(2):
            assert (await get(session, "/repos/o/r"))[0] == 200
        status, headers, body = await get(session, "/repos/o/r")
        wall = time.time()
        reset = int(headers["x-ratelimit-reset"])
        assert status == 403
        assert parse_vendor(headers, reset - 3600.0) == (
            ResourceReading("requests", 2, 0, 3600.0, "core", "github"),
        )
        reason = "github primary rate limit spent until its reset"
        assert classify(status, headers, body, wall) == QuotaExhausted(
            reset, reason, "requests", "core"
        )

        assert (await get(session, "/search/code"))[0] == 200
        status, headers, body = await get(session, "/search/code")
        found = classify(status, headers, body, time.time())
        assert found == QuotaExhausted(
            int(headers["x-ratelimit-reset"]), reason, "requests", "search"
        )

        graphql = {"json": {"query": "query { viewer { login } }"}}
        cost = {"headers": {GRAPHQL_COST_HEADER: "3"}}
        assert (await get(session, "/graphql", "POST", **graphql, **cost))[0] == 200
        status, headers, body = await get(session, "/graphql", "POST", **graphql)
        assert (status, json.loads(body)["errors"][0]["type"]) == (200, "RATE_LIMITED")
        found = classify(status, headers, body, time.time())
        assert found == QuotaExhausted(
            int(headers["x-ratelimit-reset"]), reason, "points", "graphql"
        )
        assert api.stats(TOKEN) == MockTokenStats(requests=7, ok=4, rate_limited=3)


@pytest.mark.looptime
async def test_the_secondary_limit_is_a_short_rate_limit_with_retry_after() -> None:
    profile = GitHubApi(rest_points=10, points_window=60)
    async with serve({TOKEN: profile}) as (api, session):
        start = now()
        for _ in range(2):
            status, _, body = await get(session, "/repos/o/r/issues", "POST", data=b"12345")
            assert (status, json.loads(body)["body_bytes"]) == (200, 5)
        await asyncio.sleep(15)
        status, headers, body = await get(session, "/repos/o/r")
        assert (status, headers["retry-after"], headers["x-ratelimit-remaining"]) == (
            403,
            "45",
            "4998",
        )
        assert classify(status, headers, body, time.time()) is None
        await asyncio.sleep(start + 60 - now())
        assert (await get(session, "/repos/o/r"))[0] == 200
        assert api.stats(TOKEN) == MockTokenStats(requests=4, ok=3, rate_limited=1)


@pytest.mark.looptime
async def test_no_answer_shows_the_token() -> None:
    async with serve({TOKEN: GitHubApi(core=1, graphql=1, rest_points=3)}) as (api, session):
        seen: list[str] = []
        statuses = []
        for path, method in [("/x", "GET"), ("/x", "GET"), ("/graphql", "POST")] * 2:
            status, headers, body = await get(session, path, method)
            statuses.append(status)
            seen += [body.decode(), *headers.values()]
        seen += [repr(api), str(api.all_stats())]
        assert statuses == [200, 403, 200, 403, 403, 200]  # the last: RATE_LIMITED
        haystack = "\n".join(seen)
        assert TOKEN not in haystack
        assert TOKEN[4:-4] not in haystack
