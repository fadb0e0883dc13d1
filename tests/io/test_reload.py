"""Reloading the token file on a real file system, through the watcher.

Both ways the watcher learns of a change are tested: file-system events (watchfiles, with
polling turned down to once an hour so only events can trigger a reload) and polling
alone (every 50 ms, events off). Every wait is for a condition on the pool or on the
library's own events, bounded in time; nothing sleeps to let timing pass.

The limit guarantee across reloads runs on virtual time (looptime), where each reload
reads the real file inline so the schedule is exact.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

from aurora_async import Limit, TokenPool, TokenState
from aurora_async._core.tokens import mask

A, B, C, D, W = (f"{c * 4}-token-{i:04d}" for i, c in enumerate("abcdw", start=1))
NAME = {s: mask(s) for s in (A, B, C, D, W)}

#: Real seconds any one change may take to show (they take milliseconds).
DEADLINE = 20.0

MODES: dict[str, dict[str, Any]] = {
    "events": {"use_events": True, "poll_interval": 3600.0},
    "polling": {"use_events": False, "poll_interval": 0.05},
}


class Events:
    """A structlog processor that keeps the library's events and wakes whoever waits on
    a condition about them (or about the pool, which changes as they are logged)."""

    def __init__(self) -> None:
        self.entries: list[MutableMapping[str, Any]] = []
        self._changed = asyncio.Event()

    def __call__(self, logger: object, method: str, event: MutableMapping[str, Any]) -> Any:
        self.entries.append(event)
        self._changed.set()
        raise structlog.DropEvent

    def named(self, name: str) -> list[MutableMapping[str, Any]]:
        return [e for e in self.entries if e["event"] == name]

    async def until(
        self, condition: Callable[[], bool], what: str, timeout: float = DEADLINE
    ) -> None:
        """Wait until ``condition()`` holds, checking after every event."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"not within {timeout:g}s: {what}") from None

    async def failure(self, since: int, **fields: object) -> MutableMapping[str, Any]:
        """The first ``aurora.tokens.reload_failed`` logged after entry ``since`` whose
        fields include ``fields``."""

        def found() -> list[MutableMapping[str, Any]]:
            return [
                e
                for e in self.entries[since:]
                if e["event"] == "aurora.tokens.reload_failed"
                and all(e.get(k) == v for k, v in fields.items())
            ]

        await self.until(lambda: bool(found()), f"a rejected reload with {fields}")
        return found()[0]


@pytest.fixture
def events() -> Events:
    captured = Events()
    structlog.configure(processors=[captured])
    return captured  # conftest resets structlog afterwards


def names(pool: TokenPool) -> set[str]:
    """Masked names of the tokens in service (not removed)."""
    return {t.name for t in pool.stats().tokens if t.state is not TokenState.REMOVED}


def serving(*tokens: str) -> Callable[[TokenPool], bool]:
    wanted = {NAME[t] for t in tokens}
    return lambda pool: names(pool) == wanted


def write(path: Path, *tokens: str) -> None:
    path.write_text("".join(f"{t}\n" for t in tokens))


def assert_secret_free(entries: list[MutableMapping[str, Any]]) -> None:
    text = repr(entries)
    assert not any(secret in text for secret in (A, B, C, D, W))


async def first_change(
    pool: TokenPool, events: Events, path: Path, change: Callable[[], None], *tokens: str
) -> None:
    """Make the first change and wait for it, touching the file again until it is seen.

    The watcher starts in the background when the pool is entered; file-system events
    from before it listens are lost. Touching the file raises a new event for the same
    (still unseen) content, so this is a handshake, not a retry of what is tested."""
    change()
    for _ in range(int(DEADLINE / 0.5)):
        try:
            await events.until(lambda: serving(*tokens)(pool), "the first change", 0.5)
        except AssertionError:
            # the entry itself, in the watched directory (not a symlink's target)
            os.utime(path, follow_symlinks=False)
            continue
        return
    raise AssertionError(f"the watcher never saw the first change of {path}")


@pytest.fixture(params=sorted(MODES))
def mode(request: pytest.FixtureRequest) -> dict[str, Any]:
    settings: dict[str, Any] = MODES[request.param]
    return settings


@pytest.fixture
async def watched(
    tmp_path: Path, mode: dict[str, Any], events: Events
) -> AsyncIterator[tuple[TokenPool, Path]]:
    path = tmp_path / "access_tokens.txt"
    write(path, A, B)
    pool = TokenPool.from_file(path, limits=Limit(100))
    pool.watch(**mode)
    async with pool:
        yield pool, path


# -- every kind of edit ------------------------------------------------------------------


async def test_edits_of_every_kind_are_followed(
    watched: tuple[TokenPool, Path], events: Events, tmp_path: Path
) -> None:
    pool, path = watched

    async def expect(*tokens: str, what: str) -> None:
        await events.until(lambda: serving(*tokens)(pool), what)
        async with pool.lease(timeout=0) as lease:  # and the pool serves them
            assert lease.name in {NAME[t] for t in tokens}

    # Add a token (the first change: also proves the watcher listens).
    await first_change(pool, events, path, lambda: write(path, A, B, C), A, B, C)
    # Remove one.
    write(path, A, C)
    await expect(A, C, what="B removed")
    # Change one for another.
    write(path, A, B)
    await expect(A, B, what="C replaced by B")
    # Replace the file by rename, as editors save.
    fresh = tmp_path / ".access_tokens.txt.swp"
    write(fresh, A, B, C, D)
    fresh.replace(path)
    await expect(A, B, C, D, what="the renamed file")

    # Truncate it to empty: rejected, the last good set stays.
    mark = len(events.entries)
    path.write_text("")
    failed = await events.failure(mark)
    assert str(failed["path"]) == str(path)
    assert "empty" in failed["error"] or "no token" in failed["error"]
    assert names(pool) == {NAME[t] for t in (A, B, C, D)}

    # Garbage: rejected with an error naming the line, and no token in the log.
    mark = len(events.entries)
    path.write_text(f"{A}\n{B} {C}\n{D}\n")
    failed = await events.failure(mark, line=2)
    assert failed["kept"] == 4
    assert_secret_free(events.entries)
    assert names(pool) == {NAME[t] for t in (A, B, C, D)}

    # Delete the file: kept.
    mark = len(events.entries)
    path.unlink()
    failed = await events.failure(mark)
    assert "not found" in failed["error"]
    assert names(pool) == {NAME[t] for t in (A, B, C, D)}
    async with pool.lease(timeout=0):
        pass

    # Restore it: reloaded.
    write(path, B, C)
    await expect(B, C, what="the restored file")
    assert_secret_free(events.entries)


async def test_a_kubernetes_secret_update_swaps_the_data_link(
    tmp_path: Path, mode: dict[str, Any], events: Events
) -> None:
    """A secret volume: ``access_tokens.txt -> ..data/access_tokens.txt``, and
    ``..data -> ..2024_06_01_12_00_00.1``; the kubelet writes a new timestamped
    directory, points a temporary link at it and renames that over ``..data``."""
    volume = tmp_path / "secret"
    first = volume / "..2024_06_01_12_00_00.1"
    first.mkdir(parents=True)
    write(first / "access_tokens.txt", A, B)
    (volume / "..data").symlink_to(first.name)
    path = volume / "access_tokens.txt"
    path.symlink_to("..data/access_tokens.txt")

    def swap(version: str, *tokens: str) -> None:
        new = volume / version
        new.mkdir()
        write(new / "access_tokens.txt", *tokens)
        old = (volume / "..data").readlink()
        (volume / "..data_tmp").symlink_to(version)
        (volume / "..data_tmp").replace(volume / "..data")
        shutil.rmtree(volume / old)

    pool = TokenPool.from_file(path, limits=Limit(100))
    pool.watch(**mode)
    async with pool:
        await first_change(pool, events, path, lambda: swap("..2024_06_01_12_05_00.2", A, C), A, C)
        swap("..2024_06_01_12_10_00.3", C, D)
        await events.until(lambda: serving(C, D)(pool), "the second swap")
        # The key removed from the secret: a dangling link. Rejected, kept.
        mark = len(events.entries)
        (volume / "..data").unlink()
        failed = await events.failure(mark)
        assert "symbolic link" in failed["error"]
        assert names(pool) == {NAME[C], NAME[D]}


async def test_in_flight_leases_of_removed_tokens_complete_normally(
    tmp_path: Path, events: Events
) -> None:
    path = tmp_path / "access_tokens.txt"
    write(path, A, B)
    pool = TokenPool.from_file(path, limits=Limit(100, burst=100), trial_in_flight=None)
    pool.watch(**MODES["polling"])
    async with pool:
        held = [await pool.acquire() for _ in range(4)]  # two on each token
        on_b = [lease for lease in held if lease.name == NAME[B]]
        assert len(on_b) == 2
        write(path, A)
        await events.until(
            lambda: pool.stats().token(NAME[B]).state is TokenState.REMOVED, "B removed"
        )
        assert pool.stats().token(NAME[B]).in_flight == 2
        for _ in range(10):  # new leases go to A only
            async with pool.lease(timeout=0) as lease:
                assert lease.name == NAME[A]
        assert on_b[0].token == B  # the caller still has its token
        on_b[0].release()
        on_b[1].rate_limited(retry_after=1)  # outcomes are still accounted
        assert pool.stats().token(NAME[B]).rate_limited == 1
        on_b[1].release()
        assert NAME[B] not in {t.name for t in pool.stats().tokens}  # gone once idle
        for lease in held:
            lease.release()


async def test_closing_a_watched_pool_does_not_wait_for_the_watcher(
    tmp_path: Path, events: Events
) -> None:
    """The file-event watcher waits in a worker thread (watchfiles wakes it every 5 s
    otherwise); closing the pool must stop it at once, not wait for that."""
    path = tmp_path / "access_tokens.txt"
    write(path, A)
    pool = TokenPool.from_file(path, watch=True, poll_interval=3600)
    loop = asyncio.get_running_loop()
    async with pool:
        # Readiness, not a guess: a change seen through file events (polling is once an
        # hour) proves the watcher listens; it is back in its thread by the time we close.
        await first_change(pool, events, path, lambda: write(path, A, B), A, B)
        assert [e["added"] for e in events.named("aurora.tokens.reloaded")] == [[NAME[B]]]
        started = loop.time()
    assert loop.time() - started < 1.0


# -- never over the limit, across reloads (virtual time) -----------------------------------


def over_the_limit(grants: list[tuple[float, float]], limit: Limit) -> str | None:
    """The first interval [t_i, t_j] in which the leased cost exceeds
    ``burst + rate * (t_j - t_i) / per``, or ``None``."""
    grants = sorted(grants)
    for i, (start, _) in enumerate(grants):
        units = 0.0
        for end, cost in grants[i:]:
            units += cost
            allowed = limit.burst + limit.per_second * (end - start)
            if units > allowed + 1e-9:
                return f"{units:g} units in [{start:.6f}, {end:.6f}], at most {allowed:g}"
    return None


async def inline(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return function(*args)


@pytest.mark.looptime
@pytest.mark.parametrize(
    "gap",
    [
        2.0,  # removed, then back after its bucket could have drained
        0.1,  # removed, then back before it drained: it keeps its bucket
    ],
)
async def test_no_token_exceeds_its_limit_across_reloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gap: float
) -> None:
    monkeypatch.setattr(anyio.to_thread, "run_sync", inline)  # read the file on the loop
    limit = Limit(5, per=1.0)
    path = tmp_path / "access_tokens.txt"
    write(path, A, B, C)
    pool = TokenPool.from_file(path, limits=limit, trial_in_flight=None)
    loop = asyncio.get_running_loop()
    grants: dict[str, list[tuple[float, float]]] = defaultdict(list)
    done = False

    async def worker(cost: float) -> None:
        while not done:
            async with pool.lease(cost=cost) as lease:
                grants[lease.name].append((loop.time(), cost))
                await asyncio.sleep(0.05)

    async def reload_to(*tokens: str) -> None:
        write(path, *tokens)
        await pool.reload()

    async with pool:
        t0 = loop.time()
        workers = [asyncio.create_task(worker(1 + i % 3)) for i in range(12)]
        await asyncio.sleep(2)
        await reload_to(A, C)  # B leaves while busy
        await asyncio.sleep(gap)
        await reload_to(A, B, C)  # and comes back
        await asyncio.sleep(1.5)
        await reload_to(B, C, D)  # A leaves, D joins
        await asyncio.sleep(1.5)
        await reload_to(A, B, C, D)
        await asyncio.sleep(2)
        done = True
        await asyncio.gather(*workers)
        assert loop.time() - t0 >= 7  # virtual time, exactly as scheduled
    assert set(grants) == {NAME[t] for t in (A, B, C, D)}
    for name, times in grants.items():
        assert over_the_limit(times, limit) is None, name


async def test_sighup_reloads_the_file_while_the_pool_is_open(
    tmp_path: Path, events: Events
) -> None:
    path = tmp_path / "access_tokens.txt"
    write(path, A, B)
    pool = TokenPool.from_file(path)
    pool.reload_on_sighup()
    async with pool:
        write(path, A, C)
        os.kill(os.getpid(), signal.SIGHUP)
        await events.until(lambda: serving(A, C)(pool), "the SIGHUP reload")
    loop = asyncio.get_running_loop()
    assert not loop.remove_signal_handler(signal.SIGHUP)  # closing took the handler away


async def test_reload_and_watch_need_a_file(tmp_path: Path) -> None:
    pool = TokenPool([A])
    with pytest.raises(ValueError, match="not made from a file"):
        pool.watch()
    with pytest.raises(ValueError, match="not made from a file"):
        await pool.reload()
    with pytest.raises(ValueError, match="not made from a file"):
        pool.reload_on_sighup()
    path = tmp_path / "tokens.txt"
    write(path, A, B)
    result = await pool.reload(path)  # a pool made from a list can adopt a file
    assert (result.added, result.removed, result.kept) == ((mask(B),), (), 1)
    with pytest.raises(ValueError, match="poll_interval must be positive"):
        pool.watch(path, poll_interval=0)
