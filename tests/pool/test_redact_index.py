"""The redaction index masks every run of 8 or more characters of a known secret, exactly:
compared with a brute-force reference on random texts and secrets (small alphabets and
shared prefixes, where most pieces of a secret are shared by many others), and built in a
thread of its own for a large set."""

from __future__ import annotations

import re
import threading

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aurora_async import TokenPool
from aurora_async._core.tokens import mask
from aurora_async._pool.core import core_of
from aurora_async._pool.parts import MIN_PART, PartIndex
from aurora_async._pool.redact import IN_THREAD, Redactor


def reference_windows(text: str, secrets: list[str]) -> set[int]:
    """Every start of an 8-character window of ``text`` that is in some secret."""
    return {
        i
        for i in range(len(text) - MIN_PART + 1)
        if any(text[i : i + MIN_PART] in s for s in secrets)
    }


def reference_runs(text: str, secrets: list[str]) -> list[tuple[int, int]]:
    """The runs the redactor masks: chains of overlapping windows found in secrets."""
    runs: list[tuple[int, int]] = []
    for i in sorted(reference_windows(text, secrets)):
        if runs and i < runs[-1][1]:
            runs[-1] = (runs[-1][0], i + MIN_PART)
        else:
            runs.append((i, i + MIN_PART))
    return runs


def masked(text: str, secrets: list[str]) -> str:
    """``text`` through a redactor knowing ``secrets`` (named ``<n>``)."""
    names = {s: f"<{n}>" for n, s in enumerate(secrets)}
    redact = Redactor(lambda: list(secrets), names.get)
    redact.add(secrets)
    return redact(text)


# Texts and secrets over a few characters, so that windows are shared among secrets,
# pieces of them recur, and a text holds runs of them by chance as well as on purpose.
SMALL = st.text(alphabet="ab-c", min_size=0, max_size=40)
SECRET = st.text(alphabet="ab-c", min_size=8, max_size=30)


@settings(max_examples=300, deadline=None)
@given(secrets=st.lists(SECRET, min_size=1, max_size=12, unique=True), text=SMALL, data=st.data())
def test_windows_are_exactly_the_brute_force_ones(
    secrets: list[str], text: str, data: st.DataObject
) -> None:
    # ... and a text that certainly holds a part of a secret
    secret = data.draw(st.sampled_from(secrets))
    start = data.draw(st.integers(0, len(secret) - MIN_PART))
    end = data.draw(st.integers(start + MIN_PART, len(secret)))
    text = text[: len(text) // 2] + secret[start:end] + text[len(text) // 2 :]
    found: dict[int, str] = {}
    PartIndex(secrets).windows(text, found)
    assert set(found) == reference_windows(text, secrets)
    for i, holder in found.items():
        assert holder in secrets
        assert text[i : i + MIN_PART] in holder


@settings(max_examples=200, deadline=None)
@given(secrets=st.lists(SECRET, min_size=1, max_size=12, unique=True), text=SMALL, data=st.data())
def test_masking_replaces_exactly_the_brute_force_runs(
    secrets: list[str], text: str, data: st.DataObject
) -> None:
    for _ in range(data.draw(st.integers(0, 2))):  # parts of secrets, and some text around
        secret = data.draw(st.sampled_from(secrets))
        start = data.draw(st.integers(0, len(secret) - MIN_PART))
        end = data.draw(st.integers(start + MIN_PART, len(secret)))
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + secret[start:end] + text[at:]
    assume(reference_runs(text, secrets) or not text)
    out = masked(text, secrets)
    runs = reference_runs(text, secrets)
    bounds = [0, *(x for run in runs for x in run), len(text)]
    kept = [text[bounds[k] : bounds[k + 1]] for k in range(0, len(bounds), 2)]
    assert re.split(r"<\d+>", out) == kept
    names = [int(n) for n in re.findall(r"<(\d+)>", out)]
    for (start, end), n in zip(runs, names, strict=True):
        run = text[start:end]
        holders = [s for s in secrets if run in s]
        if run in secrets:
            assert secrets[n] == run
        elif holders:
            assert secrets[n] in holders
        else:
            assert text[start : start + MIN_PART] in secrets[n]


def test_a_shared_prefix_and_one_more_character_are_masked() -> None:
    """With ``sk-live-`` on 20 tokens, ``sk-live-`` and one more character is a run of 9
    characters of a token: masked (the old index left runs of shared pieces alone)."""
    tokens = [f"sk-live-{i:02d}Qz9XwP3mK2vR8tY5nB{i:02d}" for i in range(20)]
    redact = core_of(TokenPool(tokens)).redact
    text = "key sk-live-0 was refused"
    out = redact(text)
    assert "sk-live-0" not in out
    assert out.startswith("key ")
    assert out.endswith(" was refused")


def test_a_run_of_a_token_over_a_small_alphabet_is_masked() -> None:
    """Every 4-character piece of these tokens is shared by many: a run is still found."""
    tokens = [format(i, "b").zfill(16) for i in range(0, 2000, 7)]
    redact = core_of(TokenPool(tokens)).redact
    text = f"bits: {tokens[100][3:14]}."
    assert tokens[100][3:14] not in redact(text)


def test_a_run_is_named_after_the_token_it_is_a_part_of() -> None:
    tokens = [f"sk-live-{i:02d}Qz9XwP3mK2vR8tY5nB{i:02d}" for i in range(20)]
    pool = TokenPool(tokens)
    name = pool.stats().tokens[7].name
    assert core_of(pool).redact(f"revoked: {tokens[7][:12]}") == f"revoked: {name}"
    assert core_of(pool).redact(f"[{tokens[7]}]") == f"[{name}]"


def test_a_forgotten_secret_is_masked_by_its_masked_form() -> None:
    secret = "sk-live-0123456789abcdef"
    redact = Redactor(lambda: [secret], lambda value: None)
    redact.add([secret])
    assert redact(f"key={secret[2:14]}") == f"key={mask(secret)}"


def test_a_large_set_is_indexed_in_a_thread_of_its_own() -> None:
    secrets = [f"tok-{i:08d}-{i * 7919 % 100003:06d}xyz" for i in range(IN_THREAD)]
    threads: list[str] = []
    original = PartIndex.__init__

    def spy(self: PartIndex, values: list[str]) -> None:
        threads.append(threading.current_thread().name)
        original(self, values)

    PartIndex.__init__ = spy  # type: ignore[method-assign]
    try:
        redact = Redactor(lambda: list(secrets), lambda value: None)
        redact.add(secrets)
        assert redact(f"<{secrets[123][3:15]}>") == f"<{mask(secrets[123])}>"
    finally:
        PartIndex.__init__ = original  # type: ignore[method-assign]
    assert threads == ["aurora-redact-index"]
    assert threading.current_thread().name not in threads
