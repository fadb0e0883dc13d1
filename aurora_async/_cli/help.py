"""Help screens without stray types (``--json <bool>``, ``FILE <str>``) or ragged lines.

typer 0.28 moved the type shown beside each parameter in ``--help`` into
``display_type_rich()``, which prints ``<bool>`` for every flag (flags take no value; typer
0.27 and older filtered ``bool`` out) and ``<str>`` for positional arguments, whose name
already says what they are. Typed options keep their ``<int>``, ``<float>``, ``<dir>``.

The command and group classes here give each flag and argument an instance-level
``display_type_rich`` that shows nothing, whenever help is built: nothing of typer is
patched globally, and with a typer that has no ``display_type_rich`` (0.27 and older,
where flags already show no type) nothing changes.

typer's rich help also keeps the line breaks of a docstring after its first paragraph,
so a paragraph wrapped for the source comes out ragged in an 80-column terminal: each
paragraph of a command's help is made one line here, for the terminal to wrap.
"""

from __future__ import annotations

import inspect
from typing import Any

from typer.core import TyperCommand, TyperGroup

__all__ = ["Command", "Group"]


def _no_type(ctx: object = None) -> None:
    return None


def _hide_types(params: list[Any]) -> list[Any]:
    for param in params:
        flag = bool(getattr(param, "is_flag", False))
        argument = getattr(param, "param_type_name", None) == "argument"
        if (flag or argument) and hasattr(param, "display_type_rich"):
            param.display_type_rich = _no_type
    return params


def reflow(text: str) -> str:
    """``text`` with each paragraph (between blank lines) on one line; a paragraph that
    starts with ``\b`` (click's "keep as it is") is kept as it is."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(p.split("\n")) for p in paragraphs)


class Command(TyperCommand):
    """A typer command whose help shows no type for flags and arguments, and whose
    paragraphs are wrapped by the terminal, not by the source."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.help:
            self.help = reflow(self.help)

    def get_params(self, ctx: Any) -> list[Any]:
        return _hide_types(list(super().get_params(ctx)))


class Group(TyperGroup):
    """A typer group whose help shows no type for its flags (``--help``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _hide_types(list(super().get_params(ctx)))
