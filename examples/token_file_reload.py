"""Edit the token file while the pool runs: ``TokenPool.from_file(..., watch=True)``.

    python examples/token_file_reload.py

Offline: the example writes an ``access_tokens.txt`` in a temporary directory, opens a
pool that watches it, and keeps sending requests to a local API while it edits the
file: a new token joins, a removed one finishes its calls and takes no more, and a
broken version (a line with a space inside) is rejected, with an error logged to
stderr, while the last good set stays in service.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

from aurora_async import Limit, TokenPool
from aurora_async.testing import MockAPI

FIRST = "sk-example-file-first-6a1d03e7"
SECOND = "sk-example-file-second-b97c2f40"
THIRD = "sk-example-file-third-0e5d8a19"
LIMIT = Limit(50, per=1)


def name(secret: str) -> str:
    return f"{secret[:4]}…{secret[-4:]}"  # how the pool shows a token


def states(pool: TokenPool) -> str:
    return ", ".join(f"{t.name} {t.state.value}" for t in pool.stats().tokens)


async def until_swapped(pool: TokenPool, seconds: float = 5.0) -> float:
    """Wait until the watcher has put THIRD in FIRST's place; how long that took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < seconds:
        seen = {t.name: t.state.value for t in pool.stats().tokens}
        if seen.get(name(THIRD)) == "active" and seen.get(name(FIRST)) in (None, "removed"):
            break
        await asyncio.sleep(0.02)
    return loop.time() - started


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "access_tokens.txt"
        path.write_text(f"# tokens for the example\n{FIRST}\n{SECOND}\n")
        async with MockAPI([FIRST, SECOND, THIRD], default_limit=LIMIT) as api:
            pool = TokenPool.from_file(path, limits=LIMIT, watch=True, poll_interval=0.1)
            async with pool:

                async def traffic() -> None:
                    while True:
                        await pool.get(f"{api.url}/items")

                workers = [asyncio.create_task(traffic()) for _ in range(5)]
                try:
                    await asyncio.sleep(0.3)
                    print(f"start: {states(pool)}")

                    path.write_text(f"{SECOND}\n{THIRD}\n")  # the first out, a third in
                    took = await until_swapped(pool)
                    removed_at = api.stats(FIRST).requests
                    print(f"edited (picked up in {took:.2f} s): {states(pool)}")
                    await asyncio.sleep(0.3)

                    path.write_text(f"{SECOND}\n{THIRD} oops\n")  # broken: a space inside
                    await asyncio.sleep(0.5)  # read, refused, logged; the set stays
                    print(f"broken edit rejected: {states(pool)}")
                finally:
                    for task in workers:
                        task.cancel()
                    for task in workers:
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
            after = api.stats(FIRST).requests - removed_at
            print(
                f"server: {api.stats(FIRST).ok} calls on the removed token ({after} after "
                f"its removal), {api.stats(SECOND).ok} on the kept one, "
                f"{api.stats(THIRD).ok} on the new one"
            )


if __name__ == "__main__":
    asyncio.run(main())
