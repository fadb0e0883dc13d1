"""``aurora_async.usage``: the usage readers on real-shaped bodies, and ``StreamUsage`` on
streams split at every byte, garbled, cut short or hostile."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aurora_async import usage
from aurora_async.usage import MAX_LINE, StreamUsage

# --- bodies -----------------------------------------------------------------------------

CHAT = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1677858242,
    "model": "gpt-4o-mini",
    "usage": {
        "prompt_tokens": 13,
        "completion_tokens": 7,
        "total_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
    "choices": [
        {
            "message": {"role": "assistant", "content": "\n\nThis is a test!"},
            "logprobs": None,
            "finish_reason": "stop",
            "index": 0,
        }
    ],
}

RESPONSES = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "status": "completed",
    "usage": {
        "input_tokens": 36,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 87,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 123,
    },
}

MESSAGE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-20250514",
    "content": [{"type": "text", "text": "Hi! My name is Claude."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 2095,
        "output_tokens": 503,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 1800,
    },
}


def test_openai_chat_completions() -> None:
    assert usage.openai(CHAT) == {"tokens": 20, "input_tokens": 13, "output_tokens": 7}


def test_openai_responses_api() -> None:
    assert usage.openai(RESPONSES) == {"tokens": 123, "input_tokens": 36, "output_tokens": 87}


def test_openai_embeddings_and_a_missing_total() -> None:
    embedding = {"object": "list", "usage": {"prompt_tokens": 8, "total_tokens": 8}}
    assert usage.openai(embedding) == {"tokens": 8, "input_tokens": 8}
    no_total = {"usage": {"prompt_tokens": 8, "completion_tokens": 2}}
    assert usage.openai(no_total) == {"tokens": 10, "input_tokens": 8, "output_tokens": 2}


def test_anthropic_counts_cache_writes_and_not_cache_reads() -> None:
    assert usage.anthropic(MESSAGE) == {
        "tokens": 2698,
        "input_tokens": 2195,
        "output_tokens": 503,
    }
    assert usage.anthropic(MESSAGE, cache_reads=True) == {
        "tokens": 4498,
        "input_tokens": 3995,
        "output_tokens": 503,
    }


def test_anthropic_without_cache_fields_or_with_nulls() -> None:
    plain = {"usage": {"input_tokens": 10, "output_tokens": 5}}
    assert usage.anthropic(plain) == {"tokens": 15, "input_tokens": 10, "output_tokens": 5}
    nulls = {"usage": {**plain["usage"], "cache_creation_input_tokens": None}}
    assert usage.anthropic(nulls) == usage.anthropic(plain)


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ({"prompt_tokens": "13", "completion_tokens": 7}, {"output_tokens": 7}),
        ({"prompt_tokens": True, "total_tokens": 5}, {"tokens": 5}),
        ({"prompt_tokens": -1, "completion_tokens": 2.5}, {"output_tokens": 2.5}),
        ({"total_tokens": float("nan")}, {}),
        ({"total_tokens": 1e300}, {}),
        ({}, {}),
    ],
)
def test_openai_garbled_fields_leave_their_units_out(
    report: dict[str, Any], expected: dict[str, float]
) -> None:
    assert usage.openai({"usage": report}) == expected


@pytest.mark.parametrize("body", [{}, {"usage": None}, {"usage": [1, 2]}, [], None, "usage", 3])
def test_bodies_without_a_usage(body: Any) -> None:
    assert usage.openai(body) == {}
    assert usage.anthropic(body) == {}


def test_anthropic_garbled_cache_field_leaves_input_unknown() -> None:
    report = {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": "lots"}
    assert usage.anthropic({"usage": report}) == {"output_tokens": 5}
    assert usage.anthropic({"usage": {"output_tokens": 5}}) == {"output_tokens": 5}


def test_from_header() -> None:
    headers = {"X-Usage-Tokens": "1234", "Other": "x"}
    assert usage.from_header(headers, "x-usage-tokens") == {"tokens": 1234}
    assert usage.from_header(headers, "X-USAGE-TOKENS", unit="points") == {"points": 1234}
    for bad in ("-1", "12abc", "", "1" * 40, "1e3"):
        assert usage.from_header({"x-usage-tokens": bad}, "x-usage-tokens") == {}
    assert usage.from_header({}, "x-usage-tokens") == {}


# --- streams ----------------------------------------------------------------------------


def sse(*events: dict[str, Any] | str, names: bool = False, newline: str = "\n") -> bytes:
    """Server-sent events: each a ``data:`` line (with Anthropic's ``event:`` line first
    when ``names``) and a blank line."""
    out = []
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        if names and isinstance(event, dict):
            out.append(f"event: {event['type']}{newline}")
        out.append(f"data: {data}{newline}{newline}")
    return "".join(out).encode()


def openai_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


OPENAI_USAGE = {"prompt_tokens": 17, "completion_tokens": 4, "total_tokens": 21}
OPENAI_STREAM = sse(
    openai_chunk({"role": "assistant", "content": ""}, usage=None),
    openai_chunk({"content": "Hé"}, usage=None),  # a two-byte character to split
    openai_chunk({"content": "llo!"}, usage=None),
    openai_chunk({}, "stop", usage=None),
    {**openai_chunk({}), "choices": [], "usage": OPENAI_USAGE},
    "[DONE]",
)
OPENAI_EXPECTED = {"tokens": 21, "input_tokens": 17, "output_tokens": 4}

ANTHROPIC_STREAM = sse(
    {
        "type": "message_start",
        "message": {
            "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-sonnet-4-20250514",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": 1, "cache_creation_input_tokens": 5},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hé"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 15},
    },
    {"type": "message_stop"},
    names=True,
)
ANTHROPIC_EXPECTED = {"tokens": 45, "input_tokens": 30, "output_tokens": 15}


def read(stream: bytes, kind: str, cuts: list[int]) -> StreamUsage:
    counter = StreamUsage(kind)  # type: ignore[arg-type]
    start = 0
    for cut in [*cuts, len(stream)]:
        counter.feed(stream[start:cut])
        start = cut
    counter.end()
    return counter


@pytest.mark.parametrize(
    ("stream", "kind", "expected"),
    [
        (OPENAI_STREAM, "openai", OPENAI_EXPECTED),
        (OPENAI_STREAM.replace(b"\n", b"\r\n"), "openai", OPENAI_EXPECTED),
        (OPENAI_STREAM.replace(b"\n", b"\r"), "openai", OPENAI_EXPECTED),
        (ANTHROPIC_STREAM, "anthropic", ANTHROPIC_EXPECTED),
        (ANTHROPIC_STREAM.replace(b"\n", b"\r\n"), "anthropic", ANTHROPIC_EXPECTED),
    ],
    ids=["openai", "openai-crlf", "openai-cr", "anthropic", "anthropic-crlf"],
)
def test_streams_split_at_every_byte(stream: bytes, kind: str, expected: dict[str, int]) -> None:
    for cut in range(len(stream) + 1):
        counter = read(stream, kind, [cut])
        assert (counter.usage, counter.done) == (expected, True), cut
    byte_by_byte = read(stream, kind, list(range(1, len(stream))))
    assert (byte_by_byte.usage, byte_by_byte.done) == (expected, True)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(ANTHROPIC_STREAM)), max_size=20), st.booleans())
def test_streams_split_anywhere(cuts: list[int], anthropic: bool) -> None:
    stream = ANTHROPIC_STREAM if anthropic else OPENAI_STREAM
    counter = read(stream, "anthropic" if anthropic else "openai", sorted(cuts))
    assert counter.usage == (ANTHROPIC_EXPECTED if anthropic else OPENAI_EXPECTED)


def test_usage_is_none_until_the_stream_says_it() -> None:
    counter = StreamUsage("openai")
    head, tail = OPENAI_STREAM.split(b'"choices": [], ', 1)
    counter.feed(head)
    assert (counter.usage, counter.done) == (None, False)
    counter.feed(b'"choices": [], ' + tail)
    assert (counter.usage, counter.done) == (OPENAI_EXPECTED, True)

    anthropic = StreamUsage("anthropic")
    start, rest = ANTHROPIC_STREAM.split(b"event: message_delta", 1)
    anthropic.feed(start)
    assert anthropic.usage is None  # message_start's output_tokens: 1 is a placeholder
    anthropic.feed(b"event: message_delta" + rest)
    assert anthropic.usage == ANTHROPIC_EXPECTED


def test_a_stream_that_did_not_ask_for_usage() -> None:
    counter = read(sse(openai_chunk({"content": "hi"}), "[DONE]"), "openai", [])
    assert (counter.usage, counter.done) == (None, True)


def test_the_last_event_without_a_blank_line_is_read_at_the_end() -> None:
    counter = StreamUsage("openai")
    counter.feed(b'data: {"usage": {"total_tokens": 9}}')
    assert counter.usage is None
    counter.end()
    assert counter.usage == {"tokens": 9}


def test_a_garbled_usage_event_gives_an_empty_usage() -> None:
    counter = read(sse('{"choices": [], "usage": {"total_tok', "[DONE]"), "openai", [])
    assert (counter.usage, counter.done) == ({}, True)
    anthropic = read(
        sse('{"type": "message_start", "message": {"usage": {"input_tokens": 3}}}')
        + sse('{"type": "message_delta", "usage": {"output_tok')
        + sse({"type": "message_stop"}),
        "anthropic",
        [],
    )
    assert (anthropic.usage, anthropic.done) == ({}, True)


def test_newer_anthropic_deltas_repeat_the_input_fields() -> None:
    stream = sse(
        {"type": "message_start", "message": {"usage": {"input_tokens": 3, "output_tokens": 1}}},
        {
            "type": "message_delta",
            "usage": {"input_tokens": 3, "output_tokens": 40, "cache_read_input_tokens": None},
        },
        {"type": "message_delta", "usage": {"output_tokens": 50}},
    )
    counter = read(stream, "anthropic", [])
    expected = {"tokens": 53, "input_tokens": 3, "output_tokens": 50}
    assert (counter.usage, counter.done) == (expected, False)


def test_responses_api_stream() -> None:
    completed = {"type": "response.completed", "response": RESPONSES}
    counter = read(sse({"type": "response.created"}, completed), "openai", [])
    assert counter.usage == {"tokens": 123, "input_tokens": 36, "output_tokens": 87}


def test_comments_other_fields_and_multi_line_data() -> None:
    stream = (
        b": keep-alive\n"
        b"id: 7\nretry: 100\nevent: chunk\n"
        b'data: {"choices": [],\ndata: "usage": {"total_tokens": 4}}\n\n'
        b"data:[DONE]\n\n"
    )
    counter = read(stream, "openai", [])
    assert (counter.usage, counter.done) == ({"tokens": 4}, True)


def test_an_overlong_line_is_dropped_and_the_stream_goes_on() -> None:
    huge = b"data: " + b"x" * (MAX_LINE + 10) + b"\n\n"
    for cuts in ([], [MAX_LINE // 2, MAX_LINE + 3], list(range(4096, len(huge), 4096))):
        counter = read(huge + OPENAI_STREAM, "openai", cuts)
        assert (counter.usage, counter.done) == (OPENAI_EXPECTED, True)
    many = b"".join(b"data: " + b"y" * 1000 + b"\n" for _ in range(MAX_LINE // 1000 + 5))
    counter = read(many + b"\n" + OPENAI_STREAM, "openai", [len(many) // 2])
    assert counter.usage == OPENAI_EXPECTED


def test_stream_usage_checks_its_kind_and_shows_itself() -> None:
    with pytest.raises(ValueError, match="'openai' or 'anthropic'"):
        StreamUsage("gemini")  # type: ignore[arg-type]
    counter = read(OPENAI_STREAM, "openai", [])
    assert repr(counter) == (
        "<StreamUsage openai usage={'tokens': 21.0, 'input_tokens': 17.0, "
        "'output_tokens': 4.0} done=True>"
    )


def test_a_crlf_split_between_its_two_bytes_ends_one_line_only() -> None:
    stream = (
        b'data: {"choices": [],\r\ndata: "usage": {"total_tokens": 4}}\r\n\r\ndata: [DONE]\r\n\r\n'
    )
    for cut in range(len(stream) + 1):
        counter = read(stream, "openai", [cut])
        assert (counter.usage, counter.done) == ({"tokens": 4}, True), cut
