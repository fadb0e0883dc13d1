"""The Prometheus exporter: per-token series by masked name, pool gauges, scrapes from the
HTTP server's thread, and a clear message when prometheus_client is missing."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import importlib
import json
import subprocess
import sys
import threading
import time
import urllib.request

import anyio
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aurora_async import Limit, PoolStats, TokenPool
from aurora_async._core.tokens import mask
from aurora_async.prometheus import PoolCollector, start_http_server

A, B, C = (f"{c * 4}-secret-{i:04d}" for i, c in enumerate("abc", start=1))
NA, NB, NC = map(mask, (A, B, C))


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    text = generate_latest(registry).decode()
    for secret in (A, B, C):
        assert secret not in text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def registry_of(pool: TokenPool, **kwargs: object) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(PoolCollector(pool, **kwargs))  # type: ignore[arg-type]
    return registry


def tok(name: str, **labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"token": name, **labels}.items()))


@pytest.mark.looptime
async def test_per_token_counters_and_gauges() -> None:
    pool = TokenPool([A, B, C], limits=Limit(10, burst=10), trial_in_flight=None)
    registry = registry_of(pool)
    async with pool:
        for _ in range(3):
            async with pool.lease():
                pass
        async with pool.lease() as lease:
            lease.rate_limited(retry_after=30)
        limited = lease.name
        pool.disable(NC, "revoked")
        held = await pool.acquire()
        samples = scrape(registry)
        names = {NA, NB, NC}
        assert sum(samples["aurora_token_leases_total", tok(n)] for n in names) == 5
        assert sum(samples["aurora_token_ok_total", tok(n)] for n in names) == 3
        assert samples["aurora_token_rate_limited_total", tok(limited)] == 1
        assert sum(samples["aurora_token_errors_total", tok(n)] for n in names) == 0
        assert samples["aurora_token_in_flight", tok(held.name)] == 1
        assert samples["aurora_token_cooldown_seconds", tok(limited)] == 30
        assert samples["aurora_token_headroom", tok(NC)] == pool.stats().token(NC).headroom == 9
        assert samples["aurora_token_state", tok(NC, state="disabled")] == 1
        assert samples["aurora_token_state", tok(NC, state="active")] == 0
        assert samples["aurora_token_state", tok(limited, state="cooling")] == 1
        assert samples["aurora_pool_tokens", (("state", "active"),)] == 1
        assert samples["aurora_pool_tokens", (("state", "cooling"),)] == 1
        assert samples["aurora_pool_tokens", (("state", "disabled"),)] == 1
        assert samples["aurora_pool_tokens", (("state", "removed"),)] == 0
        assert samples["aurora_pool_in_flight", ()] == 1
        assert samples["aurora_pool_leases_total", ()] == 5
        assert samples["aurora_pool_waiting", ()] == 0
        held.release()


@pytest.mark.looptime
async def test_waiting_leases_are_a_pool_gauge() -> None:
    pool = TokenPool([A], limits=Limit(1, per=10.0))
    registry = registry_of(pool)
    async with pool:
        async with pool.lease():
            pass
        waiters = [asyncio.create_task(pool.acquire()) for _ in range(2)]
        await asyncio.sleep(0)
        assert scrape(registry)["aurora_pool_waiting", ()] == 2
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


def jwt(exp: float) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part({'exp': exp})}.c2ln"


def test_expiry_is_exported_where_known() -> None:
    token = jwt(time.time() + 3600)
    pool = TokenPool([token, A])
    registry = registry_of(pool)
    samples = scrape(registry)
    left = samples["aurora_token_expires_in_seconds", tok(mask(token))]
    assert 3590 < left <= 3600
    assert ("aurora_token_expires_in_seconds", tok(NA)) not in samples
    assert token not in generate_latest(registry).decode()
    pool.replace_tokens([A])  # a token that left is forgotten
    scrape(registry)
    collector = next(iter(registry._collector_to_names))
    assert isinstance(collector, PoolCollector)
    assert collector._expiry == {A: None}


def test_the_pools_own_expires_in_wins() -> None:
    """Once ``pool.stats()`` fills ``TokenStats.expires_in``, the gauge shows it."""
    pool = TokenPool([A])
    original = pool.stats

    def stats() -> PoolStats:
        snapshot = original()
        tokens = tuple(dataclasses.replace(t, expires_in=123.0) for t in snapshot.tokens)
        return dataclasses.replace(snapshot, tokens=tokens)

    pool.stats = stats  # type: ignore[method-assign]
    assert scrape(registry_of(pool))["aurora_token_expires_in_seconds", tok(NA)] == 123.0


def test_per_token_series_can_be_left_out_and_the_prefix_changed() -> None:
    pool = TokenPool([A, B])
    samples = scrape(registry_of(pool, per_token=False, namespace="crawler"))
    assert {name for name, _ in samples} == {
        "crawler_pool_waiting",
        "crawler_pool_in_flight",
        "crawler_pool_tokens",
        "crawler_pool_leases_total",
    }
    with pytest.raises(ValueError, match="namespace"):
        PoolCollector(pool, namespace="not a name")


def test_describing_does_not_scrape() -> None:
    pool = TokenPool([A])
    collector = PoolCollector(pool)
    families = list(collector.describe())
    assert all(not family.samples for family in families)
    assert len(families) == 13
    assert repr(collector).startswith("<PoolCollector aurora <TokenPool")


async def test_a_scrape_from_another_thread_reads_the_pool_on_its_loop() -> None:
    pool = TokenPool([A, B], limits=Limit(10))
    registry = registry_of(pool)
    async with pool:
        async with pool.lease():
            pass
        loop_thread = threading.get_ident()
        seen: list[int] = []
        original = pool.stats

        def stats() -> PoolStats:
            seen.append(threading.get_ident())
            return original()

        pool.stats = stats  # type: ignore[method-assign]
        text = await anyio.to_thread.run_sync(generate_latest, registry)
        assert seen == [loop_thread]
        assert b"aurora_pool_leases_total 1.0" in text


async def test_a_blocked_loop_fails_the_scrape_with_a_timeout() -> None:
    pool = TokenPool([A])
    collector = PoolCollector(pool, timeout=0.05)
    errors: list[BaseException] = []

    def scrape_now() -> None:
        try:
            list(collector.collect())
        except BaseException as exc:
            errors.append(exc)

    async with pool:
        await pool.acquire(timeout=0)  # binds the pool to this loop
        thread = threading.Thread(target=scrape_now)
        thread.start()
        time.sleep(0.3)  # noqa: ASYNC251 - block the loop on purpose, longer than the scrape waits
        thread.join()
    assert len(errors) == 1
    assert isinstance(errors[0], TimeoutError)
    assert "did not answer within 0.05s" in str(errors[0])
    await asyncio.sleep(0)  # the late snapshot request finds its scrape gone: a no-op


async def test_start_http_server_serves_the_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = TokenPool([A], limits=Limit(10))
    default = CollectorRegistry()
    monkeypatch.setattr("aurora_async.prometheus.REGISTRY", default)
    async with pool:
        async with pool.lease():
            pass
        server, thread = start_http_server(pool, 0, "127.0.0.1")
        try:
            url = f"http://127.0.0.1:{server.server_port}/metrics"

            def fetch() -> str:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    return str(resp.read().decode())

            body = await anyio.to_thread.run_sync(fetch)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
        assert f'aurora_token_leases_total{{token="{NA}"}} 1.0' in body
        assert A not in body
        assert list(default._collector_to_names)  # joined the default registry


async def test_start_http_server_takes_a_registry() -> None:
    pool = TokenPool([A])
    registry = CollectorRegistry()
    server, thread = start_http_server(
        pool, 0, "127.0.0.1", registry=registry, namespace="x", per_token=False
    )
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
    assert "x_pool_waiting" in generate_latest(registry).decode()


def test_without_prometheus_client_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "aurora_async.prometheus")
    with pytest.raises(ImportError, match=r"pip install 'aurora_async\[prometheus\]'"):
        importlib.import_module("aurora_async.prometheus")


def test_the_package_does_not_import_prometheus_client() -> None:
    code = "import sys, aurora_async; print('prometheus_client' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"
