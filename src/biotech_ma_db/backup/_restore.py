"""``restore_database`` and ``verify_backup``: restore a dump, then hold it to its manifest.

The dump's size and sha256 are checked against the manifest before anything is created.
``pg_restore --single-transaction --exit-on-error --no-owner`` then either restores
everything or nothing, and a database this module created for a restore that failed is
dropped again.  The restored database is counted and checksummed as the backup was, and
every difference from the manifest is reported.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from biotech_ma_db.backup._common import (
    BackupError,
    ProgressCallback,
    ignore_progress,
    typed_errors,
)
from biotech_ma_db.backup._endpoint import Endpoint
from biotech_ma_db.backup._manifest import Manifest, check_dump, read_manifest
from biotech_ma_db.backup._stats import DatabaseStats, collect_stats, pin_output_settings
from biotech_ma_db.backup._tools import TableProgress, find_tool, run_tool

__all__ = ["Difference", "VerifyReport", "compare", "restore_database", "verify_backup"]

_APPLICATION = "biotech-ma-db restore"
_SCRATCH_PREFIX = "bmadb_verify_"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_USER_RELATIONS_SQL = """
SELECT count(*) FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
"""


@dataclass(frozen=True, slots=True)
class Difference:
    """One way the restored database differs from the manifest.

    Attributes:
        item: The table, or ``alembic revision``.
        aspect: ``rows``, ``checksum``, ``table`` (missing) or ``revision``.
        expected: The manifest's value.
        actual: The restored database's value.
    """

    item: str
    aspect: str
    expected: str
    actual: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """A restore held to its manifest.

    Attributes:
        database: The database restored into.
        kept: Whether that database still exists (a verified scratch copy is dropped).
        manifest: The backup's manifest.
        restored: What the restored database holds.
        differences: Every difference; empty when the restore matches the backup.
    """

    database: str
    kept: bool
    manifest: Manifest
    restored: DatabaseStats
    differences: tuple[Difference, ...]

    @property
    def ok(self) -> bool:
        """True when the restored database matches the manifest exactly."""
        return not self.differences


def compare(manifest: Manifest, restored: DatabaseStats) -> tuple[Difference, ...]:
    """Every difference between ``manifest`` and ``restored``: revision, counts, checksums."""
    found: list[Difference] = []
    if manifest.revision != restored.revision:
        found.append(
            Difference(
                "alembic revision",
                "revision",
                manifest.revision or "none",
                restored.revision or "none",
            )
        )
    for name, expected in sorted(manifest.tables.items()):
        actual = restored.tables.get(name)
        if actual is None:
            found.append(Difference(name, "table", "present", "missing"))
            continue
        if actual.rows != expected.rows:
            found.append(Difference(name, "rows", str(expected.rows), str(actual.rows)))
        if actual.checksum != expected.checksum:
            found.append(Difference(name, "checksum", expected.checksum, actual.checksum))
    return tuple(found)


def _checked_name(name: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise BackupError(
            f"database name {name!r} must be lower-case letters, digits and underscores, "
            "starting with a letter or underscore (at most 63)"
        )
    return name


async def verify_backup(
    dump: Path | str,
    url: str | URL,
    *,
    target_db: str | None = None,
    keep: bool = False,
    privileges: bool = True,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Restore ``dump`` into a new scratch database and compare it with its manifest.

    Args:
        dump: The dump file; its manifest is read from beside it.
        url: An admin connection to the server to restore on (a role that may create
            databases); its database is used only to create and drop the scratch one.
        target_db: Name of the scratch database (it must not exist); a unique
            ``bmadb_verify_…`` name by default.
        keep: Keep the scratch database afterwards (it is dropped by default).
        privileges: Restore grants too (``False``: ``--no-privileges``, for a server
            without the backup's roles).
        progress: Called with ``checking``, ``restoring`` and ``comparing`` reports.

    Returns:
        The report; ``report.ok`` tells whether the restore matched exactly.

    Raises:
        CorruptBackupError: The dump's size or sha256 differs from the manifest's
            (nothing was created).
        BackupError: The scratch database exists, or ``pg_restore`` failed (nothing is
            left behind).
    """
    name = _checked_name(target_db or f"{_SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}")
    with typed_errors():
        return await _restore(
            Path(dump), url, name, scratch=True, keep=keep, privileges=privileges, progress=progress
        )


async def restore_database(
    dump: Path | str,
    url: str | URL,
    target_db: str,
    *,
    privileges: bool = True,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Restore ``dump`` into ``target_db`` (new, or existing and empty) and compare it.

    A database that holds any table, view or sequence is refused: a restore never
    overwrites.  If ``pg_restore`` fails, a database this call created is dropped and an
    existing empty one stays empty.

    Args:
        dump: The dump file; its manifest is read from beside it.
        url: An admin connection to the server (a role that may create databases).
        target_db: The database to restore into.
        privileges: Restore grants too (``False``: ``--no-privileges``).
        progress: Called with ``checking``, ``restoring`` and ``comparing`` reports.

    Returns:
        The report (the database is kept whatever it says).

    Raises:
        CorruptBackupError: The dump does not match its manifest (nothing was created).
        BackupError: ``target_db`` is not empty, or ``pg_restore`` failed.
    """
    with typed_errors():
        return await _restore(
            Path(dump),
            url,
            _checked_name(target_db),
            scratch=False,
            keep=True,
            privileges=privileges,
            progress=progress,
        )


@asynccontextmanager
async def _autocommit(endpoint: Endpoint) -> AsyncIterator[AsyncConnection]:
    engine = endpoint.engine(_APPLICATION)
    try:
        async with engine.connect() as plain:
            yield await plain.execution_options(isolation_level="AUTOCOMMIT")
    finally:
        await engine.dispose()


async def _prepare_target(admin: Endpoint, name: str, *, scratch: bool) -> tuple[bool, int]:
    """Create ``name`` unless it exists and may be used; returns (created, server major)."""
    async with _autocommit(admin) as connection:
        major = (
            await connection.execute(text("SELECT current_setting('server_version_num')::int"))
        ).scalar_one() // 10_000
        exists = (
            await connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
        ).scalar() is not None
        if not exists:
            # template0: nothing added to template1 can clash with the dump's objects.
            await connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
            return True, major
    if scratch:
        raise BackupError(f"database {name} already exists; a verification restores into a new one")
    async with _autocommit(admin.with_database(name)) as connection:
        relations = (await connection.execute(text(_USER_RELATIONS_SQL))).scalar_one()
    if relations:
        raise BackupError(
            f"database {name} is not empty ({relations} tables, views or sequences); "
            "restore into a new or empty database"
        )
    return False, major


async def _drop(admin: Endpoint, name: str) -> None:
    async with _autocommit(admin) as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _restored_stats(
    target: Endpoint, manifest: Manifest, report: ProgressCallback
) -> DatabaseStats:
    engine = target.engine(_APPLICATION)
    try:
        async with engine.connect() as plain:
            connection = await plain.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            async with connection.begin():
                await pin_output_settings(connection)
                return await collect_stats(
                    connection, sorted(manifest.tables), report, phase="comparing"
                )
    finally:
        await engine.dispose()


async def _pg_restore(
    dump: Path,
    target: Endpoint,
    manifest: Manifest,
    major: int,
    *,
    privileges: bool,
    report: ProgressCallback,
) -> None:
    tool = await asyncio.to_thread(find_tool, "pg_restore", max(major, manifest.pg_dump_major))
    rows = {name: table.rows for name, table in manifest.tables.items()}
    tables = TableProgress("restoring", rows, report)
    arguments = [
        "--exit-on-error",
        "--single-transaction",
        "--no-owner",
        *([] if privileges else ["--no-privileges"]),
        "--verbose",
        "--no-password",
        f"--dbname={target.database}",
        str(dump),
    ]
    with target.client_environment(_APPLICATION) as env:
        await run_tool(tool, arguments, env, tables)
    tables.finish()


async def _restore(
    dump: Path,
    url: str | URL,
    name: str,
    *,
    scratch: bool,
    keep: bool,
    privileges: bool,
    progress: ProgressCallback | None,
) -> VerifyReport:
    report = progress or ignore_progress
    manifest = await asyncio.to_thread(read_manifest, dump)
    await check_dump(dump, manifest, report)
    admin = Endpoint.parse(url)
    target = admin.with_database(name)
    created, major = await _prepare_target(admin, name, scratch=scratch)
    kept = True
    try:
        try:
            await _pg_restore(dump, target, manifest, major, privileges=privileges, report=report)
        except BaseException:
            if created:
                await _drop(admin, name)
            kept = not created
            raise
        restored = await _restored_stats(target, manifest, report)
    finally:
        if scratch and not keep and kept:
            await _drop(admin, name)
            kept = False
    return VerifyReport(name, kept, manifest, restored, compare(manifest, restored))
