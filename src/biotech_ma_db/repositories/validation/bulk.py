"""The bulk path: the rows of a batch checked a column at a time.

Bulk writes spend most of their client time in validation, all of it before anything is
sent, so :func:`records_by_column` checks each column of the batch with C-level
built-ins (types as sets, one NUL search over a column's joined text, the extremes of a
numeric column, enum look-ups) and builds the driver records with ``zip``.  Anything it
cannot settle, a bad value included, raises :class:`~.problems.RowByRow`, and the batch
goes through the row-by-row checks, which name the first bad row and field.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from itertools import chain, repeat
from typing import Final

from sqlalchemy import Boolean, Date, DateTime, Enum, Integer, Numeric, String
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.types import JSON, TypeEngine

from biotech_ma_db.repositories.validation.constraints import Limits
from biotech_ma_db.repositories.validation.jsontext import json_texts
from biotech_ma_db.repositories.validation.problems import (
    BulkCheck,
    Check,
    Invalid,
    RowByRow,
    encodable,
)
from biotech_ma_db.repositories.validation.values import MAX_ARRAY_LENGTH, array_item_check

__all__ = ["bulk_check", "records_by_column"]

_NONE_TYPE: Final = type(None)


class _Missing:
    """The type of the marker for a column a row leaves out."""


_MISSING: Final = _Missing()


def records_by_column(
    checks: Mapping[str, tuple[BulkCheck | None, bool]],
    required: Sequence[str],
    rows: list[object],
    columns: Sequence[str],
    absent: Mapping[str, object],
) -> list[tuple[object, ...]]:
    """One driver record per row, each column of the batch checked at once.

    Args:
        checks: ``name -> (bulk check, nullable)`` of the writable fields.
        required: The fields a new row must give.
        rows: The rows, as given.
        columns: The record's columns, in order.
        absent: Values for columns a row leaves out (otherwise ``None``).

    Raises:
        RowByRow: When the batch must be checked row by row (bad or unusual values).
    """
    # Rows holding anything but writable record columns go row by row.
    known = checks.keys() & set(columns)
    if not known.issuperset(required):
        raise RowByRow
    for row in rows:
        if type(row) is not dict or not row.keys() <= known:
            raise RowByRow
    typed: list[dict[str, object]] = rows  # type: ignore[assignment]  # checked just above
    values_by_column: list[list[object]] = []
    for name in columns:
        default = absent.get(name)
        values = list(map(dict.get, typed, repeat(name), repeat(_MISSING)))
        entry = checks.get(name)
        if entry is None:
            raise RowByRow
        check, nullable = entry
        if check is None:
            raise RowByRow
        # Types, not ``in``: comparing a Decimal with None or the marker goes through the
        # numbers ABCs, a few hundred nanoseconds a value.
        kinds = set(map(type, values))
        given = [v for v in values if v is not _MISSING] if _Missing in kinds else values
        if _NONE_TYPE in kinds:
            if not nullable:
                raise RowByRow
            present = [v for v in given if v is not None]
        else:
            present = given
        if len(given) < len(values) and name in required and default is None:
            raise RowByRow
        checked = check(present) if present else present
        if checked is not values:
            values = _merge(values, given, present, checked, default)
        values_by_column.append(values)
    return list(zip(*values_by_column, strict=True))


def _merge(
    values: list[object],
    given: list[object],
    present: list[object],
    checked: list[object],
    default: object,
) -> list[object]:
    """Put a column's checked values back in row order, around ``None`` and absent ones."""
    if len(present) == len(values):
        return checked
    cleaned = iter(checked)
    if len(given) == len(values):
        return [None if v is None else next(cleaned) for v in values]
    return [default if v is _MISSING else None if v is None else next(cleaned) for v in values]


def bulk_check(column_type: TypeEngine[object], limits: Limits, row_check: Check) -> BulkCheck:
    """The column-at-a-time form of ``row_check`` (driver values) for ``column_type``."""
    enum_class = getattr(column_type, "enum_class", None)
    if (
        isinstance(column_type, Enum)
        and isinstance(enum_class, type)
        and issubclass(enum_class, enum.StrEnum)
    ):
        plain = {str(member.value): str(member.value) for member in enum_class}
        return functools.partial(_bulk_lookup, plain)
    if isinstance(column_type, JSONB | JSON):
        return _bulk_json
    if isinstance(column_type, DateTime):
        return _bulk_datetime
    if isinstance(column_type, Date):
        return functools.partial(_bulk_exact_type, dt.date)
    if isinstance(column_type, Boolean):
        return functools.partial(_bulk_exact_type, bool)
    if isinstance(column_type, Integer):
        return functools.partial(_bulk_int, row_check)
    if isinstance(column_type, Numeric):
        return functools.partial(_bulk_decimal, row_check)
    if isinstance(column_type, ARRAY):
        item_type = column_type.item_type
        item_bulk = bulk_check(item_type, Limits(), array_item_check(item_type))
        return functools.partial(_bulk_array, item_bulk, limits.allowed_items)
    if isinstance(column_type, String) and not isinstance(column_type, Enum):
        return functools.partial(_bulk_text, row_check, limits.pattern)
    return functools.partial(_bulk_each, row_check)


def _bulk_lookup(plain: dict[str, str], values: list[object]) -> list[object]:
    try:
        return [plain[v] for v in values]  # type: ignore[index]  # a miss is the slow path
    except (KeyError, TypeError):
        raise RowByRow from None


def _bulk_json(values: list[object]) -> list[object]:
    if set(map(type, values)) != {dict}:
        raise RowByRow
    try:
        return json_texts(values)  # type: ignore[return-value]  # list invariance
    except Invalid:
        raise RowByRow from None


def _bulk_datetime(values: list[object]) -> list[object]:
    if set(map(type, values)) != {dt.datetime}:
        raise RowByRow
    if None in [v.utcoffset() for v in values]:  # type: ignore[attr-defined]  # datetimes
        raise RowByRow  # naive ones are made UTC row by row
    return values


def _bulk_exact_type(kind: type, values: list[object]) -> list[object]:
    if set(map(type, values)) != {kind}:
        raise RowByRow
    return values


def _bulk_int(row_check: Check, values: list[object]) -> list[object]:
    if set(map(type, values)) != {int}:
        raise RowByRow
    try:
        # Range and CHECK bounds are intervals: the extremes decide for all.
        row_check(min(values))  # type: ignore[type-var]  # ints
        row_check(max(values))  # type: ignore[type-var]  # ints
    except Invalid:
        raise RowByRow from None
    return values


def _bulk_decimal(row_check: Check, values: list[object]) -> list[object]:
    if set(map(type, values)) != {Decimal}:
        raise RowByRow  # floats and ints become Decimal row by row
    try:
        # NaN does not compare (InvalidOperation); the bounds, the precision's ceiling
        # and the infinities are all decided by the two extremes.
        row_check(min(values))  # type: ignore[type-var]  # Decimals
        row_check(max(values))  # type: ignore[type-var]  # Decimals
    except (Invalid, InvalidOperation):
        raise RowByRow from None
    return values


def _bulk_array(
    item_bulk: BulkCheck, allowed: frozenset[str] | None, values: list[object]
) -> list[object]:
    """Lists whose elements, all of them at once, pass the element type's bulk check."""
    if set(map(type, values)) != {list}:
        raise RowByRow  # tuples and sets become lists row by row
    arrays: list[list[object]] = values  # type: ignore[assignment]  # all lists, checked above
    if max(map(len, arrays)) > MAX_ARRAY_LENGTH:
        raise RowByRow
    elements = list(chain.from_iterable(arrays))
    if not elements:
        return values
    if item_bulk(elements) is not elements:
        raise RowByRow  # elements the check would convert are converted row by row
    if allowed is not None and not allowed.issuperset(elements):
        raise RowByRow
    return values


def _bulk_text(
    row_check: Check, pattern: re.Pattern[str] | None, values: list[object]
) -> list[object]:
    if set(map(type, values)) != {str}:
        raise RowByRow
    texts: list[str] = values  # type: ignore[assignment]  # all str, checked above
    joined = "".join(texts)
    if "\x00" in joined or (not joined.isascii() and not encodable(joined)):
        raise RowByRow
    try:
        row_check(max(texts, key=len))
    except Invalid:
        raise RowByRow from None
    if pattern is not None and not all(map(pattern.search, texts)):
        raise RowByRow
    return values


def _bulk_each(row_check: Check, values: list[object]) -> list[object]:
    try:
        return [row_check(v) for v in values]
    except Invalid:
        raise RowByRow from None
