"""``RedisBackend`` checks every numeric argument when it is made (issue 12): no server
is needed, since constructing a backend does not connect."""

from __future__ import annotations

import math
import re

import pytest

from aurora_async import RedisBackend

RANGE = ": pass a value in that range or leave the default"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": math.inf}, "timeout must be seconds above 0 and at most 3600, got inf"),
        ({"timeout": math.nan}, "timeout must be seconds above 0 and at most 3600, got nan"),
        ({"timeout": -math.inf}, "timeout must be seconds above 0 and at most 3600, got -inf"),
        ({"timeout": 0}, "timeout must be seconds above 0 and at most 3600, got 0"),
        ({"timeout": 1e10}, "timeout must be seconds above 0 and at most 3600, got 10000000000.0"),
        (
            {"degrade_share": math.nan},
            "degrade_share must be a share above 0 and at most 1, got nan",
        ),
        ({"degrade_share": 0.0}, "degrade_share must be a share above 0 and at most 1, got 0.0"),
        ({"degrade_share": 1.5}, "degrade_share must be a share above 0 and at most 1, got 1.5"),
        (
            {"key_ttl": math.nan},
            "key_ttl must be seconds at least 1 and at most 3.1536e+08, got nan",
        ),
        (
            {"key_ttl": math.inf},
            "key_ttl must be seconds at least 1 and at most 3.1536e+08, got inf",
        ),
        (
            {"key_ttl": 1e300},
            "key_ttl must be seconds at least 1 and at most 3.1536e+08, got 1e+300",
        ),
    ],
)
def test_numbers_out_of_range_are_refused_with_the_range(
    kwargs: dict[str, float], message: str
) -> None:
    full = f"RedisBackend {message}{RANGE}"
    with pytest.raises(ValueError, match=f"^{re.escape(full)}$"):
        RedisBackend("redis://127.0.0.1:1/0", namespace="args", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "value", "unit"),
    [
        ("timeout", "1", "seconds"),
        ("degrade_share", "0.5", "a share"),
        ("key_ttl", None, "seconds"),
        ("degrade_share", True, "a share"),
    ],
)
def test_numbers_of_the_wrong_type_are_refused(name: str, value: object, unit: str) -> None:
    full = f"RedisBackend {name} must be a number ({unit}), not {type(value).__name__}"
    with pytest.raises(ValueError, match=f"^{re.escape(full)}$"):
        RedisBackend("redis://127.0.0.1:1/0", namespace="args", **{name: value})  # type: ignore[arg-type]


async def test_the_ends_of_each_range_are_accepted() -> None:
    backend = RedisBackend(
        "redis://127.0.0.1:1/0", namespace="args", timeout=3600, degrade_share=1, key_ttl=1
    )
    try:
        assert backend.namespace == "args"
    finally:
        await backend.aclose()
