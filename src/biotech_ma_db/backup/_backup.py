"""``backup_database``: a ``pg_dump`` custom-format dump and its manifest, from one snapshot.

A ``REPEATABLE READ`` transaction exports its snapshot (``pg_export_snapshot()``),
counts and checksums every table in it, and stays open while ``pg_dump --snapshot``
dumps that very snapshot: rows committed meanwhile by other sessions are in neither
the dump nor the manifest, so the two always agree.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL

from biotech_ma_db.backup._common import (
    BackupError,
    ProgressCallback,
    ignore_progress,
    typed_errors,
)
from biotech_ma_db.backup._endpoint import Endpoint
from biotech_ma_db.backup._manifest import (
    Manifest,
    file_sha256,
    manifest_path,
    utc_now,
    write_manifest,
)
from biotech_ma_db.backup._stats import (
    DatabaseStats,
    backup_tables,
    collect_stats,
    pin_output_settings,
)
from biotech_ma_db.backup._tools import PgTool, TableProgress, find_tool, run_tool

__all__ = ["backup_database"]

_APPLICATION = "biotech-ma-db backup"


async def backup_database(
    url: str | URL,
    path: Path | str,
    *,
    progress: ProgressCallback | None = None,
    overwrite: bool = False,
) -> Manifest:
    """Dump the database at ``url`` to ``path`` and write its manifest beside it.

    The dump is ``pg_dump --format=custom``; the manifest (``path`` +
    ``.manifest.json``) holds the revision and each table's row count and checksum, all
    from the dump's own snapshot, and the dump's size and sha256.  Both files appear only
    when complete: a failed backup leaves neither.

    Args:
        url: The database (any ``postgresql://`` URL); TLS as for the application.
        path: The dump file to write.
        progress: Called with ``counting`` (tables), ``dumping`` (rows) and ``checking``
            (bytes) reports.
        overwrite: Replace an existing dump and manifest instead of refusing.

    Returns:
        The manifest written.

    Raises:
        BackupError: ``path`` exists, no suitable ``pg_dump`` was found, or it failed.
        DatabaseError: The database could not be read.
    """
    dump = Path(path)
    report = progress or ignore_progress
    if not overwrite:
        for existing in (dump, manifest_path(dump)):
            if existing.exists():
                raise BackupError(f"{existing} already exists; refusing to overwrite it")
    endpoint = Endpoint.parse(url)
    partial = dump.with_name(f".{dump.name}.partial")
    try:
        with typed_errors():
            stats, tool = await _dump_in_snapshot(endpoint, partial, report)
        size = (await asyncio.to_thread(partial.stat)).st_size
        sha256 = await file_sha256(partial, report)
        await asyncio.to_thread(partial.replace, dump)
    finally:
        await asyncio.to_thread(partial.unlink, missing_ok=True)
    manifest = Manifest(
        created_at=utc_now(),
        database=endpoint.database,
        server_version=stats.server_version,
        server_version_num=stats.server_version_num,
        pg_dump_version=tool.version,
        revision=stats.revision,
        tables=stats.tables,
        dump_file=dump.name,
        dump_size=size,
        dump_sha256=sha256,
    )
    await asyncio.to_thread(write_manifest, dump, manifest)
    return manifest


async def _dump_in_snapshot(
    endpoint: Endpoint, partial: Path, report: ProgressCallback
) -> tuple[DatabaseStats, PgTool]:
    engine = endpoint.engine(_APPLICATION)
    try:
        async with engine.connect() as plain:
            connection = await plain.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            async with connection.begin():
                snapshot = (
                    await connection.execute(text("SELECT pg_export_snapshot()"))
                ).scalar_one()
                await pin_output_settings(connection)
                stats = await collect_stats(connection, backup_tables(), report)
                tool = await asyncio.to_thread(find_tool, "pg_dump", stats.server_major)
                tables = TableProgress("dumping", stats.stored_rows, report)
                arguments = [
                    "--format=custom",
                    f"--file={partial}",
                    f"--snapshot={snapshot}",
                    "--verbose",
                    "--no-password",
                ]
                with endpoint.client_environment(_APPLICATION) as env:
                    await run_tool(tool, arguments, env, tables)
                tables.finish()
    finally:
        await engine.dispose()
    return stats, tool
