"""A real nginx enforcing ``limit_req`` per token, on loopback, for benchmarks and checks.

    async with nginx_server(
        {"tok-a": NginxLimitReq(5, burst=2), "tok-b": NginxLimitReq(50, burst=5)},
        revoked=["tok-dead"],
    ) as url:
        ...  # GET {url}/anything with "Authorization: Bearer tok-a"

    python benchmarks/_nginx.py      # a self-check: a burst, then 429s, then a 401

Each tier (the tokens sharing one :class:`~aurora_async.testing.NginxLimitReq`) gets its
own ``limit_req_zone``, keyed on ``$http_authorization`` through a ``map`` that leaves the
key empty for every other token (nginx skips a zone whose key is empty), so each token
has its own node at its tier's rate, exactly what ``MockAPI``'s ``NginxLimitReq`` models.
Revoked tokens, unknown tokens and requests without a bearer token are answered ``401``
before any zone sees them. Admitted requests get ``200`` with a small JSON body from
``return 200`` in a named location reached through ``try_files``: ``return`` runs in
nginx's rewrite phase, *before* ``limit_req`` (pre-access phase), so a plain
``location / { limit_req ...; return 200; }`` would never be limited.

Everything lives in a temporary directory: config (mode 0600: it holds the tokens),
pid file, error log, temp paths; nginx runs in the foreground (``daemon off``) as a
child process, listens on a free port of 127.0.0.1 and is stopped on exit. Run as root,
its workers run as ``nobody`` (the ``user`` directive); otherwise as the current user.
A token's secret never appears in what this module prints or raises: nginx's own
messages are shown with every token replaced by its masked name.

nginx's ``map`` compares strings ignoring case, so tokens that differ only in case are
refused. Needs the ``nginx`` binary (``apt-get install nginx``); :func:`find_nginx` says
whether it is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import aiohttp

from aurora_async._core.tokens import Token, mask
from aurora_async.testing import NginxLimitReq

#: Where distributions put nginx when ``shutil.which`` does not see it (``/usr/sbin`` is
#: often not on a user's PATH).
NGINX_PATHS = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
MISSING = "nginx is not installed (apt-get install nginx)"
BODY = '{"ok":true}'
#: How long nginx may take to answer its first request, and to stop.
START_TIMEOUT = 10.0
PORT_ATTEMPTS = 3
STOP_TIMEOUT = 5.0
#: Bytes of zone per token (a node is about 100 bytes with a short key): generous.
ZONE_BYTES_PER_TOKEN = 512


def find_nginx() -> str | None:
    """The nginx binary's path, or ``None`` if it is not installed."""
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in NGINX_PATHS if os.access(path, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _quoted(text: str) -> str:
    """``text`` as an nginx quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _checked_tokens(tiers: Mapping[str, NginxLimitReq], revoked: Iterable[str]) -> list[str]:
    """Every token, validated, with no two alike but for case (nginx's map ignores case)."""
    seen: dict[str, str] = {}
    names = [*tiers, *revoked]
    for value in names:
        token = Token(value)  # no white space or control characters
        if value.lower() in seen:
            raise ValueError(
                f"nginx_server: tokens {seen[value.lower()]} and {token.name} are the same "
                "but for case, which nginx's map cannot tell apart"
            )
        seen[value.lower()] = token.name
    for value, profile in tiers.items():
        if not isinstance(profile, NginxLimitReq):
            raise TypeError(
                f"nginx_server: token {mask(value)} needs an NginxLimitReq, "
                f"not {type(profile).__name__}"
            )
    return names


def _user_directive() -> str:
    """``user nobody <its group>;`` when running as root, else nothing (nginx ignores
    ``user`` without privileges, with a warning)."""
    if os.geteuid() != 0:
        return ""
    nobody = pwd.getpwnam("nobody")
    return f"user nobody {grp.getgrgid(nobody.pw_gid).gr_name};"


def render_config(
    root: Path,
    port: int,
    tiers: Mapping[str, NginxLimitReq],
    revoked: Iterable[str] = (),
    *,
    workers: int = 1,
    connections: int = 4096,
    minute: tuple[int, int] | None = None,
) -> str:
    """The nginx.conf for ``tiers`` (token -> its ``limit_req``) and ``revoked`` tokens,
    with every path under ``root``. ``minute``: ``(rate, burst)``, every token also held
    to ``rate`` requests a minute with that burst (``nodelay``), a second, longer window."""
    revoked = list(revoked)
    _checked_tokens(tiers, revoked)
    statuses = {profile.status for profile in tiers.values()}
    if len(statuses) > 1:
        raise ValueError(
            f"nginx_server: limit_req_status is one per location; got {sorted(statuses)}"
        )
    status = statuses.pop() if statuses else 429
    groups: dict[NginxLimitReq, list[str]] = {}
    for value, profile in tiers.items():
        groups.setdefault(profile, []).append(value)

    maps, zones, limits = [], [], []
    allowed = [f"        {_quoted('Bearer ' + value)} 0;" for value in tiers]
    denied = [f"        {_quoted('Bearer ' + value)} 1;" for value in revoked]
    maps.append(
        "    map $http_authorization $aurora_deny {\n        default 1;\n"
        + "\n".join([*allowed, *denied])
        + "\n    }"
    )
    for number, (profile, values) in enumerate(groups.items()):
        key = f"$aurora_tier{number}"
        entries = "\n".join(
            f"        {_quoted('Bearer ' + v)} $http_authorization;" for v in values
        )
        maps.append(f'    map $http_authorization {key} {{\n        default "";\n{entries}\n    }}')
        size_k = max(64, (len(values) * ZONE_BYTES_PER_TOKEN + 1023) // 1024)
        zones.append(
            f"    limit_req_zone {key} zone=tier{number}:{size_k}k "
            f"rate={profile.rate}{profile.unit};"
        )
        if minute is not None:
            zones.append(
                f"    limit_req_zone {key} zone=minute{number}:{size_k}k rate={minute[0]}r/m;"
            )
            limits.append(f"            limit_req zone=minute{number} burst={minute[1]} nodelay;")
        how = (
            " nodelay" if profile.nodelay else (f" delay={profile.delay}" if profile.delay else "")
        )
        burst = f" burst={profile.burst}" if profile.burst else ""  # nginx refuses burst=0
        limits.append(f"            limit_req zone=tier{number}{burst}{how};")

    temp = "\n".join(
        f"    {kind}_temp_path {root / 'temp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# written by benchmarks/_nginx.py
{_user_directive()}
daemon off;
master_process on;
worker_processes {workers};
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;

events {{
    worker_connections {connections};
}}

http {{
    access_log off;
    server_tokens off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    default_type application/json;
{temp}

{chr(10).join(maps)}

{chr(10).join(zones)}

    server {{
        listen 127.0.0.1:{port};
        root {root / "www"};

        location = /.aurora/ready {{
            return 204;
        }}

        location / {{
            if ($aurora_deny) {{
                add_header WWW-Authenticate 'Bearer error="invalid_token"' always;
                return 401 '{{"error":"invalid_token"}}';
            }}
{chr(10).join(limits)}
            limit_req_status {status};
            try_files /.aurora-nothing @ok;
        }}

        location @ok {{
            return 200 '{BODY}';
        }}
    }}
}}
"""


def _masked(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, mask(secret))
    return text


async def _wait_ready(process: asyncio.subprocess.Process, url: str) -> bool:
    """Whether nginx answered before it exited or the start timeout passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    async with aiohttp.ClientSession() as session:
        while loop.time() < deadline and process.returncode is None:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"{url}/.aurora/ready") as resp:
                    if resp.status == 204:
                        return True
            await asyncio.sleep(0.02)
    return False


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()  # SIGTERM: the master stops its workers and exits
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()


@asynccontextmanager
async def nginx_server(
    tiers: Mapping[str, NginxLimitReq],
    revoked: Iterable[str] = (),
    *,
    workers: int = 1,
    connections: int = 4096,
    binary: str | None = None,
    minute: tuple[int, int] | None = None,
) -> AsyncIterator[str]:
    """Run nginx enforcing ``tiers`` (token -> its ``limit_req``), answering ``revoked``
    and unknown tokens with 401; yields its base URL (``http://127.0.0.1:PORT``).

    Raises ``FileNotFoundError`` if nginx is not installed, ``RuntimeError`` (with nginx's
    messages, tokens masked) if it does not start.
    """
    revoked = list(revoked)
    secrets = _checked_tokens(tiers, revoked)
    options = {"workers": workers, "connections": connections, "minute": minute}
    binary = binary or find_nginx()
    if binary is None:
        raise FileNotFoundError(MISSING)
    with tempfile.TemporaryDirectory(prefix="aurora-nginx-") as tmp:
        root = _prepare(Path(tmp))
        for attempt in range(1, PORT_ATTEMPTS + 1):  # a free port may be taken before nginx
            port = free_port()
            config = _write_config(root, render_config(root, port, tiers, revoked, **options))
            url = f"http://127.0.0.1:{port}"
            stderr = _stderr_file(root)
            with stderr:
                process = await asyncio.create_subprocess_exec(
                    *(binary, "-p", str(root), "-c", str(config), "-e", str(root / "error.log")),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=stderr,
                )
            try:
                ready = await _wait_ready(process, url)
            except BaseException:
                await _stop(process)
                raise
            if ready:
                break
            await _stop(process)
            messages = _messages(root)
            if "Address already in use" not in messages or attempt == PORT_ATTEMPTS:
                raise RuntimeError(f"nginx did not start:\n{_masked(messages, secrets)}")
        try:
            yield url
        finally:
            await _stop(process)


def _prepare(root: Path) -> Path:
    root.chmod(0o711)  # workers (nobody, when run as root) traverse it; nothing is listable
    (root / "www").mkdir()
    (root / "temp").mkdir()
    return root


def _write_config(root: Path, text: str) -> Path:
    config = root / "nginx.conf"
    config.touch(mode=0o600)  # it holds the tokens
    config.write_text(text)
    return config


def _stderr_file(root: Path) -> BinaryIO:
    return (root / "stderr.log").open("wb")


def _messages(root: Path) -> str:
    """What nginx said on stderr and in its error log."""
    paths = (root / "stderr.log", root / "error.log")
    return "\n".join(path.read_text(errors="replace") for path in paths if path.exists())


# -- self-check ------------------------------------------------------------------------------


async def _self_check() -> int:
    """A burst then 429s per tier, the delays of a tier without ``nodelay``, and 401s;
    the figures expected are what ``MockAPI``'s ``NginxLimitReq`` computes."""
    if find_nginx() is None:
        print(MISSING)
        return 1
    slow, fast = "sk-selfcheck-slow-0001", "sk-selfcheck-fast-0002"
    held, dead = "sk-selfcheck-held-0003", "sk-selfcheck-dead-0004"
    tiers = {
        slow: NginxLimitReq(5, burst=2),
        fast: NginxLimitReq(50, burst=5),
        held: NginxLimitReq(5, burst=3, nodelay=False),
    }

    async with nginx_server(tiers, revoked=[dead]) as url, aiohttp.ClientSession() as session:

        async def get(token: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(f"{url}/items/1", headers=headers) as resp:
                await resp.read()
                return resp.status

        async def timed(token: str) -> tuple[int, float]:
            start = time.monotonic()
            status = await get(token)
            return status, round(time.monotonic() - start, 1)

        print(f"nginx at {url}")
        await get(dead)  # open a connection before the timed bursts
        burst = [await get(slow) for _ in range(6)]
        print(f"5r/s burst=2 nodelay, 6 at once:   {burst}  (expected 3 x 200, then 429)")
        fast_burst = [await get(fast) for _ in range(8)]
        print(f"50r/s burst=5 nodelay, 8 at once:  {fast_burst}  (expected 6 x 200, then 429)")
        await asyncio.sleep(0.25)
        later = [await get(slow) for _ in range(2)]
        print(f"5r/s burst=2, 250 ms later, 2:     {later}  (expected 200, 429)")
        delays = sorted(await asyncio.gather(*(timed(held) for _ in range(5))))
        print(f"5r/s burst=3, 5 at once (s):       {delays}")
        print("                                   (expected 200 after 0, 0.2, 0.4, 0.6 s; a 429)")
        refused = [await get(dead), await get("sk-selfcheck-unknown-9999")]
        print(f"revoked, unknown:                  {refused}  (expected 401, 401)")
    good = (
        burst == [200] * 3 + [429] * 3
        and fast_burst == [200] * 6 + [429] * 2
        and later == [200, 429]
        and delays == [(200, 0.0), (200, 0.2), (200, 0.4), (200, 0.6), (429, 0.0)]
        and refused == [401, 401]
    )
    print("self-check:", "ok" if good else "UNEXPECTED (a busy machine may shift a timing)")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(_self_check()))
