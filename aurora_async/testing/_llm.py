"""``LlmApi``: a chat-completions API limited per key in requests and tokens per minute,
the way OpenAI's API limits a key: usage in the body, the ``x-ratelimit-*`` header family,
streamed answers, and an optional token quota."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

from . import _checks as check
from ._numbers import EPSILON
from ._profile import Call, Decision, Enforcer, Profile, ServerOptions, Stream

_OWNER: Final = "LlmApi"
#: The path of the chat completions endpoint; other paths count one request, no tokens.
CHAT_PATH: Final = "/v1/chat/completions"
#: The testing hook: a request's true number of output tokens.
OUTPUT_HEADER: Final = "X-Mock-Output-Tokens"
#: How the mock counts tokens: one per this many characters of text, rounded up.
CHARS_PER_TOKEN: Final = 4
_WORD: Final = "tok "  # one output token of text: CHARS_PER_TOKEN characters
_MAX_MODEL: Final = 100  # characters of a model name echoed back

ChargeMode = Literal["actual", "max_tokens"]
QuotaKind = Literal["credit", "daily"]


@dataclass(frozen=True, slots=True)
class LlmApi(Profile):
    """A key limited to ``rpm`` requests and ``tpm`` tokens per minute, answering
    ``POST /v1/chat/completions`` as OpenAI's API does.

    **Limits.** Each limit is a token bucket of its size per minute, refilled continuously
    (``rpm / 60`` requests and ``tpm / 60`` tokens a second) and full at first: OpenAI
    documents that its per-minute limits are "enforced over shorter periods", and its
    ``x-ratelimit-reset-*`` headers count the time until a limit is back to its initial
    state, which is what a continuously refilled bucket has. A request needs one request
    and its tokens in the buckets at once, or it is refused (nothing is charged). With
    ``charge="actual"`` (the default) it costs its *true* total, input plus output tokens,
    charged at admission; ``charge="max_tokens"`` charges input plus ``max_tokens``
    instead, as OpenAI's admission estimates. A request bigger than ``tpm`` never fits.

    **Requests.** The JSON body ``{"model": ..., "messages": [...], "max_tokens": N,
    "stream": bool, "stream_options": {"include_usage": true}}`` (``max_completion_tokens``
    is read too; without either, ``max_tokens`` of this profile applies). Input tokens are
    the characters of the messages' text (string contents, and the ``text`` of content
    parts) divided by 4, rounded up (:meth:`input_tokens`). Output tokens are the
    request's ``X-Mock-Output-Tokens`` header (a testing hook, for benchmarks that need
    each answer's true size; capped at ``max_tokens``), else drawn uniformly between
    ``output[0]`` and ``output[1]`` times ``max_tokens`` (at least 1) from a generator
    seeded by ``seed`` per key. An answer that reaches ``max_tokens`` finishes with
    ``"length"``, others with ``"stop"``. A body that cannot be read is answered ``400``
    with OpenAI's ``invalid_request_error`` shape (counted in ``bad_requests``, not
    charged). Any other path counts one request and no tokens, and gets the server's
    usual answer.

    **Answers.** ``200`` with a ``chat.completion`` whose text is ``"tok "`` per output
    token and whose ``usage`` is ``prompt_tokens``, ``completion_tokens`` and
    ``total_tokens``; with ``"stream": true``, server-sent events: a role chunk,
    ``stream_chunks`` content chunks, a finish chunk, the usage chunk (only with
    ``stream_options.include_usage``) and ``data: [DONE]``, written ``stream_interval``
    seconds apart. Refusals are ``429`` with ``{"error": {"code": "rate_limit_exceeded",
    "type": "requests"|"tokens", ...}}``, ``retry-after`` (whole seconds, rounded up) and
    ``retry-after-ms``. Every answer carries ``x-ratelimit-limit-requests``,
    ``x-ratelimit-limit-tokens``, ``x-ratelimit-remaining-requests`` and
    ``x-ratelimit-remaining-tokens`` (whole units left, after this request) and
    ``x-ratelimit-reset-requests``/``-tokens`` (the time until the bucket is full again,
    as Go durations like ``6m0s``, ``1.5s`` or ``20ms``, rounded up to the millisecond).

    **Quota.** With ``quota_tokens``, a key may spend that many tokens per
    ``quota_window`` seconds (one day by default; the window opens at the key's first
    request after the last one ended, on the loop clock). Once the spend reaches it,
    every request is answered ``429`` with OpenAI's ``insufficient_quota`` error, which
    states no reset, until the window ends (a request that starts under the quota is
    served whole, as billing works). With ``quota_kind="daily"`` the refusal is OpenAI's
    per-day limit instead: ``rate_limit_exceeded`` whose message names the tokens per day
    (TPD) and says when to try again (the window's end, as a Go duration), with
    ``retry-after`` and ``retry-after-ms`` saying the same.
    """

    rpm: int
    tpm: int
    charge: ChargeMode = "actual"
    output: tuple[float, float] = (0.25, 1.0)
    max_tokens: int = 256
    quota_tokens: int | None = None
    quota_window: float = 86400.0
    quota_kind: QuotaKind = "credit"
    stream_chunks: int = 4
    stream_interval: float = 0.0
    seed: int | None = 0

    reads_body: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check.whole(_OWNER, "rpm", self.rpm, 1)
        check.whole(_OWNER, "tpm", self.tpm, 1)
        check.choice(_OWNER, "charge", self.charge, ("actual", "max_tokens"))
        low, high = self.output
        if not (0 < low <= high <= 1):
            raise ValueError(
                f"{_OWNER} output must be shares 0 < low <= high <= 1, got {self.output!r}"
            )
        check.whole(_OWNER, "max_tokens", self.max_tokens, 1)
        if self.quota_tokens is not None:
            check.whole(_OWNER, "quota_tokens", self.quota_tokens, 1)
        check.choice(_OWNER, "quota_kind", self.quota_kind, ("credit", "daily"))
        window = check.seconds(_OWNER, "quota_window", self.quota_window)
        object.__setattr__(self, "quota_window", window)
        check.whole(_OWNER, "stream_chunks", self.stream_chunks, 1)
        if not (math.isfinite(self.stream_interval) and self.stream_interval >= 0):
            raise ValueError(f"{_OWNER} stream_interval must be seconds >= 0")

    def _enforcer(self, options: ServerOptions) -> Enforcer:
        return _LlmEnforcer(self)

    @staticmethod
    def input_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
        """The input tokens the mock counts for ``messages``: their text's characters
        divided by 4, rounded up (what a benchmark can estimate exactly)."""
        chars = 0
        for message in messages:
            content = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, list):
                for part in content:
                    text = part.get("text") if isinstance(part, Mapping) else None
                    chars += len(text) if isinstance(text, str) else 0
        return math.ceil(chars / CHARS_PER_TOKEN)


def go_duration(seconds: float) -> str:
    """``seconds`` rounded up to the millisecond, written as OpenAI writes its resets:
    ``"0s"``, ``"20ms"``, ``"1.5s"``, ``"59.999s"``, ``"6m0s"``, ``"1h2m3.5s"``."""
    millis = max(0, math.ceil(seconds * 1000 - EPSILON * 1000))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    minutes, rest = divmod(millis, 60_000)
    hours, minutes = divmod(minutes, 60)
    text = str(rest // 1000)
    if rest % 1000:
        text += f".{rest % 1000:03d}".rstrip("0")
    text += "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


class _Refill:
    """A bucket of ``capacity`` units refilled continuously at ``capacity`` a minute."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.rate = capacity / 60.0
        self.level = float(capacity)
        self.stamp = -math.inf  # the loop time ``level`` is for

    def available(self, now: float) -> float:
        if now <= self.stamp:
            return self.level
        return min(float(self.capacity), self.level + (now - self.stamp) * self.rate)

    def fits(self, now: float, amount: float) -> bool:
        return amount <= self.capacity and self.available(now) >= amount - EPSILON

    def take(self, now: float, amount: float) -> None:
        self.level = self.available(now) - amount
        self.stamp = max(now, self.stamp)

    def wait(self, now: float, amount: float) -> float:
        """Seconds until ``amount`` fits (``amount`` at most the capacity)."""
        return max(0.0, (amount - self.available(now)) / self.rate)

    def remaining(self, now: float) -> int:
        return max(0, math.floor(self.available(now) + EPSILON))

    def full_after(self, now: float) -> float:
        return max(0.0, (self.capacity - self.available(now)) / self.rate)


@dataclass(frozen=True, slots=True)
class _Chat:
    """A chat completion request, read."""

    model: str
    input_tokens: int
    output_tokens: int
    max_tokens: int
    stream: bool
    include_usage: bool


class _BadRequest(Exception):
    """A request the API cannot read: the message (fixed text) and the parameter."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class _LlmEnforcer(Enforcer):
    __slots__ = ("profile", "quota_spent", "quota_start", "requests", "rng", "served", "tokens")

    def __init__(self, profile: LlmApi) -> None:
        self.profile = profile
        self.requests = _Refill(profile.rpm)
        self.tokens = _Refill(profile.tpm)
        self.quota_start = -math.inf
        self.quota_spent = 0
        self.rng = random.Random(None if profile.seed is None else f"llm:{profile.seed}")
        self.served = 0

    def decide(self, now: float, wall: float) -> Decision:
        return self._admit(now, wall, None)

    def decide_call(self, call: Call, now: float, wall: float) -> Decision:
        if call.method != "POST" or call.path != CHAT_PATH:
            return self._admit(now, wall, None)
        try:
            chat = self._read(call)
        except _BadRequest as problem:
            error = _error(str(problem), "invalid_request_error", None, problem.param)
            return Decision(False, 400, self._headers(now), body=error, bad_request=True)
        return self._admit(now, wall, chat)

    def exhausted(self, now: float, until: float, wall: float) -> Decision:
        wait = until - now
        headers = self._headers(now)
        headers.update(
            {
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-requests": go_duration(wait),
                "x-ratelimit-reset-tokens": go_duration(wait),
            }
        )
        message = f"Rate limit reached for requests. Please try again in {go_duration(wait)}."
        return self._refusal(headers, wait, _error(message, "requests", "rate_limit_exceeded"))

    # -- deciding ------------------------------------------------------------------------

    def _admit(self, now: float, wall: float, chat: _Chat | None) -> Decision:
        profile = self.profile
        cost = 0 if chat is None else self._cost(chat)
        if self._quota_spent(now):
            return self._quota_refusal(now, cost, chat)
        if not (self.requests.fits(now, 1) and self.tokens.fits(now, cost)):
            return self._rate_limited(now, cost, chat)
        self.requests.take(now, 1)
        self.tokens.take(now, cost)
        self.quota_spent += cost
        headers = self._headers(now)
        if chat is None:
            return Decision(True, headers=headers)
        self.served += 1
        if chat.stream:
            chunks = _events(chat, self.served, wall, profile.stream_chunks)
            stream = Stream(chunks, profile.stream_interval)
            return Decision(True, headers=headers, stream=stream, tokens=cost)
        body = _completion(chat, self.served, wall)
        return Decision(True, headers=headers, body=body, tokens=cost)

    def _cost(self, chat: _Chat) -> int:
        used = chat.output_tokens if self.profile.charge == "actual" else chat.max_tokens
        return chat.input_tokens + used

    def _quota_spent(self, now: float) -> bool:
        profile = self.profile
        if profile.quota_tokens is None:
            return False
        if now >= self.quota_start + profile.quota_window - EPSILON:
            self.quota_start, self.quota_spent = now, 0
        return self.quota_spent >= profile.quota_tokens

    def _quota_refusal(self, now: float, cost: int, chat: _Chat | None) -> Decision:
        profile = self.profile
        if profile.quota_kind == "credit":
            message = "You exceeded your current quota, please check your plan and billing details."
            body = _error(message, "insufficient_quota", "insufficient_quota")
            return Decision(False, 429, self._headers(now), body=body)
        wait = self.quota_start + profile.quota_window - now
        model = "the model" if chat is None else chat.model
        message = (
            f"Rate limit reached for {model} in organization org-mock on tokens per day "
            f"(TPD): Limit {profile.quota_tokens}, Used {self.quota_spent}, Requested {cost}. "
            f"Please try again in {go_duration(wait)}."
        )
        body = _error(message, "tokens", "rate_limit_exceeded")
        return self._refusal(self._headers(now), wait, body)

    def _rate_limited(self, now: float, cost: int, chat: _Chat | None) -> Decision:
        profile = self.profile
        model = "the model" if chat is None else chat.model
        headers = self._headers(now)
        if cost > profile.tpm:
            message = (
                f"Request too large for {model} in organization org-mock on tokens per min "
                f"(TPM): Limit {profile.tpm}, Requested {cost}. The input or output tokens "
                "must be reduced in order to run successfully."
            )
            body = _error(message, "tokens", "rate_limit_exceeded")
            return Decision(False, 429, headers, body=body)
        if not self.requests.fits(now, 1):
            kind, limit, bucket, requested = "requests", profile.rpm, self.requests, 1
        else:
            kind, limit, bucket, requested = "tokens", profile.tpm, self.tokens, cost
        wait = max(self.requests.wait(now, 1), self.tokens.wait(now, cost))
        unit = "RPM" if kind == "requests" else "TPM"
        message = (
            f"Rate limit reached for {model} in organization org-mock on {kind} per min "
            f"({unit}): Limit {limit}, Used {limit - bucket.remaining(now)}, Requested "
            f"{requested}. Please try again in {go_duration(wait)}."
        )
        return self._refusal(headers, wait, _error(message, kind, "rate_limit_exceeded"))

    def _refusal(self, headers: dict[str, str], wait: float, body: dict[str, Any]) -> Decision:
        headers["retry-after"] = str(max(1, math.ceil(wait - EPSILON)))
        headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000 - EPSILON * 1000)))
        return Decision(False, 429, headers, body=body)

    def _headers(self, now: float) -> dict[str, str]:
        requests, tokens = self.requests, self.tokens
        return {
            "x-ratelimit-limit-requests": str(self.profile.rpm),
            "x-ratelimit-limit-tokens": str(self.profile.tpm),
            "x-ratelimit-remaining-requests": str(requests.remaining(now)),
            "x-ratelimit-remaining-tokens": str(tokens.remaining(now)),
            "x-ratelimit-reset-requests": go_duration(requests.full_after(now)),
            "x-ratelimit-reset-tokens": go_duration(tokens.full_after(now)),
        }

    # -- reading requests --------------------------------------------------------------

    def _read(self, call: Call) -> _Chat:
        if call.body is None:
            raise _BadRequest("The request body is too large.")
        try:
            request = json.loads(call.body)
        except (ValueError, RecursionError):
            raise _BadRequest("We could not parse the JSON body of your request.") from None
        if not isinstance(request, dict):
            raise _BadRequest("The request body must be a JSON object.")
        messages = request.get("messages")
        if not (isinstance(messages, list) and messages and all(map(_is_object, messages))):
            raise _BadRequest("'messages' must be a non-empty array of objects.", "messages")
        limit = request.get("max_completion_tokens", request.get("max_tokens"))
        limit = self.profile.max_tokens if limit is None else limit
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise _BadRequest("'max_tokens' must be a positive integer.", "max_tokens")
        stream, options = request.get("stream", False), request.get("stream_options") or {}
        if not isinstance(stream, bool) or not isinstance(options, dict):
            raise _BadRequest("'stream' must be a boolean.", "stream")
        model = request.get("model", "mock-gpt")
        if not isinstance(model, str) or not 0 < len(model) <= _MAX_MODEL:
            raise _BadRequest("'model' must be a model name.", "model")
        return _Chat(
            model,
            LlmApi.input_tokens(messages),
            self._output(call, limit),
            limit,
            stream,
            options.get("include_usage") is True,
        )

    def _output(self, call: Call, limit: int) -> int:
        asked = call.headers.get(OUTPUT_HEADER)
        if asked is not None:
            if not (asked.isascii() and asked.isdigit() and len(asked) <= 9):
                raise _BadRequest(f"{OUTPUT_HEADER} must be a whole number of tokens.")
            return min(int(asked), limit)
        low, high = self.profile.output
        return max(1, min(limit, round(limit * self.rng.uniform(low, high))))


# --- answers --------------------------------------------------------------------------


def _is_object(value: object) -> bool:
    return isinstance(value, dict)


def _error(message: str, kind: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _usage(chat: _Chat) -> dict[str, int]:
    total = chat.input_tokens + chat.output_tokens
    return {
        "prompt_tokens": chat.input_tokens,
        "completion_tokens": chat.output_tokens,
        "total_tokens": total,
    }


def _finish(chat: _Chat) -> str:
    return "length" if chat.output_tokens >= chat.max_tokens else "stop"


def _completion(chat: _Chat, number: int, wall: float) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-mock-{number}",
        "object": "chat.completion",
        "created": int(wall),
        "model": chat.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _WORD * chat.output_tokens},
                "logprobs": None,
                "finish_reason": _finish(chat),
            }
        ],
        "usage": _usage(chat),
    }


def _events(chat: _Chat, number: int, wall: float, pieces: int) -> tuple[bytes, ...]:
    """The server-sent events of a streamed answer, one write each."""
    base = {
        "id": f"chatcmpl-mock-{number}",
        "object": "chat.completion.chunk",
        "created": int(wall),
        "model": chat.model,
    }
    extra: dict[str, Any] = {"usage": None} if chat.include_usage else {}

    def chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice], **extra}

    events: list[dict[str, Any] | str] = [chunk({"role": "assistant", "content": ""})]
    count, spare = divmod(chat.output_tokens, pieces)
    for piece in range(pieces):
        size = count + (piece < spare)
        if size:
            events.append(chunk({"content": _WORD * size}))
    events.append(chunk({}, _finish(chat)))
    if chat.include_usage:
        events.append({**base, "choices": [], "usage": _usage(chat)})
    events.append("[DONE]")
    return tuple(
        f"data: {event if isinstance(event, str) else json.dumps(event)}\n\n".encode()
        for event in events
    )
