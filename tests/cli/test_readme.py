"""The README's Python blocks: each compiles, and each runs against a local MockAPI on
virtual time (the quick start with its example URL and SDK call swapped for local ones),
printing what the README says it prints. Secrets never show: only masked names."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from aurora_async import Limit
from aurora_async.testing import MockAPI

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS: list[str] = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
RUN = "asyncio.run(main())\n"


def block(marker: str) -> str:
    """The one Python block of the README that holds ``marker``."""
    found = [text for text in BLOCKS if marker in text]
    assert len(found) == 1, marker
    return found[0]


def main_of(code: str, run: str = RUN, **names: object) -> Callable[[], Coroutine[Any, Any, None]]:
    """``code`` run as a module without its line ``run`` (``asyncio.run(main())``): its
    ``main``."""
    assert run in code
    namespace: dict[str, Any] = {"__name__": "readme", **names}
    exec(compile(code.replace(run, ""), str(README), "exec"), namespace)
    main: Callable[[], Coroutine[Any, Any, None]] = namespace["main"]
    return main


def test_every_python_block_compiles() -> None:
    assert len(BLOCKS) >= 2
    for code in BLOCKS:
        compile(code, str(README), "exec")


@pytest.mark.looptime
async def test_the_quick_start_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = ["sk-quick-0123456789abc001", "sk-quick-0123456789abc002"]
    (tmp_path / "access_tokens.txt").write_text("\n".join(secrets) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AURORA_TOKENS_FILE", raising=False)
    sent: list[str] = []

    async def call_my_sdk(api_key: str) -> int:
        sent.append(api_key)
        return 429  # the lease is reported rate-limited: that token cools

    code = block("call_my_sdk")
    async with MockAPI({s: Limit(10) for s in secrets}) as api:
        main = main_of(code.replace("https://api.example.com", api.url), call_my_sdk=call_my_sdk)
        await main()
    out = capsys.readouterr().out
    assert out.startswith("200 {'ok': True, 'token': 'sk-q…c00")
    assert len(sent) == 1
    assert sent[0] in secrets
    assert "TokenStats(name='sk-q…c001'" in out
    assert "state=<TokenState.COOLING" in out  # the token reported rate-limited
    for secret in secrets:
        assert secret not in out


@pytest.mark.looptime
async def test_the_calibration_example_prints_what_the_readme_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = block("NginxLimitReq(10, burst=3)")
    await main_of(code)()
    printed = capsys.readouterr().out.splitlines()
    said = [line.removeprefix("# ") for line in code.splitlines() if line.startswith("# ")]
    assert len(printed) == len(said) == 2
    pattern = re.compile(r"\('20/1s',\) \('([\d.]+)/1s \(burst 1\)',\) learned True")
    ours, theirs = pattern.fullmatch(printed[0]), pattern.fullmatch(said[0])
    assert ours is not None, printed
    assert theirs is not None, said
    # At or below the 10/s the server allows, give or take the calibrator's 3%.
    assert 9.0 <= float(ours[1]) <= 10.3
    assert 9.0 <= float(theirs[1]) <= 10.3
    refused = re.compile(r"(\d+) answered 429")
    ours, theirs = refused.fullmatch(printed[1]), refused.fullmatch(said[1])
    assert ours is not None, printed
    assert theirs is not None, said
    assert 1 <= int(ours[1]) <= 10
    assert 1 <= int(theirs[1]) <= 10


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not run on Windows")
def test_the_uvloop_example_runs_on_uvloop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvloop

    secrets = ["sk-uvloop-0123456789abc001", "sk-uvloop-0123456789abc002"]
    (tmp_path / "access_tokens.txt").write_text("\n".join(secrets) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AURORA_TOKENS_FILE", raising=False)
    code = block("uvloop.run(main())")
    loops: list[asyncio.AbstractEventLoop] = []

    async def run() -> None:
        loops.append(asyncio.get_running_loop())
        async with MockAPI({s: Limit(10) for s in secrets}) as api:
            local = code.replace("https://api.example.com", api.url)
            await main_of(local, run="uvloop.run(main())\n")()

    uvloop.run(run())
    assert isinstance(loops[0], uvloop.Loop)
    out = capsys.readouterr().out
    assert out.startswith("200 {'ok': True, 'token': 'sk-u…c00")
    assert out.count("\n") == 1
    for secret in secrets:
        assert secret not in out
