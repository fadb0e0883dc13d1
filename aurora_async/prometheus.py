"""A Prometheus exporter for a :class:`~aurora_async.TokenPool` (optional).

Needs the ``prometheus`` extra: ``pip install 'aurora_async[prometheus]'``. ::

    from prometheus_client import REGISTRY
    from aurora_async.prometheus import PoolCollector, start_http_server

    REGISTRY.register(PoolCollector(pool))        # next to your other metrics
    # or, on its own port:
    server, thread = start_http_server(pool, 9464)

Every scrape takes one ``pool.stats()`` snapshot. Tokens are labelled by their masked
name only (``token="sk-a…9f2c"``), never by the secret.

Per token (label ``token``):

=====================================  ======  ===========================================
``aurora_token_leases_total``          counter leases granted
``aurora_token_ok_total``              counter leases that ended well
``aurora_token_rate_limited_total``    counter leases answered 429 (or equivalent)
``aurora_token_errors_total``          counter leases that failed
``aurora_token_in_flight``             gauge   leases out now
``aurora_token_cooldown_seconds``      gauge   seconds until its cooldown ends (0: none)
``aurora_token_headroom``              gauge   units it could take now
``aurora_token_state``                 gauge   1 for its state (label ``state``), else 0
``aurora_token_expires_in_seconds``    gauge   seconds until it expires (only where known)
=====================================  ======  ===========================================

For the pool: ``aurora_pool_waiting``, ``aurora_pool_in_flight``,
``aurora_pool_tokens{state=...}`` (active, cooling, disabled, removed) and
``aurora_pool_leases_total``. With a very large pool, ``per_token=False`` keeps only the
pool's series (every token adds ten).

``collect()`` may run in the HTTP server's thread while the pool runs on its event loop:
the snapshot is then taken on the loop's thread (the pool is not thread-safe), waiting at
most ``timeout`` seconds for the loop to answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client import start_http_server as _start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
except ImportError:
    raise ImportError(
        "aurora_async.prometheus needs prometheus_client: pip install 'aurora_async[prometheus]'"
    ) from None

from ._core.expiry import jwt_expiry
from ._core.scheduler import TokenState
from ._core.stats import PoolStats
from ._pool.core import core_of

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from ._pool.pool import TokenPool

__all__ = ["PoolCollector", "start_http_server"]

_STATES = tuple(TokenState)
_UNKNOWN = object()


@dataclass(frozen=True, slots=True)
class _Snapshot:
    stats: PoolStats
    expires: dict[str, float]  # masked name -> seconds left, where known


class PoolCollector:
    """A Prometheus collector of one pool's metrics (see the module's doc).

    :param namespace: the metric name prefix (``aurora``).
    :param per_token: export per-token series (``False``: only the pool's).
    :param timeout: seconds to wait for the pool's loop when scraped from another thread.
    """

    def __init__(
        self,
        pool: TokenPool,
        *,
        namespace: str = "aurora",
        per_token: bool = True,
        timeout: float = 5.0,
    ) -> None:
        if not namespace.isidentifier():
            raise ValueError(f"namespace must be a Prometheus name, got {namespace!r}")
        self._pool = pool
        self._core = core_of(pool)
        self._ns = namespace
        self.per_token = per_token
        self.timeout = timeout
        self._expiry: dict[str, float | None] = {}  # secret -> JWT exp (decoded once)

    def __repr__(self) -> str:
        return f"<PoolCollector {self._ns} {self._pool!r}>"

    def describe(self) -> Iterator[Metric]:
        """The metric families, without samples (so registering never scrapes)."""
        yield from self._families(None)

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self._snapshot())

    def _take(self) -> _Snapshot:
        """``pool.stats()``, and when it has no ``expires_in`` yet, each token's expiry
        (``TokenStats.expires_in`` where the pool fills it in, else the JWT ``exp``)."""
        pool = self._pool
        stats = pool.stats()
        wall = time.time()
        known = self._expiry
        expires: dict[str, float] = {}
        slots = self._core.sched.slots
        for value, slot in slots.items():
            exp = known.get(value, _UNKNOWN)
            if exp is _UNKNOWN:
                exp = known[value] = jwt_expiry(value)
            if isinstance(exp, float):
                expires[slot.name] = exp - wall
        for value in [v for v in known if v not in slots]:
            del known[value]
        for t in stats.tokens:
            if t.expires_in is not None:
                expires[t.name] = t.expires_in
        return _Snapshot(stats, expires)

    def _snapshot(self) -> _Snapshot:
        """:meth:`_take`, on the pool's loop thread when that loop runs in another one."""
        loop = self._core.loop
        if loop is None or loop.is_closed() or not loop.is_running() or _on_loop(loop):
            return self._take()
        future: concurrent.futures.Future[_Snapshot] = concurrent.futures.Future()

        def take() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(self._take())
                except BaseException as exc:  # pragma: no cover - stats() does not raise
                    future.set_exception(exc)

        loop.call_soon_threadsafe(take)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(
                f"the pool's event loop did not answer within {self.timeout:g}s "
                "(is it blocked?); no pool metrics in this scrape"
            ) from None

    def _families(self, snapshot: _Snapshot | None) -> Iterator[Metric]:
        ns = self._ns
        if self.per_token:
            yield from self._token_families(snapshot)
        stats = None if snapshot is None else snapshot.stats
        waiting = GaugeMetricFamily(f"{ns}_pool_waiting", "Lease requests waiting.")
        in_flight = GaugeMetricFamily(f"{ns}_pool_in_flight", "Leases out now.")
        tokens = GaugeMetricFamily(
            f"{ns}_pool_tokens", "Tokens of the pool in each state.", labels=["state"]
        )
        granted = CounterMetricFamily(f"{ns}_pool_leases", "Leases granted by the pool.")
        if stats is not None:
            waiting.add_metric([], stats.waiting)
            in_flight.add_metric([], stats.in_flight)
            counts = {
                TokenState.ACTIVE: stats.active,
                TokenState.COOLING: stats.cooling,
                TokenState.DISABLED: stats.disabled,
                TokenState.REMOVED: stats.removed,
            }
            for state in _STATES:
                tokens.add_metric([state.value], counts[state])
            granted.add_metric([], stats.granted)
        yield from (waiting, in_flight, tokens, granted)

    def _token_families(self, snapshot: _Snapshot | None) -> Iterator[Metric]:
        ns = self._ns
        label = ["token"]
        leases = CounterMetricFamily(f"{ns}_token_leases", "Leases granted.", labels=label)
        ok = CounterMetricFamily(f"{ns}_token_ok", "Leases that ended well.", labels=label)
        limited = CounterMetricFamily(
            f"{ns}_token_rate_limited", "Leases the server rate-limited.", labels=label
        )
        errors = CounterMetricFamily(f"{ns}_token_errors", "Leases that failed.", labels=label)
        in_flight = GaugeMetricFamily(f"{ns}_token_in_flight", "Leases out now.", labels=label)
        cooldown = GaugeMetricFamily(
            f"{ns}_token_cooldown_seconds", "Seconds until its cooldown ends.", labels=label
        )
        headroom = GaugeMetricFamily(
            f"{ns}_token_headroom", "Units it could take now.", labels=label
        )
        state = GaugeMetricFamily(
            f"{ns}_token_state", "1 for the token's state, else 0.", labels=["token", "state"]
        )
        expires = GaugeMetricFamily(
            f"{ns}_token_expires_in_seconds",
            "Seconds until the token expires (where known).",
            labels=label,
        )
        if snapshot is not None:
            for t in snapshot.stats.tokens:
                name = [t.name]
                leases.add_metric(name, t.leases)
                ok.add_metric(name, t.ok)
                limited.add_metric(name, t.rate_limited)
                errors.add_metric(name, t.errors)
                in_flight.add_metric(name, t.in_flight)
                cooldown.add_metric(name, t.cooldown_left)
                headroom.add_metric(name, t.headroom)
                for s in _STATES:
                    state.add_metric([t.name, s.value], 1.0 if t.state is s else 0.0)
                left = snapshot.expires.get(t.name)
                if left is not None:
                    expires.add_metric(name, left)
        yield from (leases, ok, limited, errors, in_flight, cooldown, headroom, state, expires)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def start_http_server(
    pool: TokenPool,
    port: int,
    addr: str = "0.0.0.0",
    *,
    registry: CollectorRegistry | None = None,
    namespace: str = "aurora",
    per_token: bool = True,
) -> tuple[WSGIServer, threading.Thread]:
    """Serve ``pool``'s metrics at ``http://addr:port/metrics`` from a daemon thread.

    The collector joins ``registry`` (default: prometheus_client's global ``REGISTRY``,
    with the process metrics). Returns prometheus_client's ``(server, thread)``; stop
    with ``server.shutdown(); server.server_close()``. Port 0 picks a free port
    (``server.server_port``)."""
    target = REGISTRY if registry is None else registry
    target.register(PoolCollector(pool, namespace=namespace, per_token=per_token))
    return _start_http_server(port, addr, registry=target)
