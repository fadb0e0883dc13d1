"""What an answer used, read from what the API reports: for ``lease.settle(...)``.

A lease reserves its estimated cost (``pool.lease(cost={"requests": 1, "tokens": 1200})``);
after the answer, the usage the API reports settles it. These readers turn the common
shapes into the pool's units, ``"tokens"`` (input and output together),
``"input_tokens"`` and ``"output_tokens"``::

    from aurora_async import usage

    usage.openai(await response.json())     # {"tokens": 1234.0, "input_tokens": 1000.0,
                                            #  "output_tokens": 234.0}
    usage.anthropic(await response.json())

    counter = usage.StreamUsage("openai")   # a streamed answer (server-sent events)
    async for chunk in counter.chunks(response):   # each chunk fed to it as it comes
        ...
    counter.usage                           # as usage.openai, once the stream said it

``pool.stream(..., settle=counter)`` settles the stream's lease from ``counter`` when
its block ends.

What the readers promise, for any server data (they never raise on it):

- A unit is in the result only if the answer reported it as a count (a finite number
  >= 0; ``True``/``False`` are not counts). Missing or garbled fields leave their units
  out, and a body without a usable ``usage`` gives ``{}``. A unit missing from the
  result was not reported: settle it at its estimate (leave its reservation as it is).
- ``openai``: Chat Completions and Completions (``prompt_tokens``,
  ``completion_tokens``, ``total_tokens``) and the Responses API (``input_tokens``,
  ``output_tokens``, ``total_tokens``). ``"tokens"`` is ``total_tokens``, or input +
  output when no total is given. Cached prompt tokens are not subtracted: they are
  inside ``prompt_tokens`` as OpenAI reports them.
- ``anthropic``: ``input_tokens``, ``output_tokens`` and the cache fields. Anthropic
  counts ``input_tokens + cache_creation_input_tokens`` against its input-tokens-per-
  minute limit and, on current models, *not* ``cache_read_input_tokens``; so
  ``"input_tokens"`` is the sum of the first two (a missing or ``null`` cache field
  counts 0, a garbled one leaves input unknown). ``cache_reads=True`` adds the cache
  reads too, for the older models whose limits count them. ``"tokens"`` is input +
  output, only when both are known.

:class:`StreamUsage` reads the same from a stream of server-sent events.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, Literal, Protocol

__all__ = [
    "StreamUsage",
    "anthropic",
    "anthropic_response",
    "from_header",
    "openai",
    "openai_response",
]

StreamKind = Literal["openai", "anthropic"]

#: A line of a stream longer than this (bytes) is dropped unread, and so is an event
#: whose data grows past it: memory stays bounded whatever the server sends.
MAX_LINE: Final = 1024 * 1024
_MAX_COUNT: Final = 1e15  # a count above this is garbled, not usage
_LINE_END: Final = re.compile(rb"\r\n|\r|\n")
_DECIMAL: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def openai(body: Mapping[str, Any]) -> dict[str, float]:
    """The ``usage`` of an OpenAI answer (Chat Completions, Completions, Responses, or a
    stream's usage chunk) in the pool's units; ``{}`` if there is none to read."""
    report = _usage_of(body)
    input_tokens = _first_count(report, "prompt_tokens", "input_tokens")
    output_tokens = _first_count(report, "completion_tokens", "output_tokens")
    total = _count(report, "total_tokens")
    if total is None and input_tokens is not None and output_tokens is not None:
        total = input_tokens + output_tokens
    return _units(total, input_tokens, output_tokens)


def anthropic(body: Mapping[str, Any], *, cache_reads: bool = False) -> dict[str, float]:
    """The ``usage`` of an Anthropic Messages answer in the pool's units, counting input
    as Anthropic's rate limits do (see the module docs); ``{}`` if there is none."""
    report = _usage_of(body)
    input_tokens = _count(report, "input_tokens")
    cache_fields = ["cache_creation_input_tokens"]
    if cache_reads:
        cache_fields.append("cache_read_input_tokens")
    for name in cache_fields:
        extra = 0.0 if report.get(name) is None else _count(report, name)
        input_tokens = None if input_tokens is None or extra is None else input_tokens + extra
    output_tokens = _count(report, "output_tokens")
    total = None
    if input_tokens is not None and output_tokens is not None:
        total = input_tokens + output_tokens
    return _units(total, input_tokens, output_tokens)


async def openai_response(response: _Response) -> dict[str, float]:
    """:func:`openai` of an HTTP response's JSON body: the reader to give
    ``pool.request(..., settle=usage.openai_response)``. ``{}`` for a body that is not
    JSON (the reservation then stands)."""
    return openai(await _body(response))


async def anthropic_response(response: _Response) -> dict[str, float]:
    """:func:`anthropic` of an HTTP response's JSON body (``settle=`` as above)."""
    return anthropic(await _body(response))


class _Response(Protocol):
    async def json(self, *, content_type: str | None = ...) -> Any: ...


class _Content(Protocol):
    def iter_any(self) -> AsyncIterator[bytes]: ...


class _Streamed(Protocol):
    @property
    def content(self) -> _Content: ...


async def _body(response: _Response) -> Mapping[str, Any]:
    try:
        body = await response.json(content_type=None)
    except ValueError:  # not JSON (aiohttp raises a ValueError subclass)
        return {}
    return body if isinstance(body, Mapping) else {}


def from_header(headers: Mapping[str, str], name: str, unit: str = "tokens") -> dict[str, float]:
    """``{unit: value}`` from a header that states a count (such as a gateway's
    ``X-Usage-Tokens: 1234``), looked up case-insensitively; ``{}`` if it is absent or
    not a plain non-negative decimal number."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            text = value.strip()
            if len(text) <= 32 and _DECIMAL.fullmatch(text):
                number = float(text)
                return {unit: number} if number <= _MAX_COUNT else {}
            return {}
    return {}


class StreamUsage:
    """The usage of a streamed answer, read from its server-sent events as they come.

    ``kind="openai"``: the last chunk that carries a ``usage`` object (OpenAI sends one,
    just before ``data: [DONE]``, when the request set
    ``stream_options: {"include_usage": true}``; a Responses API stream's
    ``response.completed`` event carries it too). ``kind="anthropic"``:
    ``message_start``'s ``message.usage`` with ``message_delta``'s ``usage`` over it
    (output tokens, and the input fields when newer API versions repeat them there).

    :meth:`feed` takes the body's bytes in chunks split anywhere (inside a line, a
    ``\\r\\n`` or a UTF-8 character); :meth:`end` says the body is over (an event not
    closed by a blank line is then read). Nothing raises on the server's data; a line or
    an event over ``MAX_LINE`` bytes is dropped unread.

    :attr:`usage` is ``None`` until the stream has said its usage (OpenAI: a chunk with
    a ``usage`` object; Anthropic: a ``message_delta`` with ``usage``), ``{}`` when the
    event that should say it could not be read, else the dict :func:`openai` or
    :func:`anthropic` gives. :attr:`done` is whether the stream ended as it should
    (``data: [DONE]``, or Anthropic's ``message_stop``).
    """

    __slots__ = (
        "_after_cr",
        "_broken",
        "_cache_reads",
        "_data",
        "_data_size",
        "_delta",
        "_done",
        "_dropping",
        "_kind",
        "_pending",
        "_pending_size",
        "_start",
        "_usage",
    )

    def __init__(self, kind: StreamKind = "openai", *, cache_reads: bool = False) -> None:
        if kind not in ("openai", "anthropic"):
            raise ValueError(f"StreamUsage kind must be 'openai' or 'anthropic', got {kind!r}")
        self._kind: StreamKind = kind
        self._cache_reads = cache_reads
        self._pending: list[bytes] = []  # the start of a line not yet ended
        self._pending_size = 0
        self._after_cr = False  # the last chunk ended in "\r": skip a "\n" that follows
        self._dropping = False  # inside a line too long to keep
        self._data: list[str] = []  # the data lines of the event being read
        self._data_size = 0
        self._usage: dict[str, float] | None = None
        self._start: dict[str, Any] = {}
        self._delta: dict[str, Any] | None = None  # message_delta's usage, merged
        self._broken = False  # the last message_delta could not be read
        self._done = False

    def __repr__(self) -> str:
        return f"<StreamUsage {self._kind} usage={self.usage!r} done={self._done}>"

    @property
    def usage(self) -> dict[str, float] | None:
        """What the stream said it used, so far (see the class docs)."""
        if self._kind == "openai":
            return self._usage
        if self._broken:
            return {}
        if self._delta is None:
            return None
        merged = {**self._start, **self._delta}
        return anthropic({"usage": merged}, cache_reads=self._cache_reads)

    @property
    def done(self) -> bool:
        """Whether the stream has ended as it should (``[DONE]`` or ``message_stop``)."""
        return self._done

    def feed(self, chunk: bytes) -> None:
        """Read the next bytes of the body."""
        if self._after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        if not chunk:
            return
        self._after_cr = False
        start = 0
        for match in _LINE_END.finditer(chunk):
            self._end_line(chunk[start : match.start()])
            start = match.end()
        if start == len(chunk):
            self._after_cr = chunk.endswith(b"\r")
        else:
            self._keep(chunk[start:])

    async def chunks(self, response: _Streamed) -> AsyncIterator[bytes]:
        """The body of ``response`` (an ``aiohttp.ClientResponse``) as it arrives, each
        chunk fed to this reader first; :meth:`end` when the body is over. For
        ``pool.stream(..., settle=reader)``: ``async for chunk in reader.chunks(resp)``."""
        async for chunk in response.content.iter_any():
            self.feed(chunk)
            yield chunk
        self.end()

    def end(self) -> None:
        """The body is over: read what is left (a last line, an event not closed by a
        blank line). Calling it again changes nothing."""
        if self._pending and not self._dropping:
            self._line(b"".join(self._pending))
        self._pending, self._pending_size, self._dropping = [], 0, False
        self._after_cr = False
        self._dispatch()

    # -- server-sent events ------------------------------------------------------------

    def _keep(self, part: bytes) -> None:
        """Keep the start of a line not ended yet (or drop it, once it is too long)."""
        if self._dropping:
            return
        self._pending_size += len(part)
        if self._pending_size > MAX_LINE:
            self._pending, self._pending_size, self._dropping = [], 0, True
        else:
            self._pending.append(part)

    def _end_line(self, tail: bytes) -> None:
        if self._dropping:  # the end of a line too long to keep: skip it
            self._dropping = False
            return
        if self._pending:
            tail = b"".join([*self._pending, tail])
            self._pending, self._pending_size = [], 0
        self._line(tail)

    def _line(self, raw: bytes) -> None:
        if not raw:
            self._dispatch()
            return
        if not raw.startswith(b"data:"):
            return  # comments, event names, ids: nothing the usage needs
        value = raw[5:].removeprefix(b" ").decode("utf-8", errors="replace")
        self._data_size += len(value)
        if self._data_size > MAX_LINE:
            self._data, self._data_size = [], MAX_LINE + 1  # drop the event
            return
        self._data.append(value)

    def _dispatch(self) -> None:
        data, size = self._data, self._data_size
        self._data, self._data_size = [], 0
        if not data or size > MAX_LINE:
            return
        payload = "\n".join(data)
        if self._kind == "openai":
            self._openai_event(payload)
        else:
            self._anthropic_event(payload)

    def _openai_event(self, payload: str) -> None:
        if payload.strip() == "[DONE]":
            self._done = True
            return
        if '"usage"' not in payload:
            return
        event = _json_object(payload)
        if event is None:
            self._usage = {} if self._usage is None else self._usage
            return
        report = event.get("usage")
        response = event.get("response")
        if report is None and isinstance(response, Mapping):  # Responses API events
            report = response.get("usage")
        if report is not None:
            self._usage = openai({"usage": report})

    def _anthropic_event(self, payload: str) -> None:
        if "message_" not in payload:
            return  # pings, content blocks
        event = _json_object(payload)
        kind = None if event is None else event.get("type")
        if event is None or kind == "message_delta":
            report = None if event is None else event.get("usage")
            if isinstance(report, Mapping):
                fresh = {key: value for key, value in report.items() if value is not None}
                self._delta = {**(self._delta or {}), **fresh}
                self._broken = False
            elif "message_delta" in payload:
                self._broken = True  # the event that says the usage could not be read
        elif kind == "message_start":
            message = event.get("message")
            report = message.get("usage") if isinstance(message, Mapping) else None
            self._start = dict(report) if isinstance(report, Mapping) else {}
        elif kind == "message_stop":
            self._done = True


# --- counts -----------------------------------------------------------------------------


def _usage_of(body: object) -> Mapping[str, Any]:
    report = body.get("usage") if isinstance(body, Mapping) else None
    return report if isinstance(report, Mapping) else {}


def _count(report: Mapping[str, Any], name: str) -> float | None:
    value = report.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and 0 <= number <= _MAX_COUNT else None


def _first_count(report: Mapping[str, Any], *names: str) -> float | None:
    for name in names:
        if name in report:
            return _count(report, name)
    return None


def _units(
    total: float | None, input_tokens: float | None, output_tokens: float | None
) -> dict[str, float]:
    result: dict[str, float] = {}
    for unit, value in (
        ("tokens", total),
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
    ):
        if value is not None:
            result[unit] = value
    return result


def _json_object(payload: str) -> Mapping[str, Any] | None:
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, Mapping) else None
