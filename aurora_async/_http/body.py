"""Whether a request body (aiohttp's ``data``) can be sent again, on another attempt or
after a redirect. The rules on what follows from it are in ``_core.retry`` (one attempt
only) and ``_core.redirect`` (a redirect that would re-send it is not followed)."""

from __future__ import annotations

from typing import Any

import aiohttp
from multidict import MultiDict, MultiDictProxy

__all__ = ["replayable"]

#: Bodies aiohttp builds afresh for every attempt (a form's fields are checked too).
_BYTES = (bytes, bytearray, memoryview, str)
_PLAIN = (*_BYTES, int, float)
_FORMS = (dict, MultiDict, MultiDictProxy)


def replayable(data: Any) -> bool:
    """Bytes, text, a form of plain values (a mapping, pairs, or a ``FormData`` without
    files) can be sent twice; a file, a stream, a generator, or a form holding one
    cannot. (``json=`` always can: aiohttp encodes it for each request.)"""
    if data is None or isinstance(data, _BYTES):
        return True
    if isinstance(data, aiohttp.FormData):
        fields = getattr(data, "_fields", None)
        if not isinstance(fields, list):
            return False
        # aiohttp builds a multipart body once (older versions refuse to build it again;
        # newer ones reuse it, with its fields gone from the form).
        multipart = getattr(data, "_is_multipart", True)
        if multipart and (not fields or hasattr(data, "_is_processed")):
            return False
        return all(_plain(value) for _, _, value in fields)
    if isinstance(data, _FORMS):
        return all(_plain(value) for value in data.values())
    if isinstance(data, list | tuple):
        return all(_plain_field(field) for field in data)
    return isinstance(data, aiohttp.payload.BytesPayload)


def _plain_field(field: Any) -> bool:
    """One element of a form given as a list: a (name, value) pair or a multidict."""
    if isinstance(field, MultiDict | MultiDictProxy):
        return all(_plain(value) for value in field.values())
    return isinstance(field, list | tuple) and len(field) == 2 and _plain(field[1])


def _plain(value: Any) -> bool:
    """A form field's value that aiohttp encodes afresh each time it builds the form."""
    if value is None or isinstance(value, _PLAIN):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(item) for item in value)
    return isinstance(value, aiohttp.payload.BytesPayload)
