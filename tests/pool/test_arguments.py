"""``TokenPool`` arguments that used to fail late or wrongly, and a pool left open (issue 12)."""

from __future__ import annotations

import gc
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import pytest

from aurora_async import TokenPool

from ..http.support import A, ok, serve

NO_TOKENS = (
    "TokenPool got no tokens: pass a list of at least one token, TokenPool(['tok-...']), "
    "or read them from a file, TokenPool.from_file(path, watch=True)"
)


@pytest.mark.parametrize("tokens", [[], (), iter([]), {}], ids=["list", "tuple", "iter", "dict"])
def test_an_empty_token_list_is_refused_at_once(tokens: list[str]) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(NO_TOKENS)}$"):
        TokenPool(tokens)


def test_one_string_is_refused_not_split_into_characters() -> None:
    refused = (
        "tokens must be a list of tokens, not one string (which would make a token of each "
        "character): TokenPool([token]), or TokenPool.from_file(path)"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(refused)}$"):
        TokenPool(A)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=f"^{re.escape(refused)}$"):
        TokenPool(A.encode())  # type: ignore[arg-type]


@contextmanager
def _pool_warnings() -> Iterator[list[str]]:
    """The texts of the ResourceWarnings TokenPool gives in the block, which ends by
    collecting garbage (aiohttp's own, for the session it cannot name, are left out)."""
    texts: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield texts
        for _ in range(5):  # a warning's source (the pool, its session) lives while recorded
            gc.collect()
            texts.extend(
                str(w.message)
                for w in caught
                if issubclass(w.category, ResourceWarning) and "TokenPool" in str(w.message)
            )
            if not caught:
                break
            caught.clear()


async def test_a_pool_left_open_with_its_session_says_how_to_close_it() -> None:
    with _pool_warnings() as texts:
        async with serve(ok) as url:
            pool = TokenPool([A])
            resp = await pool.get(url)
            assert resp.status == 200
            text = repr(pool)
            del pool, resp
    assert texts == [
        f"unclosed {text} with an open HTTP session: close the pool when done, "
        "'async with pool:' or 'await pool.aclose()', or its connections stay open"
    ]
    assert text == "<TokenPool unopened tokens=1 usable=1 waiting=0>"


async def test_a_closed_pool_or_one_without_a_session_of_its_own_says_nothing() -> None:
    with _pool_warnings() as texts:
        async with serve(ok) as url:
            closed = TokenPool([A])
            async with closed:
                assert (await closed.get(url)).status == 200
            unused = TokenPool([A])
            async with aiohttp.ClientSession() as session:
                borrowing = TokenPool([A], session=session)
                assert (await borrowing.get(url)).status == 200
            del closed, unused, borrowing
    assert texts == []
