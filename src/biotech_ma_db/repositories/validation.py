"""Validation before SQL: rules derived from each model's columns and CHECK constraints.

Every write path of the repositories runs its values through :func:`rules_for` first, so a
bad value raises :class:`~biotech_ma_db.errors.ValidationError` (naming the field, and the
row of a bulk call) before anything reaches PostgreSQL; the session and its transaction
stay usable.  The rules come from the model itself:

- the column type: ``str`` for text (no NUL byte, at most :data:`MAX_TEXT_LENGTH`
  characters unless the column says otherwise), ``int`` within the column's integer width,
  ``Decimal``/``int``/finite ``float`` within a ``Numeric``'s precision, ``bool``,
  timezone-aware ``datetime`` (a naive one is taken as UTC), ``date``, lists for arrays,
  JSON-native mappings for ``JSONB``, and members (or values) of the ``StrEnum`` of an
  enum column;
- nullability, and which columns a caller must give on create;
- simple CHECK constraints, parsed from their text: ``col >= n``, ``col > n``,
  ``col BETWEEN a AND b``, ``col ~ 'regex'``, ``col <@ ARRAY[...]`` and the two-column
  ``a <= b`` / ``a <> b`` (money ``>= 0``, scores 0..100, impact -100..100, percentile
  0..1, the ticker format ...).  Anything more elaborate is left to PostgreSQL, whose
  refusal becomes a typed :class:`~biotech_ma_db.errors.CheckViolationError`;
- money columns (``*_usd``) are never negative, and foreign keys are positive.

Columns the database or the library owns (the key, timestamps, ``version``,
``deleted_at``, generated columns) are read-only here, and unknown names are refused.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import json
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Enum,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Table,
    TextClause,
    inspect,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.types import JSON, TypeEngine

from biotech_ma_db.errors import ValidationError
from biotech_ma_db.models.base import Base

__all__ = [
    "MAX_ARRAY_LENGTH",
    "MAX_JSON_SIZE",
    "MAX_TEXT_LENGTH",
    "ModelRules",
    "check_json",
    "rules_for",
]

MAX_TEXT_LENGTH: Final = 10_000
"""Longest text accepted in a ``Text`` column without a length of its own."""

MAX_ARRAY_LENGTH: Final = 10_000
"""Most elements accepted in an array column."""

MAX_JSON_SIZE: Final = 1_000_000
"""Largest JSONB value accepted, in characters of compact JSON text."""

# Free-text columns that legitimately hold long prose.
_LONG_TEXT_COLUMNS: Final = frozenset({"description", "synergy_rationale"})
_LONG_TEXT_LENGTH: Final = 100_000

_READ_ONLY_NAMES: Final = frozenset({"created_at", "updated_at", "deleted_at", "occurred_at"})

_NUMBER = r"-?\d+(?:\.\d+)?"
_BOUND_RE: Final = re.compile(rf"^(\w+) (>=|>|<=|<) ({_NUMBER})$")
_BETWEEN_RE: Final = re.compile(rf"^(\w+) BETWEEN ({_NUMBER}) AND ({_NUMBER})$", re.IGNORECASE)
_REGEX_RE: Final = re.compile(r"^(\w+) (~\*?) '((?:[^']|'')*)'$")
_SUBSET_RE: Final = re.compile(r"^(\w+) <@ ARRAY\[(.*)\]::text\[\]$", re.IGNORECASE)
_PAIR_RE: Final = re.compile(r"^(\w+) (<=|<>) (\w+)$")

Check = Callable[[object], object]
"""Returns the cleaned value or raises :class:`_Invalid`."""

BulkCheck = Callable[[list[object]], list[object]]
"""Checks one column of many rows (no ``None``); the driver values, or :class:`_RowByRow`."""


class _Invalid(Exception):  # noqa: N818 — internal signal, turned into ValidationError
    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class _RowByRow(Exception):  # noqa: N818 — internal signal, not an error
    """A column check could not settle a batch at once: check it row by row instead."""


_MISSING: Final = object()


def _show(value: object) -> str:
    """A short, safe rendering of a refused value for the error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(slots=True)
class _Limits:
    minimum: Decimal | None = None
    min_inclusive: bool = True
    maximum: Decimal | None = None
    max_inclusive: bool = True
    pattern: re.Pattern[str] | None = None
    allowed_items: frozenset[str] | None = None

    def check_number(self, value: Decimal | int, shown: object) -> None:
        if self.minimum is not None and (
            value < self.minimum or (not self.min_inclusive and value == self.minimum)
        ):
            op = ">=" if self.min_inclusive else ">"
            raise _Invalid(f"must be {op} {self.minimum}, got {_show(shown)}")
        if self.maximum is not None and (
            value > self.maximum or (not self.max_inclusive and value == self.maximum)
        ):
            op = "<=" if self.max_inclusive else "<"
            raise _Invalid(f"must be {op} {self.maximum}, got {_show(shown)}")


@dataclass(frozen=True, slots=True)
class FieldRule:
    """How one column is checked.

    Attributes:
        name: The attribute (and column) name.
        check: Cleans and checks a non-``None`` value.
        nullable: Whether ``None`` is accepted.
        required: Whether a create must give it.
        writable: Whether callers may set it at all.
        driver_check: Like ``check``, but returns the value as the driver's COPY and
            ``executemany`` take it: JSON as compact text, enum members as plain strings.
    """

    name: str
    check: Check
    nullable: bool
    required: bool
    writable: bool
    driver_check: Check = field(default=lambda value: value)
    bulk_check: BulkCheck | None = None


@dataclass(frozen=True, slots=True)
class _PairRule:
    left: str
    op: str
    right: str

    def check(self, values: Mapping[str, object]) -> None:
        left, right = values.get(self.left), values.get(self.right)
        if left is None or right is None:
            return
        if self.op == "<>" and left == right:
            raise ValidationError(self.right, f"must differ from {self.left}")
        if self.op == "<=" and left > right:  # type: ignore[operator]  # same column kinds
            raise ValidationError(self.left, f"must not be greater than {self.right}")


@dataclass(frozen=True)
class ModelRules:
    """The compiled validation rules of one model (see :func:`rules_for`).

    Attributes:
        model: The model class.
        fields: One rule per column attribute, by name.
    """

    model: type[Base]
    fields: Mapping[str, FieldRule]
    pairs: tuple[_PairRule, ...] = field(default=())
    required: tuple[str, ...] = field(default=())

    def create(self, values: Mapping[str, object], *, row: int | None = None) -> dict[str, object]:
        """Check the values of a new row; returns them cleaned (e.g. floats to Decimal).

        Raises:
            ValidationError: On an unknown or read-only field, a missing required one, or a
                bad value.
        """
        cleaned = self._clean(values, row=row, checks=self._writable)
        self._check_complete(cleaned, row)
        return cleaned

    def update(self, values: Mapping[str, object], *, row: int | None = None) -> dict[str, object]:
        """Check the values of a partial update; returns them cleaned."""
        cleaned = self._clean(values, row=row, checks=self._writable)
        self._check_pairs(cleaned, row)
        return cleaned

    def value(self, name: str, value: object) -> object:
        """Check one value for a column (e.g. a filter operand); returns it cleaned."""
        rule = self.fields.get(name)
        if rule is None:
            raise ValidationError(name, "unknown field")
        if value is None:
            return None
        try:
            return rule.check(value)
        except _Invalid as exc:
            raise ValidationError(name, exc.problem) from None

    def driver_records(
        self,
        rows: Iterable[object],
        columns: Sequence[str],
        absent: Mapping[str, object],
    ) -> list[tuple[object, ...]]:
        """Check every row of a bulk write; returns one driver record per row.

        The same rules as :meth:`create`, with values as the driver takes them (see
        :attr:`FieldRule.driver_check`).  Bulk writes spend most of their client time
        here, all of it before anything is sent, so the rows are first checked a column
        at a time with C-level built-ins (types as sets, one NUL search over a column's
        joined text, extremes of a numeric column); anything that check cannot settle,
        a bad value included, sends the batch through the row-by-row checks, which name
        the first bad row and field.

        Args:
            rows: Mappings of column values.
            columns: The record's columns, in order.
            absent: Values for columns a row leaves out (otherwise ``None``).

        Raises:
            ValidationError: Naming the row index and the field, at the first bad value.
        """
        batch = rows if isinstance(rows, list) else list(rows)
        try:
            return self._records_by_column(batch, columns, absent)
        except _RowByRow:
            return self._records_by_row(batch, columns, absent)

    def _records_by_column(
        self, rows: list[object], columns: Sequence[str], absent: Mapping[str, object]
    ) -> list[tuple[object, ...]]:
        # Rows holding anything but writable record columns go row by row.
        known = self._writable_names.intersection(columns)
        if self.pairs or not known.issuperset(self.required):
            raise _RowByRow
        for row in rows:
            if type(row) is not dict or not row.keys() <= known:
                raise _RowByRow
        typed: list[dict[str, object]] = rows  # type: ignore[assignment]  # checked just above
        required = self.required
        fields = self.fields
        values_by_column: list[list[object]] = []
        for name in columns:
            default = absent.get(name)
            values = [row.get(name, _MISSING) for row in typed]
            rule = fields.get(name)
            if rule is None or rule.bulk_check is None or not rule.writable:
                raise _RowByRow
            given = [v for v in values if v is not _MISSING] if _MISSING in values else values
            if None in given:
                if not rule.nullable:
                    raise _RowByRow
                present = [v for v in given if v is not None]
            else:
                present = given
            if len(given) < len(values) and name in required and default is None:
                raise _RowByRow
            checked = rule.bulk_check(present) if present else present
            if checked is not values:
                values = _merge(values, given, present, checked, default)
            values_by_column.append(values)
        return list(zip(*values_by_column, strict=True))

    def _records_by_row(
        self, rows: list[object], columns: Sequence[str], absent: Mapping[str, object]
    ) -> list[tuple[object, ...]]:
        """The row-by-row form of :meth:`driver_records`: slower, names the first bad value."""
        build = operator.itemgetter(*columns)
        blank = dict.fromkeys(columns) | dict(absent)
        records: list[tuple[object, ...]] = []
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise ValidationError("rows", "expected a mapping", row=index)
            values = blank | self._clean(row, row=index, checks=self._driver_writable)
            self._check_complete(values, index)
            records.append(build(values))
        return records

    def _check_complete(self, values: Mapping[str, object], row: int | None) -> None:
        """Every required field is there, and the two-column CHECKs hold."""
        for name in self.required:
            if values.get(name) is None:
                raise ValidationError(name, "is required", row=row)
        if self.pairs:
            self._check_pairs(values, row)

    @functools.cached_property
    def _writable_names(self) -> frozenset[str]:
        return frozenset(n for n, r in self.fields.items() if r.writable)

    @functools.cached_property
    def _writable(self) -> dict[str, tuple[Check, bool]]:
        """``name -> (check, nullable)`` of the writable fields (the hot loop's table)."""
        return {n: (r.check, r.nullable) for n, r in self.fields.items() if r.writable}

    @functools.cached_property
    def _driver_writable(self) -> dict[str, tuple[Check, bool]]:
        """As :attr:`_writable`, with the checks that return driver values."""
        return {n: (r.driver_check, r.nullable) for n, r in self.fields.items() if r.writable}

    def _not_writable(self, name: object, row: int | None) -> ValidationError:
        if name in self.fields:
            return ValidationError(str(name), "is read-only", row=row)
        return ValidationError(str(name)[:64], "unknown field", row=row)

    def _clean(
        self,
        values: Mapping[str, object],
        *,
        row: int | None,
        checks: Mapping[str, tuple[Check, bool]],
    ) -> dict[str, object]:
        cleaned: dict[str, object] = {}
        for name, value in values.items():
            entry = checks.get(name)
            if entry is None:
                raise self._not_writable(name, row)
            if value is None:
                if not entry[1]:
                    raise ValidationError(name, "may not be None", row=row)
                cleaned[name] = None
                continue
            try:
                cleaned[name] = entry[0](value)
            except _Invalid as exc:
                raise ValidationError(name, exc.problem, row=row) from None
        return cleaned

    def _check_pairs(self, cleaned: Mapping[str, object], row: int | None) -> None:
        for pair in self.pairs:
            try:
                pair.check(cleaned)
            except ValidationError as exc:
                raise ValidationError(exc.field, exc.problem, row=row) from None


def check_json(field: str, value: object, *, row: int | None = None) -> str:
    """JSON text of a ``JSONB`` mapping value, checked as :meth:`ModelRules.create` would.

    Raises:
        ValidationError: Naming ``field`` (and ``row``).
    """
    if not isinstance(value, Mapping):
        raise ValidationError(field, f"expected a mapping, got {type(value).__name__}", row=row)
    try:
        return json_text(value)
    except _Invalid as exc:
        raise ValidationError(field, exc.problem, row=row) from None


@functools.cache
def rules_for(model: type[Base]) -> ModelRules:
    """The validation rules of ``model``, compiled once and cached."""
    mapper = inspect(model)
    table = mapper.local_table
    limits, pairs = _parse_checks(table.constraints if isinstance(table, Table) else ())
    version_column = mapper.version_id_col
    fields: dict[str, FieldRule] = {}
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        if not isinstance(column, Column):
            continue
        read_only = (
            column.primary_key
            or column.computed is not None
            or column is version_column
            or attr.key in _READ_ONLY_NAMES
        )
        has_default = (
            column.default is not None
            or column.server_default is not None
            or column.identity is not None
        )
        column_limits = limits.get(column.name, _Limits())
        fields[attr.key] = FieldRule(
            name=attr.key,
            check=_column_check(column, column_limits, driver=False),
            nullable=bool(column.nullable),
            required=not read_only and not column.nullable and not has_default,
            writable=not read_only,
            driver_check=(driver_check := _column_check(column, column_limits, driver=True)),
            bulk_check=_bulk_check(column.type, column_limits, driver_check),
        )
    required = tuple(name for name, rule in fields.items() if rule.required)
    return ModelRules(model=model, fields=fields, pairs=tuple(pairs), required=required)


def _parse_checks(constraints: Iterable[object]) -> tuple[dict[str, _Limits], list[_PairRule]]:
    limits: dict[str, _Limits] = {}
    pairs: list[_PairRule] = []
    for constraint in constraints:
        if not isinstance(constraint, CheckConstraint):
            continue
        sqltext = constraint.sqltext
        if not isinstance(sqltext, TextClause):
            continue  # enum constraints come from the column type instead
        text = " ".join(sqltext.text.split())
        if match := _BETWEEN_RE.match(text):
            entry = limits.setdefault(match[1], _Limits())
            entry.minimum, entry.maximum = Decimal(match[2]), Decimal(match[3])
        elif match := _BOUND_RE.match(text):
            entry = limits.setdefault(match[1], _Limits())
            bound, op = Decimal(match[3]), match[2]
            if op.startswith(">"):
                entry.minimum, entry.min_inclusive = bound, op == ">="
            else:
                entry.maximum, entry.max_inclusive = bound, op == "<="
        elif match := _REGEX_RE.match(text):
            flags = re.IGNORECASE if match[2] == "~*" else 0
            limits.setdefault(match[1], _Limits()).pattern = re.compile(
                match[3].replace("''", "'"), flags
            )
        elif match := _SUBSET_RE.match(text):
            items = frozenset(part.strip().strip("'") for part in match[2].split(","))
            limits.setdefault(match[1], _Limits()).allowed_items = items
        elif match := _PAIR_RE.match(text):
            pairs.append(_PairRule(match[1], match[2], match[3]))
    return limits, pairs


def _column_check(column: Column[object], limits: _Limits, *, driver: bool) -> Check:
    column_type = column.type
    if column.name.endswith("_usd") and limits.minimum is None:
        limits.minimum = Decimal(0)
    if column.foreign_keys and limits.minimum is None:
        limits.minimum, limits.min_inclusive = Decimal(0), False
    return _type_check(column_type, column.name, limits, driver=driver)


def _type_check(
    column_type: TypeEngine[object], name: str, limits: _Limits, *, driver: bool
) -> Check:
    if isinstance(column_type, Enum) and column_type.enum_class is not None:
        enum_class = column_type.enum_class
        if issubclass(enum_class, enum.StrEnum):
            return _enum_check(enum_class, driver=driver)
    if isinstance(column_type, ARRAY):
        item_limits = _Limits()
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


def _bulk_check(column_type: TypeEngine[object], limits: _Limits, row_check: Check) -> BulkCheck:
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
    if isinstance(column_type, String) and not isinstance(column_type, Enum):
        return functools.partial(_bulk_text, row_check, limits.pattern)
    return functools.partial(_bulk_each, row_check)


def _bulk_lookup(plain: dict[str, str], values: list[object]) -> list[object]:
    try:
        return [plain[v] for v in values]  # type: ignore[index]  # a miss is the slow path
    except (KeyError, TypeError):
        raise _RowByRow from None


def _bulk_json(values: list[object]) -> list[object]:
    if {type(v) for v in values} != {dict}:
        raise _RowByRow
    try:
        return [json_text(v) for v in values]
    except _Invalid:
        raise _RowByRow from None


def _bulk_datetime(values: list[object]) -> list[object]:
    if {type(v) for v in values} != {dt.datetime}:
        raise _RowByRow
    if None in [v.utcoffset() for v in values]:  # type: ignore[attr-defined]  # datetimes
        raise _RowByRow  # naive ones are made UTC row by row
    return values


def _bulk_exact_type(kind: type, values: list[object]) -> list[object]:
    if {type(v) for v in values} != {kind}:
        raise _RowByRow
    return values


def _bulk_int(row_check: Check, values: list[object]) -> list[object]:
    if {type(v) for v in values} != {int}:
        raise _RowByRow
    try:
        # Range and CHECK bounds are intervals: the extremes decide for all.
        row_check(min(values))  # type: ignore[type-var]  # ints
        row_check(max(values))  # type: ignore[type-var]  # ints
    except _Invalid:
        raise _RowByRow from None
    return values


def _bulk_text(
    row_check: Check, pattern: re.Pattern[str] | None, values: list[object]
) -> list[object]:
    if {type(v) for v in values} != {str}:
        raise _RowByRow
    texts: list[str] = values  # type: ignore[assignment]  # all str, checked above
    joined = "".join(texts)
    if "\x00" in joined or (not joined.isascii() and not _encodable(joined)):
        raise _RowByRow
    try:
        row_check(max(texts, key=len))
    except _Invalid:
        raise _RowByRow from None
    if pattern is not None and not all(pattern.search(text) for text in texts):
        raise _RowByRow
    return values


def _bulk_each(row_check: Check, values: list[object]) -> list[object]:
    try:
        return [row_check(v) for v in values]
    except _Invalid:
        raise _RowByRow from None


def _any_check(value: object) -> object:
    return value


def _text_check(max_length: int, pattern: re.Pattern[str] | None) -> Check:
    def check(value: object) -> object:
        if not isinstance(value, str):
            raise _Invalid(f"expected text, got {type(value).__name__}")
        if "\x00" in value:
            raise _Invalid("contains a NUL byte")
        if not value.isascii() and not _encodable(value):
            raise _Invalid("is not valid Unicode (lone surrogate)")
        if len(value) > max_length:
            raise _Invalid(f"is {len(value)} characters long (at most {max_length})")
        if pattern is not None and pattern.search(value) is None:
            raise _Invalid(f"{_show(value)} does not match {pattern.pattern}")
        return value

    return check


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _enum_check(enum_class: type[enum.StrEnum], *, driver: bool) -> Check:
    members: dict[str, object] = {
        member.value: (str(member.value) if driver else member) for member in enum_class
    }
    allowed = ", ".join(members)

    def check(value: object) -> object:
        if not isinstance(value, str):
            raise _Invalid(f"expected one of {allowed}, got {type(value).__name__}")
        member = members.get(value)
        if member is None:
            raise _Invalid(f"{_show(value)} is not one of {allowed}")
        return member

    return check


def _int_check(low: int, high: int, limits: _Limits) -> Check:
    def check(value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected an integer, got {type(value).__name__}")
        if not low <= value <= high:
            raise _Invalid(f"{_show(value)} is out of range")
        limits.check_number(value, value)
        return value

    return check


def _numeric_check(column_type: Numeric[Decimal], limits: _Limits) -> Check:
    precision, scale = column_type.precision, column_type.scale or 0
    ceiling = Decimal(10) ** (precision - scale) if precision is not None else None
    # Values this far inside the ceiling cannot round up to it: skip the quantize.
    near = ceiling - 1 if ceiling is not None else Decimal(0)
    below = -near

    def check(value: object) -> object:
        if type(value) is Decimal:  # the common case first: no conversion needed
            number = value
        elif isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise _Invalid(f"expected a number, got {type(value).__name__}")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise _Invalid("must be a finite number")
            # str() first: Decimal(0.1) would carry the float's binary expansion.
            number = Decimal(str(value))
        elif isinstance(value, int):
            number = Decimal(value)
        else:
            number = value
        if not number.is_finite():
            raise _Invalid("must be a finite number")
        if ceiling is not None and not below < number < near:
            try:
                rounded = number.quantize(Decimal(1).scaleb(-scale))
            except InvalidOperation:
                raise _Invalid(f"{_show(value)} is out of range") from None
            if abs(rounded) >= ceiling:
                raise _Invalid(f"{_show(value)} is out of range (|x| < {ceiling})")
        limits.check_number(number, value)
        return number

    return check


def _bool_check(value: object) -> object:
    if not isinstance(value, bool):
        raise _Invalid(f"expected a bool, got {type(value).__name__}")
    return value


def _datetime_check(value: object) -> object:
    if not isinstance(value, dt.datetime):
        raise _Invalid(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive datetime is read as UTC (the seed API passes datetime.utcnow()).
        return value.replace(tzinfo=dt.UTC)
    return value


def _date_check(value: object) -> object:
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise _Invalid(f"expected a date, got {type(value).__name__}")
    return value


def _array_check(item: Check, allowed: frozenset[str] | None) -> Check:
    def check(value: object) -> object:
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple | set | frozenset):
            raise _Invalid(f"expected a list, got {type(value).__name__}")
        if len(value) > MAX_ARRAY_LENGTH:
            raise _Invalid(f"has {len(value)} elements (at most {MAX_ARRAY_LENGTH})")
        cleaned: list[object] = []
        for index, element in enumerate(value):
            if element is None:
                raise _Invalid(f"element {index} is None")
            try:
                checked = item(element)
            except _Invalid as exc:
                raise _Invalid(f"element {index} {exc.problem}") from None
            if allowed is not None and checked not in allowed:
                raise _Invalid(f"element {index} {_show(checked)} is not one of {sorted(allowed)}")
            cleaned.append(checked)
        return cleaned

    return check


def _json_check(value: object) -> object:
    if not isinstance(value, Mapping):
        raise _Invalid(f"expected a mapping, got {type(value).__name__}")
    json_text(value)
    return dict(value)


def _json_text_check(value: object) -> object:
    if not isinstance(value, Mapping):
        raise _Invalid(f"expected a mapping, got {type(value).__name__}")
    return json_text(value)


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
        _Invalid: With the reason.
    """
    try:
        text = _encode_json(value)
    except (TypeError, ValueError) as exc:
        raise _Invalid(f"is not JSON ({exc})") from None
    except RecursionError:
        raise _Invalid("is nested too deeply") from None
    if len(text) > MAX_JSON_SIZE:
        raise _Invalid(f"is {len(text)} characters of JSON (at most {MAX_JSON_SIZE})")
    if "\\u0000" in text and _JSON_NUL.search(text):
        raise _Invalid("holds a NUL character (jsonb refuses \\u0000)")
    if not text.isascii() and not _encodable(text):
        raise _Invalid("holds text that is not valid Unicode (lone surrogate)")
    return text
