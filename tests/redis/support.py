"""Helpers of the Redis tests: ``redis-server`` processes, a log recorder, and the
leaky-bucket check of "never over the limit"."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from aurora_async import Limit, TokenPool
from aurora_async._pool.core import core_of
from aurora_async._redis import RedisBackend

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def require_binary(path: str) -> None:
    if os.path.exists(path) and os.access(path, os.X_OK):
        return
    message = (
        f"{Path(path).name} not found (install redis-server, e.g. apt-get install redis-server)"
    )
    if os.environ.get("CI") or os.environ.get("AURORA_REQUIRE_REDIS") == "1":
        pytest.fail(f"{message}; CI / AURORA_REQUIRE_REDIS=1 require the Redis tests to run")
    pytest.skip(message)


def free_port(*, cluster: bool = False) -> int:
    """A free loopback port; for a cluster node also its bus port (10,000 higher)."""
    if not cluster:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    rng = random.Random()
    while True:
        port = rng.randrange(20000, 40000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port


def ping(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisProcess:
    """One ``redis-server`` on a loopback port, which tests may stop, start and pause."""

    def __init__(self, directory: Path, port: int | None = None, *extra: str) -> None:
        self.port = port or free_port()
        self.directory = directory
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            *self.extra,
        ]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.directory
        )
        deadline = time.monotonic() + 10
        while not ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


def granted_at(lease: Any) -> float:
    """When ``lease`` was granted (the loop's time): the lease keeps it private, and
    these tests time grants against the audit log and each other."""
    return float(lease._granted_at)


class Events:
    """structlog events of a test, each stamped with ``time.monotonic()`` (the clock of
    the default event loop, so comparable with ``granted_at(lease)``)."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def __call__(self, _: Any, __: str, event_dict: dict[str, Any]) -> Any:
        event_dict["at"] = time.monotonic()
        self.entries.append(dict(event_dict))
        raise structlog.DropEvent

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["event"] == name]

    def names(self) -> list[str]:
        return [e["event"] for e in self.entries]


def conforms(
    times: list[float], costs: list[float], limit: Limit, *, tolerance: float = 0.0
) -> bool:
    """Whether leases at ``times`` (seconds, any order) of ``costs`` never exceed
    ``burst + rate * t / per`` in any interval: replay them through the leaky bucket
    (GCRA), which overflows exactly when some interval is over the bound. ``tolerance``
    admits leases that much early (for client-side times, which include timer jitter)."""
    rate = limit.per_second
    tat = -float("inf")
    for at, cost in sorted(zip(times, costs, strict=True)):
        tat = max(tat, at) + cost / rate
        if tat - at > limit.burst / rate + tolerance + 1e-9:
            return False
    return True


def limits_of(pool: TokenPool) -> dict[str, tuple[Limit, ...]]:
    return {s.name: tuple(w.limit for w in s.windows) for s in core_of(pool).sched.slots.values()}


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a state the test cannot observe otherwise (never for a timing)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "the condition never came true"
        await asyncio.sleep(0.005)


def backend_of(pool: TokenPool) -> RedisBackend:
    """The pool's ``RedisBackend``."""
    backend = core_of(pool).backend
    assert isinstance(backend, RedisBackend)
    return backend


async def landed(pool: TokenPool) -> None:
    """Wait until the shared writes this pool made (a settle, a cooldown, a disable)
    reached Redis: what a test reads next sees them, without sleeping for it."""
    await backend_of(pool)._writes.drain(5.0)
