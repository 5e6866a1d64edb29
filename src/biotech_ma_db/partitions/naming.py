"""Month partitions by name: ``signals_y2026m03`` holds March 2026 (UTC), ``signals_default``
everything no month partition covers.

Pure functions over names, months and the models' metadata; nothing here connects.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Final, Self

from sqlalchemy import MetaData

from biotech_ma_db.models import Base

__all__ = [
    "DEFAULT_SUFFIX",
    "Month",
    "default_partition_name",
    "is_partition_name",
    "partition_column",
    "partitioned_tables",
    "quoted",
]

DEFAULT_SUFFIX: Final = "default"
"""``<table>_default``: the DEFAULT partition of ``<table>``."""

_SUFFIX: Final = re.compile(r"_(?:y\d{4}m(?:0[1-9]|1[0-2])|default)\Z")
_RANGE_COLUMN: Final = re.compile(r"\ARANGE \((\w+)\)\Z", re.IGNORECASE)


@dataclass(frozen=True, order=True, slots=True)
class Month:
    """A calendar month in UTC: the range ``[start, end)`` of one partition."""

    year: int
    month: int

    @classmethod
    def of(cls, day: dt.date) -> Self:
        """The month ``day`` falls in."""
        return cls(day.year, day.month)

    def plus(self, months: int) -> Month:
        """The month ``months`` later (earlier when negative)."""
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    @property
    def start(self) -> dt.datetime:
        """Midnight UTC on the first day: the partition's lower bound (included)."""
        return dt.datetime(self.year, self.month, 1, tzinfo=dt.UTC)

    @property
    def end(self) -> dt.datetime:
        """The next month's start: the partition's upper bound (excluded)."""
        return self.plus(1).start

    def partition_name(self, table: str) -> str:
        """``<table>_yYYYYmMM``."""
        return f"{table}_y{self.year:04d}m{self.month:02d}"


def default_partition_name(table: str) -> str:
    """``<table>_default``."""
    return f"{table}_{DEFAULT_SUFFIX}"


def partitioned_tables(metadata: MetaData = Base.metadata) -> dict[str, str]:
    """The tables the models declare partitioned, with their ``PARTITION BY`` clause."""
    found: dict[str, str] = {}
    for table in metadata.tables.values():
        clause = table.dialect_options["postgresql"]["partition_by"]
        if clause:
            found[table.name] = str(clause)
    return found


def partition_column(table: str, metadata: MetaData = Base.metadata) -> str:
    """The column ``table`` is range-partitioned on (``event_date`` for ``signals``).

    Raises:
        LookupError: The models do not range-partition ``table`` on one column.
    """
    match = _RANGE_COLUMN.match(partitioned_tables(metadata).get(table, ""))
    if match is None:
        raise LookupError(f"{table} is not range-partitioned on one column in the models")
    return match.group(1)


def is_partition_name(name: str, metadata: MetaData = Base.metadata) -> bool:
    """Whether ``name`` names a month or DEFAULT partition of a partitioned model table.

    Attached or detached alike: a month detached for retention (and kept) is no table of
    the models either, so schema comparisons leave both out.
    """
    match = _SUFFIX.search(name)
    return match is not None and name[: match.start()] in partitioned_tables(metadata)


def quoted(name: str) -> str:
    """``name`` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
