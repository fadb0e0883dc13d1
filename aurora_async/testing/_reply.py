"""How the mock server sends an answer it has decided: JSON, an HTML page, or a stream,
after the time the limit (or the latency) holds it back; and how it reads a request's
body for a profile that needs it."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from ._profile import Call, Stream

#: The most of a request body a request-aware profile is given (bytes); a bigger body
#: reaches it as ``Call.body = None``.
MAX_CALL_BODY: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """A response decided: status, JSON body (or an HTML page), headers, how long the
    limit holds it back, and a streamed body that replaces the JSON one."""

    status: int
    body: dict[str, Any] | str
    headers: dict[str, str]
    held: float = 0.0
    stream: Stream | None = None


async def wait(seconds: float, closing: asyncio.Event) -> None:
    """Like ``asyncio.sleep(seconds)``, but over at once when ``closing`` is set."""
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await closing.wait()


async def read_call(request: web.Request) -> Call:
    """The request as a request-aware profile sees it (its body read up to
    :data:`MAX_CALL_BODY` bytes, the rest drained and dropped)."""
    body: bytes | None = b""
    if request.body_exists:
        parts: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size <= MAX_CALL_BODY:
                parts.append(chunk)
        body = b"".join(parts) if size <= MAX_CALL_BODY else None
    return Call(request.method, request.path, request.headers, body)


async def send(
    request: web.Request, answer: Answer, delay: float, closing: asyncio.Event
) -> web.StreamResponse:
    """Send ``answer`` after ``delay`` seconds (cut short by ``closing``)."""
    await wait(delay, closing)
    body = answer.body
    if answer.stream is not None:
        return await _stream(request, answer, answer.stream, closing)
    if isinstance(body, str):
        return web.Response(
            body=body.encode(),
            status=answer.status,
            headers=answer.headers,
            content_type="text/html",
        )
    return web.json_response(body, status=answer.status, headers=answer.headers)


async def _stream(
    request: web.Request, answer: Answer, stream: Stream, closing: asyncio.Event
) -> web.StreamResponse:
    response = web.StreamResponse(status=answer.status, headers=answer.headers)
    response.content_type = stream.content_type
    response.headers["Cache-Control"] = "no-cache"
    await response.prepare(request)
    for number, chunk in enumerate(stream.chunks):
        if number:
            await wait(stream.interval, closing)
        await response.write(chunk)
    await response.write_eof()
    return response
