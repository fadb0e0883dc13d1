"""A reload of a large token file: parsed and planned in a worker thread, applied on the
loop in slices, with the loop running between them (leases granted, waiters served in
order, other coroutines running), and the set applied even when it changes meanwhile.

Counted, not timed: what other coroutines see of the pool while a reload is under way."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from aurora_async import Limit, TokenPool
from aurora_async._io import tokenfile as io_tokenfile
from aurora_async._pool import reload as reload_module
from aurora_async._pool.core import core_of
from aurora_async._pool.membership import SLICE

OLD = [f"sk-old-{i:05d}-0123456789abcdef" for i in range(2000)]
NEW = [f"sk-new-{i:05d}-fedcba9876543210" for i in range(3000)]
ROOMY = Limit(1000, per=1.0, burst=1000)


def write(path: Path, values: list[str]) -> Path:
    path.write_text("".join(f"{v}\n" for v in values))
    return path


class Watch:
    """A coroutine that runs every loop turn until stopped, noting the pool's size."""

    def __init__(self, pool: TokenPool) -> None:
        self.sched = core_of(pool).sched
        self.sizes: list[int] = []
        self.running = True

    async def run(self) -> None:
        while self.running:
            self.sizes.append(len(self.sched.slots))
            await asyncio.sleep(0)


async def test_a_reload_yields_to_the_loop_between_slices(tmp_path: Path) -> None:
    path = write(tmp_path / "tokens.txt", OLD)
    pool = TokenPool.from_file(path, limits=ROOMY)
    async with pool:
        watch = Watch(pool)
        granted_at: list[int] = []

        async def leaser() -> None:
            while watch.running:
                async with pool.lease():
                    granted_at.append(len(watch.sched.slots))
                await asyncio.sleep(0)

        tasks = [asyncio.create_task(watch.run()), asyncio.create_task(leaser())]
        write(path, OLD + NEW)
        result = await pool.reload()
        watch.running = False
        await asyncio.gather(*tasks)
    assert len(result.added) == len(NEW)
    # The coroutines ran between slices: they saw the pool half way, many times over.
    halfway = {n for n in watch.sizes if len(OLD) < n < len(OLD) + len(NEW)}
    assert len(halfway) >= len(NEW) // SLICE - 1
    assert any(len(OLD) < n < len(OLD) + len(NEW) for n in granted_at)


async def test_the_file_is_parsed_and_planned_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: dict[str, int] = {}
    parse, plan = io_tokenfile.parse_token_text, reload_module.plan_tokens

    def parse_spy(*args: object, **kwargs: object) -> object:
        threads["parse"] = threading.get_ident()
        return parse(*args, **kwargs)  # type: ignore[arg-type]

    def plan_spy(*args: object) -> object:
        threads["plan"] = threading.get_ident()
        return plan(*args)  # type: ignore[arg-type]

    path = write(tmp_path / "tokens.txt", OLD[:10])
    pool = TokenPool.from_file(path)
    monkeypatch.setattr(io_tokenfile, "parse_token_text", parse_spy)
    monkeypatch.setattr(reload_module, "plan_tokens", plan_spy)
    async with pool:
        write(path, OLD[5:20])
        await pool.reload()
    assert sorted(threads) == ["parse", "plan"]
    assert threading.get_ident() not in threads.values()


async def test_waiters_are_served_in_order_while_a_reload_runs(tmp_path: Path) -> None:
    path = write(tmp_path / "tokens.txt", OLD[:1])
    pool = TokenPool.from_file(path, limits=Limit(1, per=1000.0))
    async with pool:
        first = await pool.acquire()  # the only token is spent for 1000 s
        reloading = False
        served: list[tuple[int, bool]] = []

        async def wait(n: int) -> None:
            lease = await pool.acquire()
            served.append((n, reloading))
            lease.release()

        waiters = [asyncio.create_task(wait(n)) for n in range(20)]
        await asyncio.sleep(0)
        write(path, OLD[:1] + NEW)
        reloading = True
        await pool.reload()
        reloading = False
        await asyncio.gather(*waiters)
        first.release()
    assert [n for n, _ in served] == list(range(20))
    assert all(during for _, during in served)  # served by the first tokens that joined


async def test_a_change_of_the_set_during_a_reload_is_overtaken_by_the_file(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "tokens.txt", OLD)
    pool = TokenPool.from_file(path, limits=ROOMY)
    sched = core_of(pool).sched
    async with pool:
        write(path, NEW)
        reload = asyncio.create_task(pool.reload())
        while len(sched.slots) == len(OLD):  # until the first slices joined  # noqa: ASYNC110
            await asyncio.sleep(0)
        assert not reload.done()
        pool.replace_tokens(OLD[:3])
        result = await reload
        live = sorted(v for v, s in sched.slots.items() if not s.removed)
    assert live == sorted(NEW)
    assert len(result.added) == len(NEW)


async def test_tokens_joining_in_a_reload_are_masked_from_the_first_slice(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "tokens.txt", OLD)
    pool = TokenPool.from_file(path, limits=ROOMY)
    core = core_of(pool)
    leaks: list[str] = []
    async with pool:
        watch = Watch(pool)

        async def check() -> None:
            while watch.running:
                for value in list(core.sched.slots)[len(OLD) :][-3:]:
                    if value[4:16] in core.redact(f"echo {value[4:16]}"):
                        leaks.append(value)
                await asyncio.sleep(0)

        task = asyncio.create_task(check())
        write(path, OLD + NEW)
        await pool.reload()
        watch.running = False
        await task
    assert leaks == []


async def test_a_short_token_joining_in_a_reload_is_masked(tmp_path: Path) -> None:
    path = write(tmp_path / "tokens.txt", OLD[:5])
    pool = TokenPool.from_file(path)
    async with pool:
        write(path, [*OLD[:5], "sk-7Qz"])
        await pool.reload()
        assert "sk-7Qz" not in core_of(pool).redact("key sk-7Qz refused")
