"""Scale of the token file: loading, ``stats()``, reloading and the redaction index at
100,000 and 1,000,000 tokens.

    python benchmarks/bench_scale.py [--quick]          # --quick: 10,000 and 100,000

Each size runs in a fresh child process (``--child N``), so its memory is its own:

* **load**: ``TokenPool.from_file`` on a file of N tokens (36 characters each, one per
  line), entering the pool and the first lease, from inside a running event loop;
* **RSS**: the process's resident memory after the load (and a collection) less before,
  per token: what a pool of N idle tokens costs, parse and construction leftovers and
  allocator fragmentation included (``bench_memory.py`` counts live objects instead);
* **stats()**: one call, and one call with every token's record read;
* **redaction index**: what the first masked text after the load costs the loop (the
  old index is built then; the new one may still be under way in its own thread), the
  RSS per token with the index built, the time of building the index of every token
  from scratch and the bytes it holds (tracemalloc), the time of masking a 300-character
  text, and whether a 20-character part of a token in it was masked;
* **reload**: ``pool.reload()`` of the file with 10% of its tokens replaced, while a
  heartbeat coroutine sleeps 1 ms in a loop and a leaser takes a lease every 0.5 ms: the
  reload's wall time, the longest gap between heartbeats (the event loop's stall;
  against the longest gap over as long a stretch without a reload, the baseline), the
  leases granted during the reload and the longest gap between them.

The pool has ``calibrate=False`` and declared limits: the calibration tick, which looks at
every token four times a second while leases are granted, would otherwise add its own
stall to the reload's (a separate matter). After the load the process calls
``gc.freeze()`` (as ``bench_lease.py`` does), as an application holding a million tokens
should: otherwise any full collection walks the pool's millions of objects, seconds
during which the loop stands still, reload or not.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from _common import Figure, Report, finish, quick, secrets

#: Every token's limit: far more than the leaser asks for, so no lease waits.
RATE = 1000.0
HEARTBEAT = 0.001
LEASE_EVERY = 0.0005


def rss() -> int:
    """Resident memory of this process, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def write_tokens(path: Path, values: list[str]) -> None:
    path.write_text("".join(f"{v}\n" for v in values))


class Beat:
    """A heartbeat coroutine (sleeps ``HEARTBEAT`` in a loop) and a leaser (one lease
    every ``LEASE_EVERY``): the gaps between their turns show how long the loop stalls."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.beats: list[float] = []
        self.grants: list[float] = []
        self.running = True

    async def heartbeat(self) -> None:
        while self.running:
            self.beats.append(time.perf_counter())
            await asyncio.sleep(HEARTBEAT)

    async def leaser(self) -> None:
        while self.running:
            async with self.pool.lease():
                self.grants.append(time.perf_counter())
            await asyncio.sleep(LEASE_EVERY)

    @staticmethod
    def gap(times: list[float], start: float, end: float) -> float:
        inside = [start, *(t for t in times if start <= t <= end), end]
        return max(b - a for a, b in itertools.pairwise(inside))

    def count(self, start: float, end: float) -> int:
        return sum(1 for t in self.grants if start <= t <= end)


async def timed_reload(pool: Any, path: Path, beat: Beat) -> dict[str, float]:
    await asyncio.sleep(0.05)  # both coroutines running
    quiet_start = time.perf_counter()
    await asyncio.sleep(0.3)  # a stretch without a reload, for the baseline
    quiet_end = start = time.perf_counter()
    result = await pool.reload(path)
    end = time.perf_counter()
    await asyncio.sleep(0.01)
    return {
        "reload_s": end - start,
        "reload_gap_ms": beat.gap(beat.beats, start, end) * 1e3,
        "reload_grants": beat.count(start, end),
        "reload_grant_gap_ms": beat.gap(beat.grants, start, end) * 1e3,
        "baseline_gap_ms": beat.gap(beat.beats, quiet_start, quiet_end) * 1e3,
        "added": len(result.added),
        "removed": len(result.removed),
    }


async def child_main(n: int, workdir: Path) -> dict[str, Any]:
    from aurora_async import Limit, TokenPool
    from aurora_async._pool.core import core_of

    values = secrets(n, "tok")
    first = workdir / "tokens.txt"
    write_tokens(first, values)
    changed = workdir / "tokens2.txt"
    fresh = secrets(n // 10, "new")
    write_tokens(changed, [fresh[i // 10] if i % 10 == 0 else v for i, v in enumerate(values)])
    probe = values[n // 2]
    text = (
        "upstream said: invalid key "
        + probe[:20]
        + " (truncated) at https://api.example.com/v1/items?page=3&q=plain+words, " * 3
    )[:300]
    del values, fresh
    gc.collect()
    out: dict[str, Any] = {"n": n}
    base = rss()

    start = time.perf_counter()
    pool = TokenPool.from_file(first, limits=Limit(RATE, per=1.0, burst=RATE), calibrate=False)
    async with pool:
        async with pool.lease():
            pass
        out["load_s"] = time.perf_counter() - start
        gc.collect()
        gc.freeze()  # the pool is long-lived: keep the collector from rescanning it
        out["rss_bytes_per_token"] = (rss() - base) / n

        redact = core_of(pool).redact
        out.update(await redaction(redact, text, probe))
        out["rss_loaded_bytes_per_token"] = (out.pop("rss_after_first_mask") - base) / n

        start = time.perf_counter()
        stats = pool.stats()
        out["stats_s"] = time.perf_counter() - start
        start = time.perf_counter()
        stats = pool.stats()
        leased = sum(t.leases for t in stats.tokens)
        out["stats_all_s"] = time.perf_counter() - start
        assert leased == 1, leased
        assert len(stats.tokens) == n, len(stats.tokens)
        del stats

        beat = Beat(pool)
        tasks = [asyncio.create_task(beat.heartbeat()), asyncio.create_task(beat.leaser())]
        out.update(await timed_reload(pool, changed, beat))
        beat.running = False
        await asyncio.gather(*tasks)
        assert out["added"] == n // 10 == out["removed"], out
    return out


async def redaction(redact: Any, text: str, probe: str) -> dict[str, float]:
    """The first masked text after the load (what the loop pays: the old index is built
    then, on the loop; the new one may still be under way in its thread), then a build
    of the index of every known token (as after a change of the token set, or a merge)
    timed, then the same build again under tracemalloc for the memory it holds, then
    masking with it."""
    start = time.perf_counter()
    masked = redact(text)
    first = time.perf_counter() - start
    gc.collect()
    after_first = rss()
    known = getattr(redact, "known", None)

    def build_index() -> object:
        if known is not None:  # built off the loop (a worker thread); timed here directly
            from aurora_async._pool.parts import PartIndex

            return PartIndex(known())
        redact.forget()  # the old one: built on the loop by the first masked text
        redact(text)
        return None

    start = time.perf_counter()
    build_index()  # the index of every known token, built from scratch
    build = time.perf_counter() - start
    gc.collect()
    tracemalloc.start()
    kept = build_index()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    times = []
    for _ in range(20):
        start = time.perf_counter()
        redact(text)
        times.append(time.perf_counter() - start)
    return {
        "rss_after_first_mask": after_first,
        "redact_first_s": first,
        "redact_build_s": build,
        "redact_bytes_per_token": held,  # divided by n by the caller
        "redact_mask_us": statistics.median(times) * 1e6,
        "redact_masked": probe[:20] not in masked,  # a 20-character part of a token
    }


def child(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = asyncio.run(child_main(n, Path(tmp)))
    out["redact_bytes_per_token"] /= n
    print(json.dumps(out))


def run_child(n: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(n)], capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"bench_scale: the child for {n:,} tokens failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    if "--child" in sys.argv:
        child(int(sys.argv[sys.argv.index("--child") + 1]))
        return 0
    sizes = (10_000, 100_000) if quick() else (100_000, 1_000_000)
    report = Report("scale")
    for n in sizes:
        r = run_child(n)
        k = f"{n:,}"
        report.add(Figure(f"{k}: load (from_file, enter, first lease)", r["load_s"], "s"))
        per = r["rss_bytes_per_token"]
        report.add(Figure(f"{k}: RSS per token after the load", per, "bytes"))
        per = r["rss_loaded_bytes_per_token"]
        report.add(Figure(f"{k}: RSS per token, redaction index built", per, "bytes"))
        report.add(Figure(f"{k}: stats()", r["stats_s"] * 1e3, "ms"))
        report.add(Figure(f"{k}: stats(), every token read", r["stats_all_s"] * 1e3, "ms"))
        first = r["redact_first_s"] * 1e3
        report.add(Figure(f"{k}: first masked text after the load", first, "ms"))
        report.add(Figure(f"{k}: redaction index, build", r["redact_build_s"] * 1e3, "ms"))
        per = r["redact_bytes_per_token"]
        report.add(Figure(f"{k}: redaction index, bytes per token", per, "bytes"))
        report.add(Figure(f"{k}: mask a 300-character text", r["redact_mask_us"], "µs"))
        masked = bool(r["redact_masked"])
        report.add(Figure(f"{k}: a 20-character part of a token masked", masked, "", "yes", masked))
        report.add(Figure(f"{k}: reload, 10% replaced", r["reload_s"] * 1e3, "ms"))
        gap, base = r["reload_gap_ms"], r["baseline_gap_ms"]
        report.add(
            Figure(f"{k}: reload, longest loop stall", gap, "ms", detail=f"baseline {base:.1f} ms")
        )
        report.add(Figure(f"{k}: reload, leases granted during it", r["reload_grants"], ""))
        gap = r["reload_grant_gap_ms"]
        report.add(Figure(f"{k}: reload, longest gap between grants", gap, "ms"))
    report.notes.append(
        f"Sizes {', '.join(f'{n:,}' for n in sizes)}; one child process per size; "
        "36-character tokens, one limit each, calibrate=False."
    )
    return finish(report)


if __name__ == "__main__":
    sys.exit(main())
