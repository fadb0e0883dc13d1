"""The container example, without a Docker engine: what the image runs (the entry point and
the health check command) runs here as plain processes with the same environment, and
the Dockerfile and Compose file are read for the settings that matter."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aurora_async._core.tokens import mask

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "container"
ENTRYPOINT = EXAMPLE / "entrypoint.py"
MOUNT = "/run/secrets/access_tokens.txt"

A, B, C = (f"{c * 4}-token-{i:04d}" for i, c in enumerate("abc", start=1))
SECRETS = (A, B, C)

#: Bounds on real time for the processes below (they finish in well under a second).
DEADLINE = 30.0


def env_for(tokens_file: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}
    env.update(AURORA_TOKENS_FILE=str(tokens_file), **extra)
    return env


def write_tokens(path: Path, *tokens: str) -> None:
    path.write_text("".join(f"{t}\n" for t in tokens))


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# -- the Dockerfile --------------------------------------------------------------------------


@dataclass
class Dockerfile:
    instructions: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        text = re.sub(r"\\\n", " ", path.read_text())  # join continued lines
        parsed = cls()
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                keyword, _, rest = line.partition(" ")
                parsed.instructions.append((keyword.upper(), rest.strip()))
        return parsed

    def all(self, keyword: str) -> list[str]:
        return [rest for k, rest in self.instructions if k == keyword]

    def index(self, keyword: str, needle: str = "") -> int:
        for i, (k, rest) in enumerate(self.instructions):
            if k == keyword and needle in rest:
                return i
        raise AssertionError(f"no {keyword} {needle!r} in the Dockerfile")


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile.read(EXAMPLE / "Dockerfile")


def test_the_image_is_python_312_slim(dockerfile: Dockerfile) -> None:
    assert dockerfile.all("FROM") == ["python:3.12-slim"]


def test_the_image_installs_the_cli_and_watch_extras(dockerfile: Dockerfile) -> None:
    [install] = [r for r in dockerfile.all("RUN") if "pip install" in r]
    assert '".[cli,watch]"' in install or "'.[cli,watch]'" in install


def test_the_image_runs_as_a_non_root_user(dockerfile: Dockerfile) -> None:
    users = dockerfile.all("USER")
    assert users, "no USER: the container would run as root"
    user, _, group = users[-1].partition(":")
    assert user not in {"root", "0"}
    assert group not in {"root", "0"}
    # Installed as root, run as the user: USER comes after the install, before the start.
    assert dockerfile.index("RUN", "pip install") < dockerfile.index("USER")
    assert dockerfile.index("USER") < dockerfile.index("ENTRYPOINT")
    # The user named by number exists (created in the image).
    assert any(f"--uid {user}" in r for r in dockerfile.all("RUN"))


def test_the_image_points_at_the_mounted_token_file(dockerfile: Dockerfile) -> None:
    assert f"AURORA_TOKENS_FILE={MOUNT}" in dockerfile.all("ENV")


def test_the_health_check_is_aurora_async_check(dockerfile: Dockerfile) -> None:
    [check] = dockerfile.all("HEALTHCHECK")
    options, _, command = check.partition("CMD")
    assert "--interval=" in options
    assert json.loads(command) == ["aurora-async", "check"]


def test_the_image_starts_the_entry_point_it_copies(dockerfile: Dockerfile) -> None:
    [entry] = dockerfile.all("ENTRYPOINT")
    program = json.loads(entry)
    assert program[0] == "python"
    copies = [shlex.split(c) for c in dockerfile.all("COPY")]
    assert [str(ENTRYPOINT.relative_to(ROOT)), program[1]] in copies
    for *sources, _ in copies:  # every COPY source exists in the build context (the root)
        for source in sources:
            assert (ROOT / source).exists(), source


# -- the Compose file --------------------------------------------------------------------------


def parse_yaml(text: str) -> Any:
    """Block-style YAML as Compose files use it: mappings, lists, scalars, comments.

    (The test environment has no YAML library; this reads what the example uses and
    fails loudly on anything else.)"""
    lines = []
    for raw in text.splitlines():
        stripped = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if stripped.strip():
            lines.append((len(stripped) - len(stripped.lstrip()), stripped.strip()))

    def scalar(value: str) -> Any:
        if value in {"true", "false"}:
            return value == "true"
        if value in {"", "null", "~"}:
            return None
        if value[0] in "\"'":
            assert value[-1] == value[0], value
            return value[1:-1]
        assert value[0] not in "[{&*!|>", f"unsupported YAML: {value}"
        return int(value) if value.isdigit() else value

    def block(i: int, indent: int) -> tuple[Any, int]:
        if lines[i][1].startswith("- "):
            items = []
            while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                # A list item: a scalar, or a mapping whose first key shares the line.
                inner = indent + 2
                lines[i] = (inner, lines[i][1][2:])
                if ":" in lines[i][1] and lines[i][1][0] not in "\"'":
                    value, i = mapping(i, inner)
                else:
                    value, i = scalar(lines[i][1]), i + 1
                items.append(value)
            return items, i
        return mapping(i, indent)

    def mapping(i: int, indent: int) -> tuple[dict[str, Any], int]:
        result: dict[str, Any] = {}
        while i < len(lines) and lines[i][0] == indent:
            key, sep, value = lines[i][1].partition(":")
            assert sep, f"expected `key: value`, got {lines[i][1]!r}"
            i += 1
            if value.strip():
                result[key] = scalar(value.strip())
            elif i < len(lines) and lines[i][0] > indent:
                result[key], i = block(i, lines[i][0])
            else:
                result[key] = None
        return result, i

    parsed, end = block(0, lines[0][0])
    assert end == len(lines), f"could not read line {lines[end]}"
    return parsed


def test_the_yaml_reader_reads_what_it_should() -> None:
    text = "a:\n  b: 1\n  c:\n    - x\n    - k: 'v'\n      m: true\n  d:\n# note\ne: null\n"
    assert parse_yaml(text) == {
        "a": {"b": 1, "c": ["x", {"k": "v", "m": True}], "d": None},
        "e": None,
    }


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    parsed: dict[str, Any] = parse_yaml((EXAMPLE / "compose.yaml").read_text())
    return parsed


def test_compose_mounts_the_token_file_read_only(compose: dict[str, Any]) -> None:
    [service] = compose["services"].values()
    [mount] = [v for v in service["volumes"] if v["target"] == MOUNT]
    assert mount["type"] == "bind"
    assert mount["source"] == "./access_tokens.txt"
    assert mount["read_only"] is True
    assert mount["bind"]["create_host_path"] is False  # a missing file is an error
    assert service["environment"]["AURORA_TOKENS_FILE"] == MOUNT


def test_compose_builds_the_image_from_the_repository(compose: dict[str, Any]) -> None:
    [service] = compose["services"].values()
    context = (EXAMPLE / service["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / service["build"]["dockerfile"]) == EXAMPLE / "Dockerfile"


def test_compose_keeps_state_on_a_volume_the_user_owns(
    compose: dict[str, Any], dockerfile: Dockerfile
) -> None:
    [service] = compose["services"].values()
    state = Path(service["environment"]["AURORA_STATE_FILE"])
    [volume] = [v for v in service["volumes"] if v["type"] == "volume"]
    assert volume["source"] in compose["volumes"]
    assert state.parent == Path(volume["target"])
    user = dockerfile.all("USER")[-1]
    assert any(f"chown {user} {state.parent}" in r for r in dockerfile.all("RUN"))


# -- the entry point, as a process -----------------------------------------------------------


@contextlib.asynccontextmanager
async def entrypoint(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ENTRYPOINT),
        env=env,
        cwd=EXAMPLE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def next_event(proc: asyncio.subprocess.Process, name: str) -> dict[str, Any]:
    """The next JSON line on stdout with ``"event": name`` (bounded in time)."""
    assert proc.stdout is not None
    async with asyncio.timeout(DEADLINE):
        while True:
            line = await proc.stdout.readline()
            assert line, f"the entry point ended before {name!r}"
            assert_no_secret(line.decode())
            event: dict[str, Any] = json.loads(line)
            if event["event"] == name:
                return event


async def stderr_line(proc: asyncio.subprocess.Process, needle: str) -> str:
    """The next line on stderr holding ``needle`` (bounded in time)."""
    assert proc.stderr is not None
    async with asyncio.timeout(DEADLINE):
        while True:
            line = (await proc.stderr.readline()).decode()
            assert line, f"the entry point ended before logging {needle!r}"
            assert_no_secret(line)
            if needle in line:
                return line


async def test_the_entry_point_runs_a_worker_and_stops_on_time(tmp_path: Path) -> None:
    tokens = tmp_path / "access_tokens.txt"
    write_tokens(tokens, A, B)
    env = env_for(tokens, AURORA_RUN_SECONDS="0.5", AURORA_RATE="50")
    async with entrypoint(env) as proc:
        started = await next_event(proc, "started")
        stopped = await next_event(proc, "stopped")
        async with asyncio.timeout(DEADLINE):
            assert await proc.wait() == 0
            rest = (await proc.stderr.read()).decode()  # type: ignore[union-attr]
    names = sorted(mask(t) for t in (A, B))
    assert started["tokens"] == names
    assert sorted(stopped["tokens"]) == names
    assert stopped["granted"] > 0
    assert all(t["leases"] > 0 for t in stopped["tokens"].values())
    assert_no_secret(rest)


async def test_the_entry_point_reloads_the_mounted_file_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "access_tokens.txt"
    write_tokens(tokens, A, B)
    env = env_for(tokens, AURORA_POLL_INTERVAL="0.1", AURORA_REPORT_EVERY="3600")
    async with entrypoint(env) as proc:
        await next_event(proc, "started")
        replacement = tmp_path / ".access_tokens.txt.new"
        write_tokens(replacement, A, C)
        replacement.replace(tokens)  # as an editor saves: write a new file, rename it over
        reloaded = await stderr_line(proc, "aurora.tokens.reloaded")
        assert mask(C) in reloaded
        assert mask(B) in reloaded
        proc.send_signal(signal.SIGTERM)
        stopped = await next_event(proc, "stopped")
        async with asyncio.timeout(DEADLINE):
            assert await proc.wait() == 0
    assert mask(C) in stopped["tokens"]
    assert mask(B) not in stopped["tokens"]


async def test_the_entry_point_keeps_state_across_a_restart(tmp_path: Path) -> None:
    tokens = tmp_path / "access_tokens.txt"
    write_tokens(tokens, A, B)
    state = tmp_path / "state.json"
    env = env_for(tokens, AURORA_RUN_SECONDS="0.3", AURORA_STATE_FILE=str(state))
    for _ in range(2):
        async with entrypoint(env) as proc:
            await next_event(proc, "stopped")
            async with asyncio.timeout(DEADLINE):
                assert await proc.wait() == 0
        assert json.loads(state.read_text())["tokens"]  # the windows' levels
        assert_no_secret(state.read_text())


async def test_a_missing_token_file_exits_2_saying_where_it_looked(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "access_tokens.txt"
    async with entrypoint(env_for(missing)) as proc:
        async with asyncio.timeout(DEADLINE):
            out, err = await proc.communicate()
    assert proc.returncode == 2
    message = err.decode()
    assert str(missing) in message
    assert "AURORA_TOKENS_FILE" in message
    assert "Traceback" not in message
    assert out == b""


async def test_a_bad_setting_is_named() -> None:
    env = env_for(Path("/dev/null"), AURORA_RATE="fast")
    async with entrypoint(env) as proc:
        async with asyncio.timeout(DEADLINE):
            _, err = await proc.communicate()
    assert proc.returncode == 1
    assert "AURORA_RATE must be a number, got 'fast'" in err.decode()


# -- the health check command ------------------------------------------------------------------


def aurora_async_command() -> list[str]:
    script = Path(sys.executable).parent / "aurora-async"  # the console script pip installs
    return [str(script)] if script.exists() else [sys.executable, "-m", "aurora_async"]


def health_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``aurora-async check`` as the HEALTHCHECK runs it: no arguments, the image's env."""
    return subprocess.run(
        [*aurora_async_command(), "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


@pytest.fixture(scope="module")
def cli_available() -> None:
    probe = subprocess.run(
        [*aurora_async_command(), "check", "--help"],
        capture_output=True,
        timeout=DEADLINE,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip("the aurora-async command (issue 4) is not built in this checkout yet")


@pytest.mark.usefixtures("cli_available")
def test_the_health_check_passes_on_a_valid_mounted_file(tmp_path: Path) -> None:
    tokens = tmp_path / "access_tokens.txt"
    write_tokens(tokens, A, B)
    result = health_check(env_for(tokens))
    assert result.returncode == 0, result.stderr
    assert_no_secret(result.stdout + result.stderr)


@pytest.mark.usefixtures("cli_available")
@pytest.mark.parametrize(
    "setup",
    ["missing", "empty", "bad line", "directory"],
)
def test_the_health_check_fails_on_a_broken_mount(tmp_path: Path, setup: str) -> None:
    tokens = tmp_path / "access_tokens.txt"
    if setup == "empty":
        tokens.write_text("")
    elif setup == "bad line":
        tokens.write_text(f"{A}\n{B} {C}\n")
    elif setup == "directory":  # Docker's doing when the host file did not exist
        tokens.mkdir()
    result = health_check(env_for(tokens))
    assert result.returncode != 0
    assert_no_secret(result.stdout + result.stderr)


def test_the_readme_states_the_path_rules() -> None:
    text = (EXAMPLE / "README.md").read_text()
    rules = [
        text.index(s) for s in ("An explicit path", "`AURORA_TOKENS_FILE`", "`./access_tokens.txt`")
    ]
    assert rules == sorted(rules)  # in order of precedence
    for point in ("becomes a directory", "subPath", "..data", "read-only", "10001"):
        assert point in text
