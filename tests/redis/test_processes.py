"""Several OS processes share one namespace: the limits hold across all of them, on the
Redis server's clock, and together they use (nearly) all of it."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from aurora_async import Limit
from aurora_async._redis import RedisBackend

from .support import RedisProcess, conforms

pytestmark = pytest.mark.redis

WORKER = Path(__file__).with_name("_worker.py")
TOKENS = [f"tok-{i}-{'x' * 12}-{i:04d}" for i in range(4)]
RATE, BURST = 40.0, 4.0


async def run_workers(
    url: str, namespace: str, skews: list[float], duration: float = 1.5, *extra: str
) -> list[dict[str, object]]:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            url,
            namespace,
            "--tokens",
            *TOKENS,
            "--rate",
            str(RATE),
            "--burst",
            str(BURST),
            "--duration",
            str(duration),
            "--skew",
            str(skew),
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for skew in skews
    ]
    results = []
    for proc in procs:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert not err.strip(), err.decode()  # nothing logged: no degradation, no warning
        results.append(json.loads(out))
    return results


@pytest.mark.parametrize(
    "skews",
    [
        pytest.param([0.0, 0.0, 0.0], id="three-processes"),
        pytest.param([0.0, 7.5, -3.25, 120.0], id="skewed-clocks"),
    ],
)
async def test_processes_share_the_limits_and_use_them_fully(
    redis_server: RedisProcess, make_backend: Callable[..., RedisBackend], skews: list[float]
) -> None:
    reader = make_backend()  # reads the audit log of the namespace
    results = await run_workers(redis_server.url, reader.namespace, skews)
    assert all(int(r["leases"]) > 0 for r in results)  # type: ignore[call-overload]
    assert all(r["mode"] == "redis" for r in results)

    log = await reader.audit_log()
    assert all(e.cost == 1 for e in log)
    assert {e.worker for e in log} == {r["worker"] for r in results}
    assert len(log) == sum(int(r["leases"]) for r in results)  # type: ignore[call-overload]
    limit = Limit(RATE, per=1, burst=BURST)
    t0 = min(e.at_us for e in log)
    by_token: dict[str, list[float]] = {}
    for e in log:
        by_token.setdefault(e.id, []).append((e.at_us - t0) / 1e6)
    assert len(by_token) == len(TOKENS)
    for times in by_token.values():
        # Never over the limit, exactly, on the server's clock.
        assert conforms(times, [1.0] * len(times), limit)
    span = (max(e.at_us for e in log) - min(e.at_us for e in log)) / 1e6
    capacity = len(TOKENS) * (BURST + RATE * span)
    assert len(log) >= 0.95 * capacity, (len(log), capacity, span)


async def test_processes_never_exceed_a_tokens_bound_in_any_resource(
    redis_server: RedisProcess, make_backend: Callable[..., RedisBackend]
) -> None:
    # Three processes lease cheap (10 tokens) and dear (300 tokens) calls on four shared
    # tokens: requests bind the cheap ones, tokens the dear ones.
    units = Limit(2000, per=1, burst=400, unit="tokens")
    extra = ["--units-rate", "2000", "--units-burst", "400", "--costs", "10", "300"]
    reader = make_backend()
    results = await run_workers(redis_server.url, reader.namespace, [0.0] * 3, 1.0, *extra)
    assert all(r["mode"] == "redis" for r in results)
    log = await reader.audit_log()
    assert {e.worker for e in log} == {r["worker"] for r in results}
    assert len(log) == sum(int(r["leases"]) for r in results)  # type: ignore[call-overload]
    assert {e.parts["tokens"] for e in log} == {10.0, 300.0}
    requests = Limit(RATE, per=1, burst=BURST)
    t0 = min(e.at_us for e in log)
    for tid in {e.id for e in log}:
        mine = [e for e in log if e.id == tid]
        times = [(e.at_us - t0) / 1e6 for e in mine]
        # Counted per token per resource on the server's clock: never over either bound.
        assert conforms(times, [e.cost for e in mine], requests)
        assert conforms(times, [e.parts["tokens"] for e in mine], units)
