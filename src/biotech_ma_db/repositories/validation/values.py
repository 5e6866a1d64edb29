"""The check of one value, per column type.

:func:`column_check` builds, from a column and its :class:`~.constraints.Limits`, a
:data:`~.problems.Check` that returns the value cleaned (a float as ``Decimal``, a naive
datetime as UTC, an enum value as its member) or raises :class:`~.problems.Invalid`.
With ``driver=True`` the check returns what asyncpg's COPY and ``executemany`` take
instead: JSON as compact text, enum members as plain strings.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Integer,
    Numeric,
    SmallInteger,
    String,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.types import JSON, TypeEngine

from biotech_ma_db.repositories.validation.constraints import Limits
from biotech_ma_db.repositories.validation.jsontext import json_text
from biotech_ma_db.repositories.validation.problems import Check, Invalid, encodable, show

__all__ = ["MAX_ARRAY_LENGTH", "MAX_TEXT_LENGTH", "array_item_check", "column_check"]

MAX_TEXT_LENGTH: Final = 10_000
"""Longest text accepted in a ``Text`` column without a length of its own."""

MAX_ARRAY_LENGTH: Final = 10_000
"""Most elements accepted in an array column."""

# Free-text columns that legitimately hold long prose.
_LONG_TEXT_COLUMNS: Final = frozenset({"description", "synergy_rationale"})
_LONG_TEXT_LENGTH: Final = 100_000


def column_check(column: Column[object], limits: Limits, *, driver: bool) -> Check:
    """The check of ``column``'s values; money is never negative, foreign keys positive.

    Those two defaults are written into ``limits`` (when no CHECK gave a minimum), so the
    column-at-a-time check built from the same limits applies them too.
    """
    if column.name.endswith("_usd") and limits.minimum is None:
        limits.minimum = Decimal(0)
    if column.foreign_keys and limits.minimum is None:
        limits.minimum, limits.min_inclusive = Decimal(0), False
    return _type_check(column.type, column.name, limits, driver=driver)


def array_item_check(item_type: TypeEngine[object]) -> Check:
    """The driver check of one element of an array column whose elements are ``item_type``."""
    return _type_check(item_type, "", Limits(), driver=True)


def _type_check(
    column_type: TypeEngine[object], name: str, limits: Limits, *, driver: bool
) -> Check:
    if isinstance(column_type, Enum) and column_type.enum_class is not None:
        enum_class = column_type.enum_class
        if issubclass(enum_class, enum.StrEnum):
            return _enum_check(enum_class, driver=driver)
    if isinstance(column_type, ARRAY):
        item_limits = Limits()
        item = _type_check(column_type.item_type, name, item_limits, driver=driver)
        return _array_check(item, limits.allowed_items)
    if isinstance(column_type, JSONB | JSON):
        return _json_text_check if driver else _json_check
    if isinstance(column_type, Boolean):
        return _bool_check
    if isinstance(column_type, DateTime):
        return _datetime_check
    if isinstance(column_type, Date):
        return _date_check
    if isinstance(column_type, Numeric) and not isinstance(column_type, Integer):
        return _numeric_check(column_type, limits)
    if isinstance(column_type, Integer):
        bits = 16 if isinstance(column_type, SmallInteger) else 32
        if isinstance(column_type, BigInteger):
            bits = 64
        return _int_check(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1, limits)
    if isinstance(column_type, String):
        length = column_type.length or (
            _LONG_TEXT_LENGTH if name in _LONG_TEXT_COLUMNS else MAX_TEXT_LENGTH
        )
        return _text_check(length, limits.pattern)
    return _any_check


def _any_check(value: object) -> object:
    return value


def _text_check(max_length: int, pattern: re.Pattern[str] | None) -> Check:
    def check(value: object) -> object:
        if not isinstance(value, str):
            raise Invalid(f"expected text, got {type(value).__name__}")
        if "\x00" in value:
            raise Invalid("contains a NUL byte")
        if not value.isascii() and not encodable(value):
            raise Invalid("is not valid Unicode (lone surrogate)")
        if len(value) > max_length:
            raise Invalid(f"is {len(value)} characters long (at most {max_length})")
        if pattern is not None and pattern.search(value) is None:
            raise Invalid(f"{show(value)} does not match {pattern.pattern}")
        return value

    return check


def _enum_check(enum_class: type[enum.StrEnum], *, driver: bool) -> Check:
    members: dict[str, object] = {
        member.value: (str(member.value) if driver else member) for member in enum_class
    }
    allowed = ", ".join(members)

    def check(value: object) -> object:
        if not isinstance(value, str):
            raise Invalid(f"expected one of {allowed}, got {type(value).__name__}")
        member = members.get(value)
        if member is None:
            raise Invalid(f"{show(value)} is not one of {allowed}")
        return member

    return check


def _int_check(low: int, high: int, limits: Limits) -> Check:
    def check(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected an integer, got {type(value).__name__}")
        if not low <= value <= high:
            raise Invalid(f"{show(value)} is out of range")
        limits.check_number(value, value)
        return value

    return check


def _numeric_check(column_type: Numeric[Decimal], limits: Limits) -> Check:
    precision, scale = column_type.precision, column_type.scale or 0
    ceiling = Decimal(10) ** (precision - scale) if precision is not None else None
    # Values this far inside the ceiling cannot round up to it: skip the quantize.
    near = ceiling - 1 if ceiling is not None else Decimal(0)
    below = -near

    def check(value: object) -> object:
        if type(value) is Decimal:  # the common case first: no conversion needed
            number = value
        elif isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise Invalid(f"expected a number, got {type(value).__name__}")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise Invalid("must be a finite number")
            # str() first: Decimal(0.1) would carry the float's binary expansion.
            number = Decimal(str(value))
        elif isinstance(value, int):
            number = Decimal(value)
        else:
            number = value
        if not number.is_finite():
            raise Invalid("must be a finite number")
        if ceiling is not None and not below < number < near:
            try:
                rounded = number.quantize(Decimal(1).scaleb(-scale))
            except InvalidOperation:
                raise Invalid(f"{show(value)} is out of range") from None
            if abs(rounded) >= ceiling:
                raise Invalid(f"{show(value)} is out of range (|x| < {ceiling})")
        limits.check_number(number, value)
        return number

    return check


def _bool_check(value: object) -> object:
    if not isinstance(value, bool):
        raise Invalid(f"expected a bool, got {type(value).__name__}")
    return value


def _datetime_check(value: object) -> object:
    if not isinstance(value, dt.datetime):
        raise Invalid(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive datetime is read as UTC (the seed API passes datetime.utcnow()).
        return value.replace(tzinfo=dt.UTC)
    return value


def _date_check(value: object) -> object:
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise Invalid(f"expected a date, got {type(value).__name__}")
    return value


def _array_check(item: Check, allowed: frozenset[str] | None) -> Check:
    def check(value: object) -> object:
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple | set | frozenset):
            raise Invalid(f"expected a list, got {type(value).__name__}")
        if len(value) > MAX_ARRAY_LENGTH:
            raise Invalid(f"has {len(value)} elements (at most {MAX_ARRAY_LENGTH})")
        cleaned: list[object] = []
        for index, element in enumerate(value):
            if element is None:
                raise Invalid(f"element {index} is None")
            try:
                checked = item(element)
            except Invalid as exc:
                raise Invalid(f"element {index} {exc.problem}") from None
            if allowed is not None and checked not in allowed:
                raise Invalid(f"element {index} {show(checked)} is not one of {sorted(allowed)}")
            cleaned.append(checked)
        return cleaned

    return check


def _json_check(value: object) -> object:
    if not isinstance(value, Mapping):
        raise Invalid(f"expected a mapping, got {type(value).__name__}")
    json_text(value)
    return dict(value)


def _json_text_check(value: object) -> object:
    if not isinstance(value, Mapping):
        raise Invalid(f"expected a mapping, got {type(value).__name__}")
    return json_text(value)
