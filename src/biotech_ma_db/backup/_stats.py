"""Row counts and content checksums of a database, computed in SQL inside one snapshot.

A table's checksum is the md5 of ``"rows:high:low"``: its row count and the sums of the
first and the second halves of each row's ``md5(row::text)``, read as 64-bit integers.
A sum does not depend on the order rows come back in, needs no sort and no primary key,
and streams in constant memory; the text form of a row is pinned by setting every
parameter that shapes it (time zone, date and interval styles, float digits, bytea
output) for the transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from biotech_ma_db.backup._common import Phase, Progress, ProgressCallback
from biotech_ma_db.backup._manifest import TableStats
from biotech_ma_db.models import Base

__all__ = [
    "VERSION_TABLE",
    "DatabaseStats",
    "backup_tables",
    "collect_stats",
    "pin_output_settings",
]

VERSION_TABLE = "alembic_version"
"""Alembic's table: backed up and counted with the models' tables."""

_PINNED_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "1",
    "bytea_output": "hex",
    # A role that row-level security filters gets an error, not a partial count (pg_dump
    # refuses such a role the same way).
    "row_security": "off",
    # A long scan or a long pg_dump must not be cut off by a role's or server's defaults.
    "statement_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
}

# One scan, grouped by the physical table a row lives in: the parent's sums are the sums of
# its partitions', and the per-partition counts let pg_dump's progress advance per partition.
_CHECKSUM_SQL = """
SELECT tableoid::regclass::text AS part,
       count(*) AS row_count,
       coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint), 0) AS high,
       coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint), 0) AS low
FROM (SELECT t.tableoid, md5(t::text) AS h FROM {table} AS t) AS hashed
GROUP BY tableoid
"""


@dataclass(frozen=True, slots=True)
class DatabaseStats:
    """What a database held in one snapshot.

    Attributes:
        server_version: ``server_version`` (``18.1``).
        server_version_num: ``server_version_num`` (``180001``).
        revision: The Alembic revision(s), comma-separated; ``None`` when unmigrated.
        tables: Row count and checksum of each table asked for that exists.
        stored_rows: Row count per table that stores rows: a partitioned table's
            partitions instead of the table itself (what ``pg_dump`` dumps one by one).
    """

    server_version: str
    server_version_num: int
    revision: str | None
    tables: dict[str, TableStats]
    stored_rows: dict[str, int]

    @property
    def server_major(self) -> int:
        """The server's major version (``18``)."""
        return self.server_version_num // 10_000


def backup_tables() -> list[str]:
    """The tables a manifest counts: every table of the models, and ``alembic_version``.

    A partitioned table is listed once, by its parent: counting through the parent
    includes every partition.
    """
    return sorted({table.fullname for table in Base.metadata.tables.values()} | {VERSION_TABLE})


def _quoted(name: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


async def pin_output_settings(connection: AsyncConnection) -> None:
    """Fix, for the current transaction, every setting that shapes a row's text."""
    for name, value in _PINNED_SETTINGS.items():
        await connection.execute(
            text("SELECT set_config(:name, :value, true)"), {"name": name, "value": value}
        )


async def collect_stats(
    connection: AsyncConnection,
    tables: Sequence[str],
    progress: ProgressCallback,
    phase: Phase = "counting",
) -> DatabaseStats:
    """Count and checksum ``tables`` on ``connection``, reporting ``phase`` in tables.

    Call it inside a ``REPEATABLE READ`` transaction after :func:`pin_output_settings`,
    so that every table is read in the same snapshot. Tables that do not exist are left
    out of the result.
    """
    version, version_num = (
        await connection.execute(
            text(
                "SELECT current_setting('server_version'), "
                "current_setting('server_version_num')::int"
            )
        )
    ).one()
    present = [
        name
        for name in tables
        if (
            await connection.execute(
                text("SELECT to_regclass(:name) IS NOT NULL"), {"name": _quoted(name)}
            )
        ).scalar_one()
    ]
    found: dict[str, TableStats] = {}
    stored: dict[str, int] = {}
    progress(Progress(phase, 0, len(present)))
    for done, name in enumerate(present, start=1):
        parts = (await connection.execute(text(_CHECKSUM_SQL.format(table=_quoted(name))))).all()
        rows = sum(int(part.row_count) for part in parts)
        high = sum(int(part.high) for part in parts)
        low = sum(int(part.low) for part in parts)
        digest = hashlib.md5(f"{rows}:{high}:{low}".encode(), usedforsecurity=False)
        found[name] = TableStats(rows=rows, checksum=digest.hexdigest())
        stored.update({str(part.part): int(part.row_count) for part in parts})
        progress(Progress(phase, done, len(present), name))
    revision = None
    if VERSION_TABLE in found:
        revision = (
            await connection.execute(
                text(
                    f"SELECT string_agg(version_num, ',' ORDER BY version_num) "  # noqa: S608
                    f"FROM {_quoted(VERSION_TABLE)}"
                )
            )
        ).scalar_one()
    return DatabaseStats(str(version), int(version_num), revision, found, stored)
