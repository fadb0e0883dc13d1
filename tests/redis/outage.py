"""Redis outages with several worker processes, measured where it counts: at the API.

A loopback aiohttp server (the API) records when each request arrives, by token;
worker processes (``_outage_worker.py``) send requests through their pools as fast as
the shared limits let them; meanwhile the run pauses (``SIGSTOP``) or kills (``kill
-9``) the ``redis-server`` and brings it back. The verdict is the excess over each
token's bound ``burst + rate * t`` in any window of length ``t``, over every arrival.

Also a script, to measure an outage by hand (``--share``: a ``degrade_share`` for every
worker, else the backend's default)::

    python -m tests.redis.outage stop [--workers 4] [--share 0.25] [--rate 10 --burst 10]
    python -m tests.redis.outage kill
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from aurora_async import Limit

from .support import RedisProcess

WORKER = Path(__file__).with_name("_outage_worker.py")
ROOT = Path(__file__).resolve().parents[2]
TOKENS = ["sk-outage-aaaa-0001", "sk-outage-bbbb-0002"]
LIMIT = Limit(10, per=1, burst=10)
#: Arrival times at the API include each worker's loop lateness and the request's own
#: latency (loopback): requests reserved ``t`` apart may arrive closer by that much. The
#: check grants every window this much more time (at 10 a second, half a unit), so a
#: whole unit over the bound still shows.
JITTER = 0.05


def worst(times: list[float], limit: Limit, jitter: float = JITTER) -> tuple[float, float, float]:
    """The most units over ``burst + rate * (t + jitter)`` in any window of length ``t``
    of arrivals ``times`` (0.0 when none is over), and that window's start and end."""
    rate = limit.per_second
    ts = sorted(times)
    found = (0.0, 0.0, 0.0)
    for i, start in enumerate(ts):
        for j in range(i, len(ts)):
            over = (j - i + 1) - (limit.burst + rate * (ts[j] - start + jitter))
            if over > found[0]:
                found = (over, start, ts[j])
    return found


def excess(times: list[float], limit: Limit, jitter: float = JITTER) -> float:
    """The most units over the bound in any window (see :func:`worst`)."""
    return worst(times, limit, jitter)[0]


@dataclass
class Api:
    """The counting server: arrival times (the loop's clock) by token."""

    arrivals: dict[str, list[float]] = field(default_factory=dict)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        now = asyncio.get_running_loop().time()
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.arrivals.setdefault(token, []).append(now)
        return web.Response(text="ok")

    def since(self, start: float) -> dict[str, list[float]]:
        return {k: [t - start for t in v] for k, v in self.arrivals.items()}


@asynccontextmanager
async def serve() -> AsyncIterator[Api]:
    api = Api()
    app = web.Application()
    app.router.add_get("/", api.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        api.url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        yield api
    finally:
        await runner.cleanup()


@dataclass
class Outcome:
    """What a run measured."""

    arrivals: dict[str, list[float]]  #: seconds since "go", by token
    results: list[dict[str, Any]]  #: each worker's report
    logs: list[str]  #: each worker's stderr
    marks: dict[str, float]  #: when each step ran (seconds since "go")
    go_wall: float  #: "go" by the wall clock (the workers' logs are stamped with it)

    def excess(self, limit: Limit = LIMIT) -> dict[str, float]:
        return {k[-4:]: excess(v, limit) for k, v in self.arrivals.items()}

    def worst(self, limit: Limit = LIMIT) -> dict[str, tuple[float, float, float]]:
        return {k[-4:]: worst(v, limit) for k, v in self.arrivals.items()}

    def units(self, start: float, end: float) -> int:
        return sum(1 for v in self.arrivals.values() for t in v if start <= t < end)


def kill9(server: RedisProcess) -> None:
    """``kill -9`` the server: it keeps nothing (no RDB, no AOF)."""
    proc, server.proc = server.proc, None
    assert proc is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


async def run(
    server: RedisProcess,
    fault: str,
    *,
    workers: int = 4,
    concurrency: int = 3,
    share: float | None = None,
    limit: Limit = LIMIT,
    before: float = 1.5,
    down: float = 1.5,
    after: float = 5.0,
) -> Outcome:
    """Hammer the API from ``workers`` processes; ``before`` seconds after "go" pause
    (``fault="stop"``) or kill (``"kill"``) Redis (or leave it be: ``"none"``), ``down``
    seconds later resume or restart it (empty, on the same port), and stop the workers
    ``after`` seconds later."""
    namespace = f"outage-{uuid.uuid4().hex[:10]}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    async with serve() as api:
        args = [sys.executable, str(WORKER), server.url, namespace, api.url, "--tokens", *TOKENS]
        args += ["--rate", repr(limit.rate), "--per", repr(limit.per)]
        args += ["--burst", repr(limit.burst), "--concurrency", str(concurrency)]
        if share is not None:
            args += ["--share", repr(share)]
        procs = [
            await asyncio.create_subprocess_exec(
                *args,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
            for _ in range(workers)
        ]
        try:
            for proc in procs:
                assert proc.stdout is not None
                ready = await asyncio.wait_for(proc.stdout.readline(), 60)
                assert ready.strip() == b"ready", ready
            loop = asyncio.get_running_loop()
            start, go_wall = loop.time(), time.time()
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(b"go\n")
                await proc.stdin.drain()
            marks: dict[str, float] = {}

            async def at(seconds: float, name: str) -> None:
                await asyncio.sleep(max(0.0, start + seconds - loop.time()))
                marks[name] = loop.time() - start

            await at(before, "fault")
            if fault == "stop":
                server.pause()
            elif fault == "kill":
                await asyncio.to_thread(kill9, server)
            await at(before + down, "repair")
            if fault == "stop":
                server.resume()
            elif fault == "kill":
                await asyncio.to_thread(server.start)
            await at(before + down + after, "end")
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(b"stop\n")
                await proc.stdin.drain()
            results, logs = [], []
            for proc in procs:
                out, err = await asyncio.wait_for(proc.communicate(), 60)
                assert proc.returncode == 0, err.decode()
                results.append(json.loads(out))
                logs.append(err.decode())
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        return Outcome(api.since(start), results, logs, marks, go_wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fault", choices=["stop", "kill", "none"])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--share", type=float, default=None)
    parser.add_argument("--rate", type=float, default=LIMIT.rate, help="a second, each token")
    parser.add_argument("--burst", type=float, default=LIMIT.burst)
    parser.add_argument("--logs", action="store_true", help="print each worker's stderr")
    args = parser.parse_args()
    limit = Limit(args.rate, per=1, burst=args.burst)
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisProcess(Path(tmp))
        server.start()
        try:
            began = time.monotonic()
            outcome = asyncio.run(
                run(
                    server,
                    args.fault,
                    workers=args.workers,
                    concurrency=args.concurrency,
                    share=args.share,
                    limit=limit,
                )
            )
        finally:
            server.stop()
    print(f"wall time {time.monotonic() - began:.1f} s; marks {outcome.marks}")
    for r in outcome.results:
        print(f"worker {r['worker']}: sent {r['sent']}, errors {r['errors']}, ", end="")
        print(f"modes {r['modes']}, saw {r['workers']} workers")
    found = {k: tuple(round(x, 3) for x in v) for k, v in outcome.worst(limit).items()}
    print("units over the bound (and where), by token:", found)
    if args.logs:
        for n, log in enumerate(outcome.logs):
            for line in log.splitlines():
                stamp = re.search(r"timestamp='([^']+)'", line)
                at = "?"
                if stamp:
                    wall = datetime.fromisoformat(stamp.group(1).replace("Z", "+00:00"))
                    at = f"{wall.timestamp() - outcome.go_wall:7.3f}"
                print(f"[{n}] {at} {re.sub(r' timestamp=[^ ]+', '', line)}")


if __name__ == "__main__":
    main()
