"""JSON text for ``JSONB`` columns, refusing what PostgreSQL's ``jsonb`` would refuse.

One compact encoding serves both paths: the ORM path checks a mapping with it, the
driver path (COPY, ``executemany``) sends its text as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Final

from biotech_ma_db.repositories.validation.problems import Invalid, encodable

__all__ = ["MAX_JSON_SIZE", "json_text", "json_texts"]

MAX_JSON_SIZE: Final = 1_000_000
"""Largest JSONB value accepted, in characters of compact JSON text."""

_JSON_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _not_json(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_chunks() -> Callable[[object], str]:
    """``_JSON_ENCODER.encode``, built once: ``encode`` sets up a new C encoder per call.

    No cycle tracking (``markers=None``): a cyclic document ends in ``RecursionError``,
    which :func:`json_text` refuses like any over-deep nesting.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    escape = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or escape is None:  # pure-Python json (e.g. PyPy): the plain path
        return _JSON_ENCODER.encode
    encode = make(None, _not_json, escape, None, ":", ",", False, False, False)

    def chunks(value: object) -> str:
        return "".join(encode(value, 0))

    return chunks


_encode_json: Final = _json_chunks()

# An escaped NUL (\u0000) that is not itself an escaped backslash followed by "u0000".
_JSON_NUL: Final = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def json_text(value: object) -> str:
    """``value`` as compact JSON text, refusing what PostgreSQL's ``jsonb`` would.

    Refused: values that are not JSON (sets, bytes, ``Decimal``, NaN, infinities), NUL
    characters, lone surrogates, nesting deep enough to exhaust the stack, and documents
    over :data:`MAX_JSON_SIZE` characters.

    Raises:
        Invalid: With the reason.
    """
    try:
        text = _encode_json(value)
    except (TypeError, ValueError) as exc:
        raise Invalid(f"is not JSON ({exc})") from None
    except RecursionError:
        raise Invalid("is nested too deeply") from None
    if len(text) > MAX_JSON_SIZE:
        raise Invalid(f"is {len(text)} characters of JSON (at most {MAX_JSON_SIZE})")
    if "\\u0000" in text and _JSON_NUL.search(text):
        raise Invalid("holds a NUL character (jsonb refuses \\u0000)")
    if not text.isascii() and not encodable(text):
        raise Invalid("holds text that is not valid Unicode (lone surrogate)")
    return text


def json_texts(values: list[object]) -> list[str]:
    """Each of ``values`` as :func:`json_text` would give it, the text checks run once.

    Raises:
        Invalid: If any value would be refused, without saying which (the caller then
            checks them one by one).
    """
    try:
        texts = [_encode_json(value) for value in values]
    except (TypeError, ValueError, RecursionError):
        raise Invalid("is not JSON") from None
    # Each text ends in a closing bracket or quote, so joining makes no new escape.
    joined = "".join(texts)
    if (
        max(map(len, texts), default=0) > MAX_JSON_SIZE
        or "\\u0000" in joined
        or (not joined.isascii() and not encodable(joined))
    ):
        raise Invalid("holds a value jsonb refuses")
    return texts
