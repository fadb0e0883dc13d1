"""A token with two limit windows: 3 calls a second *and* 20 a minute.

    python examples/multiple_windows.py

Many APIs state both a short and a long limit. A lease needs room in every window of its
token: here the per-second window paces the first calls, and once about 20 went out in
the minute the per-minute window binds, although the per-second one has room again.
Offline against a local API that enforces both; it takes about twelve seconds.

Both are leaky buckets (aiolimiter's meaning): the per-minute one drains a third of a
unit a second all along, so a few more than 20 fit before it binds, and after that one
every 3 s. The API's answers state its per-second limit ("3 per 1 s"); the pool keeps a
stated limit as a bucket that can never overrun it (2 a second and a burst of 1), and
leaves the per-minute window as it is, with what it holds.
"""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise

from aurora_async import LeaseTimeout, Limit, Token, TokenPool
from aurora_async.testing import MockAPI

CALLS = 24  # enough for the per-minute window to bind: it holds the last one back
TOKEN = Token("sk-example-windows-3c8e0f92", limits=[Limit(3, per=1), Limit(20, per=60)])


async def main() -> None:
    # The API admits a call that fits 0.1 s later, as servers seeing calls after a
    # varying network delay must: the first one, which opens the connection, reaches it
    # tens of milliseconds after it left, the next ones a millisecond.
    async with MockAPI([TOKEN], tolerance=0.1) as api, TokenPool([TOKEN]) as pool:
        started = time.perf_counter()
        sent: list[float] = []
        for i in range(CALLS):  # one after another: the gaps show which window paces
            resp = await pool.get(f"{api.url}/items/{i}")
            if resp.status == 200:
                sent.append(time.perf_counter() - started)
        gaps = [b - a for a, b in pairwise(sent)]
        paced = 1 + next((i for i, gap in enumerate(gaps) if gap > 0.75), len(gaps))
        pace = (paced - 1) / (sent[paced - 1] - sent[0]) if paced > 1 else 0.0
        print(f"{len(sent)} calls in {sent[-1]:.1f} s")
        print("  sent at (s): " + ", ".join(f"{t:.1f}" for t in sent))
        print(f"  the first {paced} paced by the per-second window, {pace:.1f} a second")
        if paced < len(sent):
            print(f"  then the per-minute window held a call back {max(gaps):.1f} s")
        print(f"  limits now: {', '.join(pool.stats().tokens[0].limits)}")
        try:
            async with pool.lease(timeout=1.0):
                print("  a lease was granted within 1 s (unexpected)")
        except LeaseTimeout:
            print(
                "the 20/60s window is spent: a lease that may wait 1 s times out, although "
                "the per-second window has room again after half a second; the per-minute "
                "window frees one unit every 3 s from now on"
            )
        print(f"server: {api.totals.ok} answered 200, {api.totals.rate_limited} answered 429")


if __name__ == "__main__":
    asyncio.run(main())
