"""The container's entry point: a small worker that shares a pool of tokens read from a file.

It reads the token file with ``TokenPool.from_file(watch=True)``, so editing the mounted
file (or a Kubernetes secret update) changes the pool without a restart, and runs a few
workers that each lease a token per call. Every setting comes from the environment:

=====================  ====================================================================
AURORA_TOKENS_FILE     the token file (the image sets /run/secrets/access_tokens.txt)
AURORA_TARGET_URL      GET this URL with each call (default: none, calls are simulated)
AURORA_RATE            calls per second per token (default 5)
AURORA_WORKERS         calls at once (default 8)
AURORA_POLL_INTERVAL   seconds between polls of the token file (default 2)
AURORA_STATE_FILE      keep disabled tokens, cooldowns and quotas here across restarts
AURORA_REPORT_EVERY    seconds between progress lines (default 30)
AURORA_RUN_SECONDS     stop after this long (default 0: until SIGTERM or SIGINT)
=====================  ====================================================================

Progress and the final summary go to stdout as JSON lines (masked token names only); the
library's events go to stderr. SIGTERM (``docker stop``) finishes the calls under way and
exits 0; SIGHUP reloads the token file at once. Exit status 2: the configuration is wrong
(for example, no token file where it looked; the message says where and why).

Run it outside a container too::

    AURORA_TOKENS_FILE=./access_tokens.txt AURORA_RUN_SECONDS=5 python entrypoint.py
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sys
from typing import Any

from aurora_async import AuroraError, Limit, NoTokensAvailable, TokenFileError, TokenPool
from aurora_async._io.statefile import StateFile  # to be exported as aurora_async.StateFile


def setting(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"entrypoint: {name} must be a number, got {raw!r}") from None
    if value < 0:
        raise SystemExit(f"entrypoint: {name} must not be negative, got {raw!r}")
    return value


def say(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}, ensure_ascii=False), flush=True)


def summary(pool: TokenPool) -> dict[str, Any]:
    stats = pool.stats()
    return {
        "granted": stats.granted,
        "active": stats.active,
        "cooling": stats.cooling,
        "disabled": stats.disabled,
        "tokens": {t.name: {"state": t.state.value, "leases": t.leases} for t in stats.tokens},
    }


async def call(pool: TokenPool, url: str | None) -> None:
    """One call: a real GET with a leased token, or a stand-in of 10 ms."""
    if url:
        async with pool.stream("GET", url) as resp:
            await resp.read()
        return
    async with pool.lease():
        await asyncio.sleep(0.01)


async def worker(pool: TokenPool, url: str | None, retry_after: float) -> None:
    while True:
        try:
            await call(pool, url)
        except NoTokensAvailable:
            # Every token is disabled or removed: wait for the token file to change.
            await asyncio.sleep(retry_after)
        except AuroraError as exc:
            logging.getLogger("entrypoint").warning("call failed: %s", exc)


async def main() -> int:
    rate = setting("AURORA_RATE", 5)
    workers = int(setting("AURORA_WORKERS", 8)) or 1
    poll = setting("AURORA_POLL_INTERVAL", 2) or 2
    report_every = setting("AURORA_REPORT_EVERY", 30) or 30
    run_seconds = setting("AURORA_RUN_SECONDS", 0)
    url = os.environ.get("AURORA_TARGET_URL") or None
    state_path = os.environ.get("AURORA_STATE_FILE") or None

    try:
        pool = TokenPool.from_file(limits=Limit(rate or 5), watch=True, poll_interval=poll)
    except TokenFileError as exc:
        print(f"entrypoint: {exc}", file=sys.stderr, flush=True)
        return 2
    pool.reload_on_sighup()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    async with pool:
        state = StateFile(state_path) if state_path else None
        if state is not None:
            state.load_into(pool)
        say("started", tokens=sorted(t.name for t in pool.stats().tokens), pid=os.getpid())
        tasks = [asyncio.create_task(worker(pool, url, poll)) for _ in range(workers)]
        if state is not None:
            tasks.append(asyncio.create_task(state.autosave(pool, every=60)))
        try:
            deadline = loop.time() + run_seconds if run_seconds else math.inf
            next_report = loop.time() + report_every
            while not stop.is_set() and loop.time() < deadline:
                with contextlib.suppress(TimeoutError):
                    timeout = min(deadline, next_report) - loop.time()
                    await asyncio.wait_for(stop.wait(), timeout=max(timeout, 0))
                if loop.time() >= next_report:
                    say("progress", **summary(pool))
                    next_report += report_every
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if state is not None:
                with contextlib.suppress(OSError):
                    await state.save(pool)
            say("stopped", **summary(pool))
    return 0


def run() -> None:
    logging.basicConfig(
        level=os.environ.get("AURORA_LOG_LEVEL", "INFO").upper(),
        format="%(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # one line per file event
    sys.exit(asyncio.run(main()))


if __name__ == "__main__":
    run()
