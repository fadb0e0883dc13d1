"""``read_regular``: a regular file only, at most ``limit + 1`` bytes read; and the state
file's disk work off the event loop."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from aurora_async import StateFile, TokenPool
from aurora_async._io import regular, statefile
from aurora_async._io.regular import NotRegular, TooLarge, read_regular, special_kind

A = "sk-live-aaaa-0123456789abcdef"


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert read_regular(path, limit=100) == b"x" * 100
    assert read_regular(path, limit=99) == TooLarge(str(path), 99, 100)


def test_an_empty_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    assert read_regular(path, limit=10) == b""


def test_a_file_whose_size_says_nothing_is_read_up_to_the_limit_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in /proc, where files report size 0: never more than limit + 1 bytes are read."""
    path = tmp_path / "f"
    path.write_bytes(b"y" * 5000)
    real_fstat, real_read = os.fstat, os.read
    got: list[int] = []

    def fstat_size_zero(fd: int) -> os.stat_result:
        info = real_fstat(fd)
        return os.stat_result((info.st_mode, *info[1:6], 0, *info[7:]))

    def read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        got.append(len(data))
        return data

    monkeypatch.setattr(regular.os, "fstat", fstat_size_zero)
    monkeypatch.setattr(regular.os, "read", read)
    assert read_regular(path, limit=1000) == TooLarge(str(path), 1000, None)
    assert got == [1, 1000]  # one byte (the size's guess), then up to limit + 1 in all
    got.clear()
    assert read_regular(path, limit=5000) == b"y" * 5000
    assert got == [1, 4999, 0]  # to the end of the file, which a last read confirms


def test_special_files_are_named_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert read_regular(fifo, limit=10) == NotRegular(str(fifo), "a FIFO (named pipe)")
    assert read_regular("/dev/zero", limit=10) == NotRegular("/dev/zero", "a character device")
    assert read_regular(tmp_path, limit=10) == NotRegular(str(tmp_path), "a directory")
    assert NotRegular(str(tmp_path), "a directory").is_directory
    assert special_kind(fifo) == "a FIFO (named pipe)"
    assert special_kind(tmp_path / "missing") is None
    assert special_kind(tmp_path / "missing" / "below") is None
    (tmp_path / "file").write_text("x")
    assert special_kind(tmp_path / "file") is None


def test_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing", limit=10)


# -- the state file ------------------------------------------------------------------------


async def test_load_reads_the_state_file_in_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    async with TokenPool([A]) as pool:
        await StateFile(path).save(pool)
        threads: list[threading.Thread] = []
        real = statefile.read_regular

        def spy(name: str | os.PathLike[str], *, limit: int) -> bytes | NotRegular | TooLarge:
            threads.append(threading.current_thread())
            return real(name, limit=limit)

        monkeypatch.setattr(statefile, "read_regular", spy)
        with capture_logs() as logs:
            assert await StateFile(path).load(pool) == 0  # nothing to remember was saved
        assert [e["event"] for e in logs] == ["aurora.state.loaded"]
    assert len(threads) == 1
    assert threads[0] is not threading.main_thread()


async def test_a_state_file_over_its_size_limit_is_reported_and_ignored(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"padding": "x" * 200}))
    async with TokenPool([A]) as pool:
        with capture_logs() as logs:
            assert await StateFile(path, max_bytes=100).load(pool) == 0
    [event] = logs
    assert event["event"] == "aurora.state.corrupt"
    size = path.stat().st_size
    assert event["reason"] == f"it is larger than the limit of 100 bytes ({size} bytes)"


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_the_state_file_size_limit_is_checked(bad: object) -> None:
    with pytest.raises(ValueError, match="max_bytes must be a positive int"):
        StateFile("state.json", max_bytes=bad)  # type: ignore[arg-type]


def test_load_needs_the_running_loop() -> None:
    coro = StateFile("state.json").load(TokenPool([A]))
    with pytest.raises(RuntimeError, match=r"StateFile\.load\(\) must run inside the event loop"):
        coro.send(None)
