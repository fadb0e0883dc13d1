"""The request path builds no function per call: no lambda, closure or nested function
in the code that runs for every ``pool.request`` (a function object per call is an
allocation, and a closure cell keeps what it captured alive as long as it lives)."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import pytest

from aurora_async._core.redirect import follow_ourselves
from aurora_async._http.call import Call
from aurora_async._http.client import HttpClient
from aurora_async._pool.pool import TokenPool

PER_REQUEST: list[Callable[..., Any]] = [
    TokenPool.request,
    TokenPool.get,
    HttpClient.request,
    HttpClient._straight,
    HttpClient._attempts,
    HttpClient._run,
    HttpClient._send,
    Call.__init__,
    Call.prepare,
    follow_ourselves,
]


@pytest.mark.parametrize("function", PER_REQUEST, ids=lambda f: f.__qualname__)
def test_no_function_is_built_per_call(function: Callable[..., Any]) -> None:
    nested = [c.co_name for c in function.__code__.co_consts if isinstance(c, types.CodeType)]
    assert nested == []
    assert function.__code__.co_cellvars == ()
