"""The manifest written next to each dump: what the backup held, and how to check it.

``backup.dump`` gets ``backup.dump.manifest.json``: the format version, when and from
which server and database it was made, the Alembic revision, each table's exact row
count and content checksum (taken in the dump's own snapshot), and the dump file's size
and sha256.  It never holds a host, a user or a password.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from pathlib import Path
from typing import Final, Literal

import pydantic
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from biotech_ma_db.backup._common import (
    BackupError,
    CorruptBackupError,
    Progress,
    ProgressCallback,
)

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_SUFFIX",
    "Manifest",
    "TableStats",
    "check_dump",
    "file_sha256",
    "manifest_path",
    "read_manifest",
    "write_manifest",
]

FORMAT_VERSION: Final = 1
"""Version of the manifest's layout; a reader refuses any other."""

MANIFEST_SUFFIX = ".manifest.json"
"""Appended to the dump's file name to name its manifest."""

_CHUNK = 4 * 1024 * 1024


class TableStats(BaseModel):
    """One table's content in a snapshot.

    Attributes:
        rows: Exact row count (through a partitioned parent, its partitions' rows).
        checksum: md5 over the sum of the rows' md5 digests: independent of row order,
            so it is equal after a restore whenever the rows are.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: int = Field(ge=0)
    checksum: str = Field(pattern=r"^[0-9a-f]{32}$")


class Manifest(BaseModel):
    """What a dump holds, written by :func:`~biotech_ma_db.backup.backup_database`.

    Attributes:
        format_version: :data:`FORMAT_VERSION`.
        created_at: When the snapshot was taken (UTC).
        database: Name of the database that was backed up.
        server_version: Its server's version (``18.1``).
        server_version_num: The same as a number (``180001``).
        pg_dump_version: Version of the ``pg_dump`` that wrote the dump.
        revision: The Alembic revision (comma-separated heads), ``None`` when unmigrated.
        tables: :class:`TableStats` per table: every table of the models that exists,
            plus ``alembic_version``.
        dump_file: The dump's file name (without its folder).
        dump_size: The dump's size in bytes.
        dump_sha256: The dump's sha256, in hex.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: Literal[1] = FORMAT_VERSION
    created_at: AwareDatetime
    database: str
    server_version: str
    server_version_num: int = Field(gt=0)
    pg_dump_version: str
    revision: str | None
    tables: dict[str, TableStats]
    dump_file: str
    dump_size: int = Field(ge=0)
    dump_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @property
    def pg_dump_major(self) -> int:
        """Major version of the ``pg_dump`` that wrote the dump (0 if unreadable)."""
        head = self.pg_dump_version.split(".", 1)[0]
        return int(head) if head.isdigit() else 0


def manifest_path(dump: Path | str) -> Path:
    """Where the manifest of ``dump`` lives: ``dump`` + :data:`MANIFEST_SUFFIX`."""
    path = Path(dump)
    return path.with_name(path.name + MANIFEST_SUFFIX)


def read_manifest(dump: Path | str) -> Manifest:
    """The manifest next to ``dump``.

    Raises:
        BackupError: There is no manifest.
        CorruptBackupError: The manifest is not one this version can read.
    """
    path = manifest_path(dump)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BackupError(
            f"no manifest next to {dump} (expected {path}); a dump is restored with the "
            "manifest that `biotech-ma-db backup` wrote beside it"
        ) from None
    try:
        return Manifest.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'file'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)[:3]
        )
        raise CorruptBackupError(f"{path} is not a valid backup manifest ({problems})") from None


def write_manifest(dump: Path, manifest: Manifest) -> Path:
    """Write ``manifest`` next to ``dump`` (atomically: a reader never sees half of it)."""
    path = manifest_path(dump)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


async def file_sha256(path: Path, progress: ProgressCallback) -> str:
    """The sha256 of ``path`` in hex, reporting ``checking`` progress in bytes."""
    total = (await asyncio.to_thread(path.stat)).st_size
    digest = hashlib.sha256()
    done = 0
    progress(Progress("checking", 0, total))
    with path.open("rb") as stream:  # opening is instant; each read runs in a thread
        while chunk := await asyncio.to_thread(stream.read, _CHUNK):
            digest.update(chunk)
            done += len(chunk)
            progress(Progress("checking", done, total))
    return digest.hexdigest()


async def check_dump(dump: Path, manifest: Manifest, progress: ProgressCallback) -> None:
    """Refuse a dump whose size or sha256 differs from its manifest's.

    Raises:
        BackupError: The dump does not exist.
        CorruptBackupError: The size or the sha256 differs.
    """
    try:
        size = (await asyncio.to_thread(dump.stat)).st_size
    except FileNotFoundError:
        raise BackupError(f"no dump file {dump}") from None
    where = f"{dump} does not match its manifest {manifest_path(dump).name}"
    if size != manifest.dump_size:
        raise CorruptBackupError(
            f"sha256 checksum mismatch: {where}: it is {size:,} bytes, the manifest says "
            f"{manifest.dump_size:,} (truncated or corrupted); nothing was restored"
        )
    actual = await file_sha256(dump, progress)
    if actual != manifest.dump_sha256:
        raise CorruptBackupError(
            f"sha256 checksum mismatch: {where}: the file hashes to {actual[:16]}…, the "
            f"manifest says {manifest.dump_sha256[:16]}… (corrupted, or not the file that "
            "was backed up); nothing was restored"
        )


def utc_now() -> dt.datetime:
    """The current time in UTC (the manifest's ``created_at``)."""
    return dt.datetime.now(dt.UTC)
