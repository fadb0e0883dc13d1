"""A three-node Redis Cluster started locally: the scripts run, and every key of a
namespace lands in one hash slot (on one node)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from aurora_async import Limit, TokenPool
from aurora_async._redis import RedisBackend

from .support import REDIS_CLI, REDIS_SERVER, RedisProcess, free_port, landed, require_binary

pytestmark = pytest.mark.redis

TOKENS = ["aaaa-secret-0001", "bbbb-secret-0002", "cccc-secret-0003"]


def cluster_ok(port: int) -> bool:
    out = subprocess.run(
        [REDIS_CLI, "-p", str(port), "CLUSTER", "INFO"], capture_output=True, text=True, check=False
    ).stdout
    return "cluster_state:ok" in out


def scan(port: int, pattern: str) -> list[str]:
    out = subprocess.run(
        [REDIS_CLI, "-p", str(port), "--scan", "--pattern", pattern],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisProcess]]:
    require_binary(REDIS_SERVER)
    require_binary(REDIS_CLI)
    base = tmp_path_factory.mktemp("cluster")
    nodes = []
    for _ in range(3):
        port = free_port(cluster=True)
        nodes.append(
            RedisProcess(
                Path(base, str(port)),
                port,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-node-timeout",
                "2000",
            )
        )
    try:
        for node in nodes:
            node.start()
        subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            check=True,
            timeout=30,
        )
        deadline = time.monotonic() + 20
        while not all(cluster_ok(n.port) for n in nodes):
            assert time.monotonic() < deadline, "the cluster did not converge"
            time.sleep(0.05)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture
async def cluster_client(cluster: list[RedisProcess]) -> AsyncIterator[Any]:
    from redis.asyncio.cluster import RedisCluster

    client = RedisCluster(host="127.0.0.1", port=cluster[0].port)
    await client.initialize()
    yield client
    await client.aclose()


async def test_the_scripts_run_on_a_cluster_and_keys_share_one_slot(
    cluster: list[RedisProcess], cluster_client: Any
) -> None:
    limit = Limit(50, per=1, burst=2)
    backends = [
        RedisBackend(client=cluster_client, namespace="clustered", audit=True) for _ in range(2)
    ]
    pools = [TokenPool(TOKENS, limits=limit, backend=b, trial_in_flight=None) for b in backends]
    async with pools[0], pools[1]:

        async def burst(pool: TokenPool) -> list[str]:
            async def one() -> str:
                async with pool.lease() as lease:
                    return lease.name

            return list(await asyncio.gather(*(one() for _ in range(12))))

        names = await asyncio.gather(burst(pools[0]), burst(pools[1]))
        async with pools[0].lease() as lease:
            lease.rate_limited(1.0)
        pools[1].disable(pools[1].stats().tokens[2].name, "by hand")
        await landed(pools[0])  # the cooldown
        await landed(pools[1])  # the disable
        log = await backends[0].audit_log()
        inspected = await backends[1].inspect()
        # Every key of the namespace, from every node.
        keys: list[str] = []
        for node in cluster:
            found = await asyncio.to_thread(scan, node.port, "{aurora:clustered}*")
            keys += [f"{node.port} {k}" for k in found]
        await backends[0].reset()
    assert sum(map(len, names)) == 24
    assert len(log) == 25
    assert [t.state for t in inspected].count("disabled") == 1
    assert [t.state for t in inspected].count("cooling") == 1
    assert len(keys) >= 8
    assert len({k.split()[0] for k in keys}) == 1  # one node
    assert len({key_slot(k.split()[1].encode()) for k in keys}) == 1  # one slot
