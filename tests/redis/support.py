"""Helpers of the Redis tests: ``redis-server`` processes, a log recorder, and the
leaky-bucket check of "never over the limit"."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
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


async def until(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float = 5.0,
    *,
    what: str = "the condition",
) -> None:
    """Wait for a state the test cannot observe otherwise (never for a timing): check
    ``condition`` (a function, or one returning an awaitable, e.g. a read from Redis)
    every 5 ms of the loop's clock, and fail the test, naming ``what`` (a noun phrase),
    if it does not hold within ``timeout`` seconds. The one polling helper of these
    tests."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        holds = condition()
        if inspect.isawaitable(holds):
            holds = await holds
        if holds:
            return
        assert loop.time() < deadline, f"still waiting, after {timeout} s, for {what}"
        await asyncio.sleep(0.005)


def backend_of(pool: TokenPool) -> RedisBackend:
    """The pool's ``RedisBackend``."""
    backend = core_of(pool).backend
    assert isinstance(backend, RedisBackend)
    return backend


async def landed(pool: TokenPool, timeout: float = 5.0) -> None:
    """Wait until the shared writes this pool made (a settle, a cooldown, a disable, the
    state refresh a reply asked for) reached Redis, and the round they may have started
    (registering again when the refresh found this worker forgotten) is over: what a
    test reads next sees them, without sleeping for it. Awaits the backend's own
    background tasks (its writer, its pump) until neither runs; fails the test if they
    are still running after ``timeout`` seconds, or left a write unsent."""
    backend = backend_of(pool)
    writes, pump = backend._writes, backend._pump
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (task := writes._task or pump.task) is not None:
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.shield(task)
        except TimeoutError:
            raise AssertionError(
                f"the shared writes of {backend!r} did not land within {timeout} s"
            ) from None
    assert not writes._ops, f"shared writes left unsent: {list(writes._ops)}"


async def reserved(pool: TokenPool, n: int = 1, timeout: float = 5.0) -> None:
    """Wait until ``n`` waiters of ``pool`` hold a reservation of Redis that is not yet
    due. Checked as each reserve reply is applied (``RedisBackend._apply``, the seam
    the backend keeps for tests), so the test runs on before the loop's next timer: a
    reservation cannot come due and be granted between the check and what the test
    does next, as it could between two polls on a loaded machine. Fails the test if
    the ``n`` reservations are not held within ``timeout`` seconds."""
    backend = backend_of(pool)
    queue = backend._queue
    if len(queue.holding()) >= n:
        return
    done = asyncio.Event()
    replaced = vars(backend).get("_apply")  # a test's own replacement, if any
    apply = backend._apply

    def apply_then_check(batch: Any, reply: Any) -> None:
        apply(batch, reply)
        if len(queue.holding()) >= n:
            done.set()

    backend._apply = apply_then_check  # type: ignore[method-assign]
    try:
        async with asyncio.timeout(timeout):
            await done.wait()
    except TimeoutError:
        raise AssertionError(
            f"{n} reservation(s) not held within {timeout} s (held now: {len(queue.holding())})"
        ) from None
    finally:
        if replaced is None:
            del backend._apply  # the class's own again
        else:
            backend._apply = replaced  # type: ignore[method-assign]
