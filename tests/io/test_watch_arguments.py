"""A ``poll_interval`` that would end or stall the token-file watcher without a word is
refused where it is given (issue 12): ``from_file``, ``pool.watch`` and the watcher."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from aurora_async import Limit, TokenPool
from aurora_async._io.watch import FileWatcher

TOKEN = "tok-watch-args-aaaaaaaa"


def _refused(value: object) -> str:
    return f"^{re.escape(f'poll_interval must be positive, finite seconds, got {value!r}')}"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    file = tmp_path / "tokens.txt"
    file.write_text(f"{TOKEN}\n")
    return file


async def _nothing() -> None:
    return None


BAD = [math.nan, math.inf, -math.inf, 0, -1.0]


@pytest.mark.parametrize("value", BAD)
def test_from_file_refuses_the_interval_before_reading_the_file(
    tmp_path: Path, value: float
) -> None:
    message = f"{_refused(value)} \\(the default is 2\\)$"
    with pytest.raises(ValueError, match=message):
        TokenPool.from_file(tmp_path / "absent.txt", watch=True, poll_interval=value)


@pytest.mark.parametrize("value", BAD)
def test_watch_refuses_the_interval(path: Path, value: float) -> None:
    made = TokenPool.from_file(path, limits=Limit(5))
    with pytest.raises(ValueError, match=_refused(value)):
        made.watch(poll_interval=value)
    listed = TokenPool([TOKEN], limits=Limit(5))
    with pytest.raises(ValueError, match=_refused(value)):
        listed.watch(path, poll_interval=value)


@pytest.mark.parametrize("value", BAD)
def test_the_watcher_refuses_the_interval(path: Path, value: float) -> None:
    with pytest.raises(ValueError, match=_refused(value)):
        FileWatcher(path, _nothing, poll_interval=value)


@pytest.mark.parametrize(("value", "kind"), [("2", "str"), (True, "bool"), (None, "NoneType")])
def test_an_interval_that_is_not_a_number_is_a_type_error(
    path: Path, value: object, kind: str
) -> None:
    message = f"^poll_interval must be a number of seconds, not {kind}$"
    with pytest.raises(TypeError, match=message):
        TokenPool.from_file(path, watch=True, poll_interval=value)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=message):
        TokenPool([TOKEN]).watch(path, poll_interval=value)  # type: ignore[arg-type]


def test_a_good_interval_is_kept_as_seconds(path: Path) -> None:
    assert FileWatcher(path, _nothing, poll_interval=1).poll_interval == 1.0
    assert FileWatcher(path, _nothing, poll_interval=0.02).poll_interval == 0.02
