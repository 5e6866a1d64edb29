"""Create the month partitions ahead of time, idempotently, from any number of jobs at once.

A month partition is built as a standalone table and attached, rather than created with
``CREATE TABLE ... PARTITION OF``: rows for that month may already sit in the DEFAULT
partition (PostgreSQL refuses a new partition whose range has rows in DEFAULT), and they
are moved into the new table before it is attached.  Per missing month, in one
transaction:

1. ``CREATE TABLE <table>_yYYYYmMM (LIKE <table> INCLUDING DEFAULTS INCLUDING
   CONSTRAINTS)`` plus a CHECK on the month's range, so that attaching needs no scan of it;
2. with the DEFAULT partition locked (ACCESS EXCLUSIVE, which ``ATTACH`` takes anyway),
   move that month's rows out of DEFAULT into the new table (``DELETE ... RETURNING``);
3. ``ALTER TABLE <table> ATTACH PARTITION ...``, which takes only SHARE UPDATE EXCLUSIVE
   on the parent: reads and writes of other months go on (cloning the foreign key to
   ``companies`` takes SHARE ROW EXCLUSIVE there, so company writes wait for the commit,
   milliseconds when DEFAULT holds few rows of the month);
4. drop the helper CHECK, now implied by the partition bound.

Concurrent runs queue on a transaction-scoped advisory lock per table and then find the
partitions the first run made.  Every lock wait is bounded by ``lock_timeout``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from biotech_ma_db.errors import MigrationError, ValidationError
from biotech_ma_db.partitions.catalog import (
    Partition,
    Target,
    check_table,
    connection_to,
    lock_key_sql,
    partitions_of,
    translating,
)
from biotech_ma_db.partitions.naming import Month, partition_column, quoted

__all__ = [
    "DEFAULT_MONTHS_AHEAD",
    "MAX_MONTHS_AHEAD",
    "EnsureResult",
    "ensure_partitions",
]

DEFAULT_MONTHS_AHEAD: Final = 3
"""Months past the current one that ``ensure_partitions`` covers by default."""

MAX_MONTHS_AHEAD: Final = 120
"""Most months ahead one call accepts (ten years)."""

DEFAULT_LOCK_TIMEOUT_MS: Final = 3000
"""``lock_timeout`` of the maintenance transaction."""

_COLUMNS_SQL: Final = text(
    "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute"
    " WHERE attrelid = to_regclass(:table) AND attnum > 0 AND NOT attisdropped"
)


@dataclass(frozen=True, slots=True)
class EnsureResult:
    """What :func:`ensure_partitions` did.

    Attributes:
        created: Names of the partitions created, oldest first (empty: all existed).
        moved_rows: Rows moved out of the DEFAULT partition into them.
    """

    created: tuple[str, ...]
    moved_rows: int


def _check_months_ahead(months_ahead: object) -> int:
    if isinstance(months_ahead, bool) or not isinstance(months_ahead, int):
        raise ValidationError("months_ahead", "must be a whole number of months")
    if not 0 <= months_ahead <= MAX_MONTHS_AHEAD:
        raise ValidationError("months_ahead", f"must be between 0 and {MAX_MONTHS_AHEAD}")
    return months_ahead


def _check_start(start: object) -> dt.date:
    if start is None:
        return dt.datetime.now(dt.UTC).date()
    if isinstance(start, dt.datetime) or not isinstance(start, dt.date):
        raise ValidationError("start", "must be a date (its month is the first one covered)")
    return start


def _check_lock_timeout(lock_timeout_ms: object) -> int:
    if isinstance(lock_timeout_ms, bool) or not isinstance(lock_timeout_ms, int):
        raise ValidationError("lock_timeout_ms", "must be a whole number of milliseconds")
    if not 1 <= lock_timeout_ms <= 600_000:
        raise ValidationError("lock_timeout_ms", "must be between 1 and 600000")
    return lock_timeout_ms


async def ensure_partitions(
    target: Target,
    *,
    months_ahead: int = DEFAULT_MONTHS_AHEAD,
    table: str = "signals",
    start: dt.date | None = None,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
) -> EnsureResult:
    """Make sure ``table`` has a partition for each month from ``start`` on.

    Covers the month of ``start`` (default: today, UTC) and the ``months_ahead`` after it.
    Months that already have a partition are left alone, so running it again, or from
    several jobs at once, creates each partition exactly once.

    Args:
        target: A ``Database``, an ``AsyncEngine`` or an ``AsyncConnection``.  A
            connection already in a transaction runs it there (the caller commits, and
            the advisory lock is held until then); otherwise it commits its own.
        months_ahead: Months past the first one to cover (0 to 120).
        table: The partitioned table (``signals``).
        start: A day of the first month to cover.
        lock_timeout_ms: How long any one lock may be waited for.

    Returns:
        The partitions created and the rows moved into them out of DEFAULT.

    Raises:
        ValidationError: A bad argument, or ``table`` is not partitioned (not migrated).
        MigrationError: A table of a partition's name exists but is not its partition, or
            an existing partition overlaps a month only in part.
        LockTimeoutError: A lock was not granted within ``lock_timeout_ms``.
    """
    name = check_table(table)
    ahead = _check_months_ahead(months_ahead)
    first = Month.of(_check_start(start))
    timeout = _check_lock_timeout(lock_timeout_ms)
    months = [first.plus(offset) for offset in range(ahead + 1)]
    with translating():
        async with connection_to(target) as connection:
            if connection.in_transaction() and isinstance(target, AsyncConnection):
                return await _ensure(connection, name, months, timeout)
            async with connection.begin():
                return await _ensure(connection, name, months, timeout)


async def _ensure(
    connection: AsyncConnection, table: str, months: list[Month], lock_timeout_ms: int
) -> EnsureResult:
    await connection.execute(
        text("SELECT set_config('lock_timeout', :value, true)"), {"value": f"{lock_timeout_ms}ms"}
    )
    await connection.execute(
        text(f"SELECT pg_advisory_xact_lock({lock_key_sql()})"), {"table": table}
    )
    existing = await partitions_of(connection, table)
    missing = [month for month in months if not _covered(month, existing)]
    if not missing:
        return EnsureResult((), 0)
    default = next((p.name for p in existing if p.is_default), None)
    columns = (await connection.execute(_COLUMNS_SQL, {"table": table})).scalar_one()
    # The order ATTACH takes them in: parent, then DEFAULT.
    await connection.execute(text(f"LOCK TABLE {quoted(table)} IN SHARE UPDATE EXCLUSIVE MODE"))
    if default is not None:
        await connection.execute(text(f"LOCK TABLE {quoted(default)} IN ACCESS EXCLUSIVE MODE"))
    created: list[str] = []
    moved = 0
    for month in missing:
        moved += await _create(connection, table, month, default, columns)
        created.append(month.partition_name(table))
    return EnsureResult(tuple(created), moved)


def _covered(month: Month, partitions: list[Partition]) -> bool:
    """Whether a partition holds all of ``month``; an overlap in part is an error."""
    for partition in partitions:
        if partition.is_default or partition.lower is None or partition.upper is None:
            continue
        if partition.lower <= month.start and month.end <= partition.upper:
            return True
        if partition.lower < month.end and month.start < partition.upper:
            raise MigrationError(
                f"partition {partition.name} ({partition.lower:%Y-%m-%d} to "
                f"{partition.upper:%Y-%m-%d}) covers part of {month.start:%Y-%m}; "
                "month partitions cannot be added next to it"
            )
    return False


async def _create(
    connection: AsyncConnection, table: str, month: Month, default: str | None, columns: str
) -> int:
    """Build, fill from DEFAULT and attach the partition of ``month``; the rows moved."""
    name = month.partition_name(table)
    exists = await connection.execute(text("SELECT to_regclass(:name)"), {"name": name})
    if exists.scalar() is not None:
        raise MigrationError(
            f"a table {name} exists but is not a partition of {table} (a detached month?); "
            "rename or drop it, then run again"
        )
    lower, upper = _literal(month.start), _literal(month.end)
    partition, parent = quoted(name), quoted(table)
    bounds, key = quoted(f"{name}_bounds"), quoted(partition_column(table))
    await connection.execute(
        text(
            f"CREATE TABLE {partition} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
            " INCLUDING STORAGE INCLUDING COMPRESSION)"
        )
    )
    await connection.execute(
        text(
            f"ALTER TABLE {partition} ADD CONSTRAINT {bounds}"
            f" CHECK ({key} >= {lower} AND {key} < {upper})"
        )
    )
    moved = 0
    if default is not None:
        result = await connection.execute(
            text(
                f"WITH moved AS (DELETE FROM {quoted(default)}"  # noqa: S608 — quoted names
                f" WHERE {key} >= {lower} AND {key} < {upper} RETURNING {columns})"
                f" INSERT INTO {partition} ({columns}) SELECT {columns} FROM moved"
            )
        )
        moved = max(result.rowcount, 0)
    await connection.execute(
        text(
            f"ALTER TABLE {parent} ATTACH PARTITION {partition}"
            f" FOR VALUES FROM ({lower}) TO ({upper})"
        )
    )
    await connection.execute(text(f"ALTER TABLE {partition} DROP CONSTRAINT {bounds}"))
    return moved


def _literal(moment: dt.datetime) -> str:
    """A UTC midnight as a timestamptz literal that no session setting can shift."""
    return f"'{moment:%Y-%m-%d} 00:00:00+00'::timestamptz"
