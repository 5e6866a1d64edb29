"""What the catalog says about a partitioned table: its partitions and their bounds."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Final

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from biotech_ma_db.database import Database
from biotech_ma_db.errors import ValidationError, translate_error
from biotech_ma_db.partitions.naming import is_partition_name, partitioned_tables

__all__ = [
    "Partition",
    "Target",
    "check_table",
    "connection_to",
    "list_partitions",
    "lock_key_sql",
    "partition_tables",
    "partitions_of",
    "translating",
]

Target = Database | AsyncEngine | AsyncConnection
"""Where partition maintenance runs: a ``Database``, an engine or a connection."""

LOCK_NAMESPACE: Final = "biotech_ma_db.partitions:"
"""Prefix of the advisory lock key of one table's partition maintenance."""

# The bound literals are cast back to timestamptz in the same session that printed them,
# so TimeZone and DateStyle cannot skew the round trip.
_PARTITIONS_SQL: Final = text(
    """
    SELECT child.relname AS name,
           bound.expr = 'DEFAULT' AS is_default,
           (regexp_match(bound.expr, $r$FROM \\('([^']+)'\\) TO$r$))[1]::timestamptz AS lower,
           (regexp_match(bound.expr, $r$ TO \\('([^']+)'\\)$r$))[1]::timestamptz AS upper,
           inh.inhdetachpending AS detach_pending,
           greatest(child.reltuples, 0)::bigint AS estimated_rows
    FROM pg_inherits AS inh
    JOIN pg_class AS child ON child.oid = inh.inhrelid
    CROSS JOIN LATERAL (SELECT pg_get_expr(child.relpartbound, child.oid) AS expr) AS bound
    WHERE inh.inhparent = to_regclass(:table)
    ORDER BY bound.expr = 'DEFAULT', lower, child.relname
    """
)
_PARTITION_TABLES_SQL: Final = text(
    "SELECT relname, relispartition FROM pg_class"
    " WHERE relkind IN ('r', 'p') AND relnamespace = current_schema()::regnamespace"
)
_STRATEGY_SQL: Final = text(
    "SELECT partstrat::text FROM pg_partitioned_table WHERE partrelid = to_regclass(:table)"
)


@dataclass(frozen=True, slots=True)
class Partition:
    """One attached partition.

    Attributes:
        name: The partition's table name.
        lower: First moment it holds (``None`` for DEFAULT, or an open MINVALUE bound).
        upper: First moment past it (``None`` for DEFAULT, or an open MAXVALUE bound).
        is_default: The DEFAULT partition.
        detach_pending: A ``DETACH ... CONCURRENTLY`` was interrupted; finalize it.
        estimated_rows: The planner's row estimate (0 before the first ANALYZE).
    """

    name: str
    lower: dt.datetime | None
    upper: dt.datetime | None
    is_default: bool
    detach_pending: bool
    estimated_rows: int


def check_table(table: object) -> str:
    """``table`` if the models declare it partitioned, else a ``ValidationError``."""
    known = partitioned_tables()
    if not isinstance(table, str) or table not in known:
        raise ValidationError("table", f"must be a partitioned table: {', '.join(sorted(known))}")
    return table


def lock_key_sql(parameter: str = "table") -> str:
    """SQL for the advisory lock key of ``:parameter``'s partition maintenance."""
    return f"hashtextextended('{LOCK_NAMESPACE}' || :{parameter}, 0)"


@contextmanager
def translating() -> Iterator[None]:
    """Re-raise driver and SQLAlchemy errors as the library's typed errors."""
    try:
        yield
    except Exception as exc:
        translated = translate_error(exc)
        if translated is exc:
            raise
        raise translated from exc


@asynccontextmanager
async def connection_to(target: Target) -> AsyncIterator[AsyncConnection]:
    """A connection of ``target``: a new one of its engine, or the connection itself."""
    if isinstance(target, AsyncConnection):
        yield target
        return
    engine = target.engine if isinstance(target, Database) else target
    async with engine.connect() as connection:
        yield connection


def partition_tables(connection: Connection) -> set[str]:
    """Tables of the current schema that are partitions, not tables of the models.

    Attached partitions, whatever their name, and tables named as a partition of a
    partitioned model table (a month detached for retention and kept).  Synchronous: for
    schema comparisons, which run on a synchronous connection.
    """
    rows = connection.execute(_PARTITION_TABLES_SQL)
    return {
        str(row.relname) for row in rows if row.relispartition or is_partition_name(row.relname)
    }


async def partitions_of(connection: AsyncConnection, table: str) -> list[Partition]:
    """The partitions attached to ``table``, month partitions by bound, DEFAULT last.

    Raises:
        ValidationError: ``table`` is not range-partitioned in this database (not migrated).
    """
    strategy = (await connection.execute(_STRATEGY_SQL, {"table": table})).scalar()
    if strategy != "r":
        raise ValidationError("table", f"{table} is not range-partitioned in this database")
    rows = await connection.execute(_PARTITIONS_SQL, {"table": table})
    return [
        Partition(
            name=row.name,
            lower=row.lower,
            upper=row.upper,
            is_default=row.is_default,
            detach_pending=row.detach_pending,
            estimated_rows=row.estimated_rows,
        )
        for row in rows
    ]


async def list_partitions(target: Target, *, table: str = "signals") -> list[Partition]:
    """The partitions attached to ``table`` (``signals``), oldest first, DEFAULT last.

    Args:
        target: A ``Database``, an ``AsyncEngine`` or an ``AsyncConnection``.
        table: A table the models partition.

    Raises:
        ValidationError: ``table`` is not a partitioned table.
    """
    name = check_table(table)
    with translating():
        async with connection_to(target) as connection:
            found = await partitions_of(connection, name)
            if not isinstance(target, AsyncConnection):
                await connection.rollback()
            return found
