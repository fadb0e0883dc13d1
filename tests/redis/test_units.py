"""The Redis backend's parts that need no server: ids and keys, the local limiter of
degraded mode, reply parsing, configuration checks and the lazy import."""

from __future__ import annotations

import math
import sys
from collections.abc import AsyncIterator

import pytest

from aurora_async import Limit, TokenPool
from aurora_async._core.buckets import Window
from aurora_async._redis import RedisBackend
from aurora_async._redis.degrade import LocalLimiter, LocalWindow
from aurora_async._redis.keys import Keys, check_namespace, membership_digest, token_id
from aurora_async._redis.records import reservations, token_states
from aurora_async._redis.scripts import SCRIPTS

SECRET = "sk-live-0123456789abcdef"
#: Local windows full as of this are empty (the tests of the bucket arithmetic).
EMPTY = -math.inf


@pytest.fixture
async def offline() -> AsyncIterator[list[RedisBackend]]:
    """Backends pointed at nothing (constructing one does not connect)."""
    made: list[RedisBackend] = []
    yield made
    for backend in made:
        await backend.aclose()


# -- ids and keys ------------------------------------------------------------------


def test_token_ids_are_keyed_hashes_that_never_show_the_secret() -> None:
    tid = token_id("crawler", SECRET)
    assert len(tid) == 20
    assert int(tid, 16) >= 0
    assert tid == token_id("crawler", SECRET)
    assert tid != token_id("other", SECRET)
    assert SECRET[:6] not in tid


def test_every_key_of_a_namespace_shares_its_hash_tag() -> None:
    k = Keys("crawler")
    names = [k.ready, k.meta, k.disabled, k.procs, k.digests, k.ids, k.audit, k.last, k.gap]
    names += [k.token("abc"), k.proc("w1"), k.staging("w1")]
    assert all(n.startswith("{aurora:crawler}:") for n in names)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("namespace", "error"),
    [
        (3, TypeError),
        ("", ValueError),
        ("a{b", ValueError),
        ("a b", ValueError),
        ("x" * 201, ValueError),
    ],
)
def test_namespaces_that_would_break_the_hash_tag_are_refused(
    namespace: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        check_namespace(namespace)


def test_membership_digest_ignores_order() -> None:
    assert membership_digest(["a", "b"]) == membership_digest(["b", "a"])
    assert membership_digest(["a"]) != membership_digest(["a", "b"])


def test_scripts_are_named_by_their_sha() -> None:
    assert len({s.sha for s in SCRIPTS.values()}) == len(SCRIPTS)
    assert all(len(s.sha) == 40 for s in SCRIPTS.values())


# -- the local limiter of degraded mode ------------------------------------------------


def test_a_local_window_takes_a_share_of_rate_and_burst() -> None:
    w = LocalWindow(burst=10, rate=100, share=0.25, full_at=EMPTY)
    assert (w.burst, w.rate) == (2.5, 25)
    tiny = LocalWindow(burst=2, rate=10, share=0.1, full_at=EMPTY)
    assert tiny.burst == 1.0  # never below one unit (or the real burst, if smaller)
    assert LocalWindow(burst=0.5, rate=10, share=0.1, full_at=EMPTY).burst == 0.5


def test_a_local_window_is_a_leaky_bucket() -> None:
    w = LocalWindow(burst=4, rate=8, share=0.5, full_at=EMPTY)  # burst 2, 4 a second
    assert w.ready(1) == -float("inf")
    w.take(1, 10.0)
    w.take(1, 10.0)
    assert w.ready(1) == 10.25
    assert w.units(10.0) == 2.0
    assert w.units(11.0) == 0.0
    # A cost above the local burst (but within the real one) fits once empty.
    assert w.ready(3) == 10.5
    assert "burst=2" in repr(w)


def test_local_limiter_gives_back_only_the_latest_reservation() -> None:
    limits = [Window(Limit(10, per=1), 0.0), Window(Limit(100, per=60), 0.0)]
    local = LocalLimiter(0.5, EMPTY)
    first = local.take("t", limits, 1, 0.0)
    second = local.take("t", limits, 1, 0.0)
    assert not local.give_back("t", first)  # another followed it: stays spent
    assert local.give_back("t", second)
    assert not local.give_back("t", second)
    assert not local.give_back("unknown", first)
    assert local.ready("t", limits, 1) == 0.0 - (5 - 1) / 5 + 1 / 5
    assert len(local) == 1


# -- parsing replies -------------------------------------------------------------------


def test_inspect_replies_become_token_states() -> None:
    now = 5_000_000
    reply = [
        str(now),
        *("a", "0", str(now - 1), "", "10.0/100000.0"),
        *("b", str(now + 2_000_000), str(now + 2_000_000), "", "10.0/100000.0"),
        *("c", "0", "", "401", "1.0/1000000.0;100.0/36000.0"),
        *("d", "", "", "", ""),
    ]
    states = {s.id: s for s in token_states(reply, {"a": "tok…aaaa"})}
    assert states["a"].state == "active"
    assert states["a"].name == "tok…aaaa"
    assert states["a"].limits == ("10/s (burst 10)",)
    assert (states["b"].state, states["b"].cooldown_left, states["b"].next_free_in) == (
        "cooling",
        2.0,
        2.0,
    )
    assert (states["c"].state, states["c"].reason) == ("disabled", "401")
    assert states["c"].limits == ("1/s (burst 1)", "27.7778/s (burst 100)")
    assert states["d"].state == "idle"


def test_audit_entries_become_reservations() -> None:
    entries = reservations([b"17 a 1.0 w1", "18 b -2.5 w2"], {"a": "tok…aaaa"})
    assert [(e.at_us, e.id, e.name, e.cost, e.worker) for e in entries] == [
        (17, "a", "tok…aaaa", 1.0, "w1"),
        (18, "b", None, -2.5, "w2"),
    ]


# -- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"on_failure": "explode"}, "on_failure"),
        ({"degrade_share": 0}, "degrade_share"),
        ({"degrade_share": 1.5}, "degrade_share"),
        ({"key_ttl": 0.5}, "key_ttl"),
        ({"key_ttl": float("inf")}, "key_ttl"),
        ({"max_batch": 0}, "max_batch"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RedisBackend(namespace="x", **kwargs)  # type: ignore[arg-type]


async def test_a_backend_serves_one_pool(offline: list[RedisBackend]) -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0", namespace="one")
    offline.append(backend)
    TokenPool([SECRET], backend=backend)
    with pytest.raises(RuntimeError, match="one per pool"):
        TokenPool([SECRET], backend=backend)
    assert backend.token_id(SECRET) == token_id("one", SECRET)
    assert (backend.namespace, backend.mode, backend.waiting) == ("one", "redis", 0)
    assert backend.hash_tag == "{aurora:one}"
    assert len(backend.worker) == 12
    assert backend.client is not None
    assert "namespace='one'" in repr(backend)
    assert SECRET not in repr(backend)


async def test_acquire_needs_a_pool(offline: list[RedisBackend]) -> None:
    backend = RedisBackend(namespace="unbound")
    offline.append(backend)
    with pytest.raises(RuntimeError, match="before bind"):
        await backend.acquire(None)  # type: ignore[arg-type]


@pytest.fixture
def without_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "redis" or name.startswith("redis."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)  # type: ignore[arg-type]


@pytest.mark.usefixtures("without_redis")
def test_a_missing_redis_package_names_the_extra_to_install() -> None:
    with pytest.raises(ImportError, match=r"pip install 'aurora_async\[redis\]'"):
        RedisBackend(namespace="x")


def test_a_missing_redis_server_skips_locally_but_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from .support import require_binary

    missing = "/nonexistent/redis-server"
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("AURORA_REQUIRE_REDIS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="redis-server not found"):
        require_binary(missing)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="require the Redis tests"):
        require_binary(missing)
    monkeypatch.delenv("CI")
    monkeypatch.setenv("AURORA_REQUIRE_REDIS", "1")
    with pytest.raises(pytest.fail.Exception):
        require_binary(missing)


def test_a_local_fill_resumes_the_token_at_its_steady_rate() -> None:
    limits = [Window(Limit(10, per=1, burst=4), 0.0)]
    local = LocalLimiter(0.5, EMPTY)  # burst 2, 5 a second
    local.fill("t", limits, [True], until=1.0, kc=1.0)
    assert local.ready("t", limits, 1) == 1.0  # one unit when the cooldown ends...
    local.take("t", limits, 1, 1.0)
    assert local.ready("t", limits, 1) == pytest.approx(1.2)  # ...then the steady rate
    local.fill("t", limits, [False], until=5.0, kc=1.0)
    assert local.ready("t", limits, 1) == pytest.approx(1.2)
