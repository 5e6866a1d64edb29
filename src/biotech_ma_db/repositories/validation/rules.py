"""The rules of one model, derived from its columns, and the row-by-row checks.

:func:`rules_for` compiles a model's :class:`ModelRules` once: one :class:`FieldRule` per
column attribute (its value check, nullability, whether a create must give it, whether
callers may set it at all) and the two-column CHECKs.  :class:`ModelRules` checks the
values of a create, an update, a filter operand, or every row of a bulk write.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import Column, Table, inspect

from biotech_ma_db.errors import ValidationError
from biotech_ma_db.models.base import Base
from biotech_ma_db.repositories.validation.bulk import bulk_check, records_by_column
from biotech_ma_db.repositories.validation.constraints import Limits, PairRule, parse_checks
from biotech_ma_db.repositories.validation.jsontext import json_text
from biotech_ma_db.repositories.validation.problems import BulkCheck, Check, Invalid, RowByRow
from biotech_ma_db.repositories.validation.values import column_check

__all__ = ["FieldRule", "ModelRules", "check_json", "rules_for"]

_READ_ONLY_NAMES: Final = frozenset({"created_at", "updated_at", "deleted_at", "occurred_at"})


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
        bulk_check: The column-at-a-time form of ``driver_check``, for bulk writes.
    """

    name: str
    check: Check
    nullable: bool
    required: bool
    writable: bool
    driver_check: Check = field(default=lambda value: value)
    bulk_check: BulkCheck | None = None


@dataclass(frozen=True)
class ModelRules:
    """The compiled validation rules of one model (see :func:`rules_for`).

    Attributes:
        model: The model class.
        fields: One rule per column attribute, by name.
    """

    model: type[Base]
    fields: Mapping[str, FieldRule]
    pairs: tuple[PairRule, ...] = field(default=())
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
        except Invalid as exc:
            raise ValidationError(name, exc.problem) from None

    def driver_records(
        self,
        rows: Iterable[object],
        columns: Sequence[str],
        absent: Mapping[str, object],
    ) -> list[tuple[object, ...]]:
        """Check every row of a bulk write; returns one driver record per row.

        The same rules as :meth:`create`, with values as the driver takes them (see
        :attr:`FieldRule.driver_check`).  The rows are first checked a column at a time
        (:func:`~.bulk.records_by_column`); anything that check cannot settle, a bad
        value included, sends the batch through the row-by-row checks, which name the
        first bad row and field.

        Args:
            rows: Mappings of column values.
            columns: The record's columns, in order.
            absent: Values for columns a row leaves out (otherwise ``None``).

        Raises:
            ValidationError: Naming the row index and the field, at the first bad value.
        """
        batch = rows if isinstance(rows, list) else list(rows)
        if not self.pairs:  # two-column CHECKs are checked row by row only
            try:
                return records_by_column(self._bulk_writable, self.required, batch, columns, absent)
            except RowByRow:
                pass
        return self._records_by_row(batch, columns, absent)

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
    def _writable(self) -> dict[str, tuple[Check, bool]]:
        """``name -> (check, nullable)`` of the writable fields (the hot loop's table)."""
        return {n: (r.check, r.nullable) for n, r in self.fields.items() if r.writable}

    @functools.cached_property
    def _driver_writable(self) -> dict[str, tuple[Check, bool]]:
        """As :attr:`_writable`, with the checks that return driver values."""
        return {n: (r.driver_check, r.nullable) for n, r in self.fields.items() if r.writable}

    @functools.cached_property
    def _bulk_writable(self) -> dict[str, tuple[BulkCheck | None, bool]]:
        """As :attr:`_writable`, with the column-at-a-time checks."""
        return {n: (r.bulk_check, r.nullable) for n, r in self.fields.items() if r.writable}

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
            except Invalid as exc:
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
    except Invalid as exc:
        raise ValidationError(field, exc.problem, row=row) from None


@functools.cache
def rules_for(model: type[Base]) -> ModelRules:
    """The validation rules of ``model``, compiled once and cached."""
    mapper = inspect(model)
    table = mapper.local_table
    limits, pairs = parse_checks(table.constraints if isinstance(table, Table) else ())
    version_column = mapper.version_id_col
    fields: dict[str, FieldRule] = {}
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        if not isinstance(column, Column):
            continue
        read_only = (
            # The mapper's key, not the table's: signals' table key also holds event_date.
            any(column is key for key in mapper.primary_key)
            or column.computed is not None
            or column is version_column
            or attr.key in _READ_ONLY_NAMES
        )
        has_default = (
            column.default is not None
            or column.server_default is not None
            or column.identity is not None
        )
        column_limits = limits.get(column.name, Limits())
        fields[attr.key] = FieldRule(
            name=attr.key,
            check=column_check(column, column_limits, driver=False),
            nullable=bool(column.nullable),
            required=not read_only and not column.nullable and not has_default,
            writable=not read_only,
            driver_check=(driver_check := column_check(column, column_limits, driver=True)),
            bulk_check=bulk_check(column.type, column_limits, driver_check),
        )
    required = tuple(name for name, rule in fields.items() if rule.required)
    return ModelRules(model=model, fields=fields, pairs=tuple(pairs), required=required)
