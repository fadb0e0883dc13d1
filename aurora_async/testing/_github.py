"""``GitHubApi``: GitHub's REST and GraphQL limits for one token: per-resource hourly
buckets chosen by path, GraphQL points, and the secondary limit on points per minute."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from . import _checks as check
from ._numbers import EPSILON, epoch_seconds
from ._profile import Call, Decision, Enforcer, Profile, ServerOptions
from ._window import Count, WindowCounter

_OWNER: Final = "GitHubApi"
#: The testing hook: the primary-limit points a GraphQL request costs (default 1).
GRAPHQL_COST_HEADER: Final = "X-Mock-Graphql-Cost"
_WRITES: Final = frozenset({"POST", "PATCH", "PUT", "DELETE"})
_DOCS: Final = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
_PRIMARY: Final = "API rate limit exceeded for user ID 1."
_SECONDARY: Final = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)


@dataclass(frozen=True, slots=True)
class GitHubApi(Profile):
    """A token limited as GitHub limits one: a primary bucket per *resource*, chosen by
    the request's path, and a secondary limit on points per minute.

    **Primary limits** (fixed windows, each opening at the resource's first request once
    the last window has ended, or on the clock's multiples with ``aligned``):
    ``/search/...`` counts against ``search`` (``search`` requests per ``search_window``,
    30 a minute), ``/graphql`` against ``graphql`` (``graphql`` *points* per
    ``graphql_window``, 5,000 an hour; a query costs the request's
    ``X-Mock-Graphql-Cost`` header, a testing hook standing for GitHub's computed cost,
    or 1), every other path against ``core`` (``core`` requests per ``core_window``,
    5,000 an hour). Every answer carries ``x-ratelimit-limit``, ``x-ratelimit-remaining``
    (after this request), ``x-ratelimit-used``, ``x-ratelimit-reset`` (the window's end,
    Unix seconds rounded up) and ``x-ratelimit-resource`` for the request's resource. A
    spent REST bucket answers ``status`` (403, or 429: GitHub uses both) with
    ``{"message": "API rate limit exceeded ..."}`` and no ``Retry-After``; a spent
    GraphQL bucket answers ``200`` with ``{"errors": [{"type": "RATE_LIMITED", ...}]}``,
    as GitHub does.

    **Secondary limit** (GitHub: "no more than 900 points per minute are allowed for REST
    API endpoints, and no more than 2,000 points per minute ... for the GraphQL API"):
    ``GET``, ``HEAD`` and ``OPTIONS`` cost 1 point, ``POST``, ``PATCH``, ``PUT`` and
    ``DELETE`` 5; a GraphQL query 1, a mutation 5. REST requests share ``rest_points``
    and GraphQL ones ``graphql_points`` per fixed window of ``points_window`` seconds.
    Over it: ``secondary_status`` with ``Retry-After`` (whole seconds until the window
    ends, at least 1) and the primary headers as they stand. Refusals charge nothing.
    GitHub's other secondary limits (concurrent requests, CPU time, content creation)
    are not modelled.

    On a change of profile (:meth:`MockAPI.set_profile`) to another ``GitHubApi`` every
    window and what it used carry over.
    """

    core: int = 5000
    core_window: float = 3600.0
    search: int = 30
    search_window: float = 60.0
    graphql: int = 5000
    graphql_window: float = 3600.0
    rest_points: int = 900
    graphql_points: int = 2000
    points_window: float = 60.0
    status: int = 403
    secondary_status: int = 403
    aligned: bool = False

    reads_body: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for name in ("core", "search", "graphql", "rest_points", "graphql_points"):
            check.whole(_OWNER, name, getattr(self, name), 1)
        for name in ("core_window", "search_window", "graphql_window", "points_window"):
            object.__setattr__(self, name, check.seconds(_OWNER, name, getattr(self, name)))
        check.status(_OWNER, self.status)
        check.status(_OWNER, self.secondary_status)

    def _enforcer(self, options: ServerOptions) -> Enforcer:
        return _GitHubEnforcer(self)


def resource_of(path: str) -> str:
    """The primary bucket a request to ``path`` counts against."""
    if path == "/graphql":
        return "graphql"
    if path == "/search" or path.startswith("/search/"):
        return "search"
    return "core"


@dataclass(frozen=True, slots=True)
class _Request:
    resource: str
    cost: int  # primary units
    points: int  # secondary points


class _GitHubEnforcer(Enforcer):
    __slots__ = ("points", "primary", "profile")

    def __init__(self, profile: GitHubApi) -> None:
        self.profile = profile
        aligned = profile.aligned
        self.primary = {
            "core": WindowCounter(profile.core, profile.core_window, aligned),
            "search": WindowCounter(profile.search, profile.search_window, aligned),
            "graphql": WindowCounter(profile.graphql, profile.graphql_window, aligned),
        }
        self.points = {
            "rest": WindowCounter(profile.rest_points, profile.points_window, aligned),
            "graphql": WindowCounter(profile.graphql_points, profile.points_window, aligned),
        }

    def decide(self, now: float, wall: float) -> Decision:
        return self._decide(_Request("core", 1, 1), now, wall)

    def decide_call(self, call: Call, now: float, wall: float) -> Decision:
        return self._decide(_read(call), now, wall)

    def exhausted(self, now: float, until: float, wall: float) -> Decision:
        limit = self.profile.core
        headers = _headers(Count(False, limit, until - now), limit, "core", wall)
        return self._primary_refusal("core", headers)

    def adopt(self, old: Enforcer, now: float) -> None:
        if isinstance(old, _GitHubEnforcer):
            for mine, theirs in ((self.primary, old.primary), (self.points, old.points)):
                for name, counter in mine.items():
                    counter.adopt(theirs[name])

    def _decide(self, request: _Request, now: float, wall: float) -> Decision:
        bucket = self.primary[request.resource]
        points = self.points["graphql" if request.resource == "graphql" else "rest"]
        reset_after = bucket.peek(now)
        if bucket.used + request.cost > bucket.limit:
            count = Count(False, min(bucket.used, bucket.limit), reset_after)
            headers = _headers(count, bucket.limit, request.resource, wall)
            return self._primary_refusal(request.resource, headers)
        wait = points.peek(now)
        if points.used + request.points > points.limit:
            count = Count(False, bucket.used, reset_after)
            headers = _headers(count, bucket.limit, request.resource, wall)
            headers["retry-after"] = str(max(1, math.ceil(wait - EPSILON)))
            status = self.profile.secondary_status
            body = {"message": _SECONDARY, "documentation_url": _DOCS, "status": str(status)}
            return Decision(False, status, headers, body=body)
        points.take(now, request.points)
        count = bucket.take(now, request.cost)
        return Decision(True, headers=_headers(count, bucket.limit, request.resource, wall))

    def _primary_refusal(self, resource: str, headers: dict[str, str]) -> Decision:
        if resource == "graphql":
            error = {"type": "RATE_LIMITED", "code": "graphql_rate_limit", "message": _PRIMARY}
            return Decision(False, 200, headers, body={"errors": [error]})
        status = self.profile.status
        body = {"message": _PRIMARY, "documentation_url": _DOCS, "status": str(status)}
        return Decision(False, status, headers, body=body)


def _headers(count: Count, limit: int, resource: str, wall: float) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(max(0, limit - count.used)),
        "x-ratelimit-used": str(count.used),
        "x-ratelimit-reset": str(epoch_seconds(wall, count.reset_after)),
        "x-ratelimit-resource": resource,
    }


def _read(call: Call) -> _Request:
    resource = resource_of(call.path)
    if resource != "graphql":
        return _Request(resource, 1, 5 if call.method in _WRITES else 1)
    asked = call.headers.get(GRAPHQL_COST_HEADER, "1")
    cost = int(asked) if asked.isascii() and asked.isdigit() and len(asked) <= 6 else 1
    return _Request(resource, max(1, cost), 5 if _is_mutation(call.body) else 1)


def _is_mutation(body: bytes | None) -> bool:
    try:
        request: Any = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        return False
    query = request.get("query") if isinstance(request, dict) else None
    return isinstance(query, str) and query.lstrip().startswith("mutation")
