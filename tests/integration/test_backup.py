"""Backups and verified restores through the Python API, on the demo data, with real pg_dump.

Each module loads a small synthetic dataset once and backs it up once; tests that tamper
with a backup work on copies of its two files.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from biotech_ma_db import Database, embedded
from biotech_ma_db.backup import (
    BackupError,
    CorruptBackupError,
    Manifest,
    Progress,
    backup_database,
    backup_tables,
    choose_tool,
    find_tool,
    manifest_path,
    read_manifest,
    restore_database,
    verify_backup,
)
from biotech_ma_db.backup._endpoint import Endpoint
from biotech_ma_db.errors import DatabaseError
from biotech_ma_db.models import Base
from biotech_ma_db.sampledata import DatasetSpec, load_dataset
from biotech_ma_db.testing import databases

SPEC = DatasetSpec(
    companies=30, drug_candidates=60, signals=1_500, weeks=6, match_targets=5, batch_size=500
)


async def _load(url: str) -> None:
    async with Database.from_url(url) as db:
        await load_dataset(db, SPEC)


def demo_database(postgres_url: str, migrated_database_url: str, prefix: str) -> tuple[str, str]:
    """A new database at head holding the small demo dataset: (name, url)."""
    template = make_url(migrated_database_url).database or ""
    name = databases.unique_name(prefix)
    url = databases.clone_database(postgres_url, template, name)
    databases.run_sync(lambda: _load(url))
    return name, url


async def query(url: str, sql: str) -> list[tuple[object, ...]]:
    async with Database.from_url(url) as db, db.session() as session:
        return [tuple(row) for row in (await session.execute(text(sql))).all()]


async def database_names(postgres_url: str) -> set[str]:
    return {str(row[0]) for row in await query(postgres_url, "SELECT datname FROM pg_database")}


async def row_counts(url: str) -> dict[str, int]:
    counts = {}
    for table in backup_tables():
        rows = await query(url, f'SELECT count(*) FROM "{table}"')
        counts[table] = int(str(rows[0][0]))
    return counts


def copy_backup(source: Path, folder: Path, name: str = "copy.dump") -> Path:
    """Copy a dump and its manifest into ``folder``; returns the copied dump."""
    target = folder / name
    shutil.copyfile(source, target)
    shutil.copyfile(manifest_path(source), manifest_path(target))
    return target


def truncated_copy(source: Path, folder: Path) -> Path:
    """A copy cut at 80% (past the table of contents, into the data) whose manifest's
    size and sha256 are recomputed, so that only pg_restore can notice."""
    dump = copy_backup(source, folder, "truncated.dump")
    raw = source.read_bytes()[: source.stat().st_size * 4 // 5]
    dump.write_bytes(raw)
    rewrite_manifest(dump, dump_size=len(raw), dump_sha256=hashlib.sha256(raw).hexdigest())
    return dump


def flipped_copy(source: Path, folder: Path) -> Path:
    """A copy with 16 bytes in the middle inverted; its manifest unchanged."""
    dump = copy_backup(source, folder, "flipped.dump")
    raw = bytearray(dump.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 16] = bytes(b ^ 0xFF for b in raw[middle : middle + 16])
    dump.write_bytes(raw)
    return dump


def file_names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def rewrite_manifest(dump: Path, **changes: object) -> Manifest:
    """Replace fields of ``dump``'s manifest (as an attacker or a bad disk would)."""
    manifest = read_manifest(dump).model_copy(update=changes)
    manifest_path(dump).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return manifest


@pytest.fixture(scope="module", name="demo_url")
def fixture_demo_url(postgres_url: str, migrated_database_url: str) -> Iterator[str]:
    """A migrated database holding the small demo dataset (read-only in these tests)."""
    name, url = demo_database(postgres_url, migrated_database_url, "bmadb_backup")
    try:
        yield url
    finally:
        databases.drop_database(postgres_url, name)


@pytest.fixture(scope="module", name="demo_backup")
def fixture_demo_backup(demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One backup of the demo database (copy it before changing it)."""
    path = tmp_path_factory.mktemp("backup") / "demo.dump"
    databases.run_sync(lambda: backup_database(demo_url, path))
    return path


class TestToolChoice:
    """pg_dump must be at least the server's major version: PATH first, then the wheel."""

    def test_wheel_tool_found(self) -> None:
        wheel = embedded.bin_dir() / "pg_dump"
        tool = choose_tool("pg_dump", 18, [wheel])
        assert tool.path == wheel
        assert tool.major >= 18
        assert tool.version.startswith(f"{tool.major}.")

    def test_missing_candidates_skipped(self, tmp_path: Path) -> None:
        wheel = embedded.bin_dir() / "pg_dump"
        assert choose_tool("pg_dump", 18, [tmp_path / "pg_dump", wheel]).path == wheel

    def test_none_new_enough(self) -> None:
        wheel = embedded.bin_dir() / "pg_restore"
        with pytest.raises(BackupError) as caught:
            choose_tool("pg_restore", 99, [wheel])
        message = str(caught.value)
        assert "no pg_restore of PostgreSQL 99 or newer" in message
        assert f"{wheel} is 1" in message  # names what it found and its version
        assert "biotech-ma-db[embedded]" in message

    def test_nothing_found(self) -> None:
        with pytest.raises(BackupError, match=r"pg_dump of PostgreSQL 18 or newer \(none found\)"):
            choose_tool("pg_dump", 18, [])

    def test_path_preferred_only_when_new_enough(self) -> None:
        on_path = shutil.which("pg_dump")
        if on_path is None:
            pytest.skip("no pg_dump on PATH")
        wheel = embedded.bin_dir() / "pg_dump"
        candidates = [Path(on_path), wheel]
        path_major = choose_tool("pg_dump", 0, [Path(on_path)]).major
        wheel_major = choose_tool("pg_dump", 0, [wheel]).major
        assert choose_tool("pg_dump", path_major, candidates).path == Path(on_path)
        if wheel_major > path_major:
            assert choose_tool("pg_dump", wheel_major, candidates).path == wheel

    def test_find_tool_for_this_server(self) -> None:
        tool = find_tool("pg_dump", 18)
        assert tool.major >= 18

    async def test_an_older_pg_dump_refuses_the_server(self, demo_url: str) -> None:
        """Why the choice matters: a PATH pg_dump older than the server fails outright."""
        on_path = shutil.which("pg_dump")
        if on_path is None or choose_tool("pg_dump", 0, [Path(on_path)]).major >= 18:
            pytest.skip("no pg_dump older than the server on PATH")
        endpoint = Endpoint.parse(demo_url)
        with endpoint.client_environment("test") as env:
            result = await asyncio.to_thread(
                subprocess.run,
                [on_path, "--schema-only", "--file=/dev/null"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
        assert result.returncode != 0
        assert "server version mismatch" in result.stderr


class TestClientEnvironment:
    """pg_dump gets its connection from PG* variables and its password from a passfile."""

    def test_password_in_a_private_passfile(self) -> None:
        url = "postgresql://backup:s3cret:pw\\x@db.example:6543/biotech_ma?sslmode=require"
        endpoint = Endpoint.parse(url)
        with endpoint.client_environment("test") as env:
            passfile = Path(env["PGPASSFILE"])
            assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
            assert passfile.read_text() == "*:*:*:*:s3cret\\:pw\\\\x\n"
            assert not any("s3cret" in value for value in env.values())
            assert env["PGHOST"] == "db.example"
            assert env["PGPORT"] == "6543"
            assert env["PGUSER"] == "backup"
            assert env["PGDATABASE"] == "biotech_ma"
            assert env["PGSSLMODE"] == "require"
        assert not passfile.exists()

    def test_socket_url_and_inherited_variables(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PGSERVICE", "elsewhere")
        monkeypatch.setenv("PGPASSWORD", "inherited")
        endpoint = Endpoint.parse("postgresql+asyncpg://postgres@/demo?host=/run/pg&port=5433")
        with endpoint.client_environment("test") as env:
            assert env["PGHOST"] == "/run/pg"
            assert env["PGPORT"] == "5433"
            assert "PGSERVICE" not in env
            assert "PGPASSWORD" not in env
            assert "PGPASSFILE" not in env


class TestBackup:
    """backup_database: a custom-format dump and a manifest that describes it exactly."""

    async def test_manifest(self, demo_url: str, demo_backup: Path) -> None:
        manifest = read_manifest(demo_backup)
        raw = await asyncio.to_thread(demo_backup.read_bytes)
        assert raw.startswith(b"PGDMP")  # pg_dump's custom format
        assert manifest.dump_size == len(raw)
        assert manifest.dump_sha256 == hashlib.sha256(raw).hexdigest()
        assert manifest.dump_file == "demo.dump"
        assert (
            manifest.revision
            == (await query(demo_url, "SELECT version_num FROM alembic_version"))[0][0]
        )
        assert manifest.server_version_num >= 180000
        assert int(manifest.pg_dump_version.split(".")[0]) >= 18
        assert set(manifest.tables) == set(Base.metadata.tables) | {"alembic_version"}
        assert {name: t.rows for name, t in manifest.tables.items()} == await row_counts(demo_url)
        assert manifest.tables["signals"].rows == SPEC.signals
        assert manifest.tables["companies"].rows == SPEC.companies + 24  # and the acquirers
        assert make_url(demo_url).database == manifest.database

    def test_manifest_holds_no_connection_details(self, demo_backup: Path) -> None:
        document = json.loads(manifest_path(demo_backup).read_text())
        assert set(document) == {
            "format_version", "created_at", "database", "server_version",
            "server_version_num", "pg_dump_version", "revision", "tables", "dump_file",
            "dump_size", "dump_sha256",
        }  # fmt: skip
        assert document["format_version"] == 1
        assert "host" not in manifest_path(demo_backup).read_text()

    async def test_progress(self, demo_url: str, tmp_path: Path) -> None:
        events: list[Progress] = []
        manifest = await backup_database(demo_url, tmp_path / "b.dump", progress=events.append)
        phases = [event.phase for event in events]
        assert sorted(set(phases), key=phases.index) == ["counting", "dumping", "checking"]
        dumping = [event for event in events if event.phase == "dumping"]
        total = sum(table.rows for table in manifest.tables.values())
        assert dumping[0].done == 0
        assert dumping[-1].done == dumping[-1].total == total
        # Parsed from pg_dump -v: the table, or its partitions when it is partitioned.
        assert any((event.table or "").startswith("signals") for event in dumping)
        assert [e.done for e in dumping] == sorted(e.done for e in dumping)

    async def test_refuses_to_overwrite(self, demo_url: str, demo_backup: Path) -> None:
        before = read_manifest(demo_backup)
        with pytest.raises(BackupError, match="already exists; refusing to overwrite"):
            await backup_database(demo_url, demo_backup)
        assert read_manifest(demo_backup) == before

    async def test_overwrite(self, demo_url: str, demo_backup: Path, tmp_path: Path) -> None:
        copy = copy_backup(demo_backup, tmp_path)
        manifest = await backup_database(demo_url, copy, overwrite=True)
        assert read_manifest(copy) == manifest
        assert manifest.tables == read_manifest(demo_backup).tables  # same data, same sums

    async def test_password_never_written(self, demo_url: str, tmp_path: Path) -> None:
        # The test server trusts local sockets, so the password is carried but unused.
        url = make_url(demo_url).set(password="s3cret-backup-pw")
        await backup_database(url, tmp_path / "p.dump")
        assert "s3cret-backup-pw" not in manifest_path(tmp_path / "p.dump").read_text()
        assert file_names(tmp_path) == ["p.dump", "p.dump.manifest.json"]

    async def test_failed_backup_leaves_no_file(self, demo_url: str, tmp_path: Path) -> None:
        missing = make_url(demo_url).set(database="bmadb_no_such_database")
        with pytest.raises(DatabaseError) as caught:
            await backup_database(missing, tmp_path / "x.dump")
        assert caught.value.sqlstate == "3D000"  # invalid catalog name
        assert file_names(tmp_path) == []

    async def test_failed_pg_dump_is_reported(self, demo_url: str, tmp_path: Path) -> None:
        """pg_dump's own error is the message (here: a folder that does not exist)."""
        with pytest.raises(BackupError, match=r"pg_dump 1\d\.\d+ failed: could not open output"):
            await backup_database(demo_url, tmp_path / "missing" / "x.dump")
        assert file_names(tmp_path) == []

    async def test_checksums_see_content(
        self, postgres_url: str, demo_url: str, demo_backup: Path, tmp_path: Path
    ) -> None:
        """One changed value in a copy changes that table's checksum, and only that one."""
        name = databases.unique_name("bmadb_backup_edit")
        template = make_url(demo_url).database or ""
        url = await asyncio.to_thread(databases.clone_database, postgres_url, template, name)
        try:
            async with Database.from_url(url) as db, db.session() as session:
                await session.execute(
                    text(
                        "UPDATE companies SET name = name || '.' "
                        "WHERE id = (SELECT min(id) FROM companies)"
                    )
                )
                await session.commit()
            edited = await backup_database(url, tmp_path / "edited.dump")
        finally:
            await asyncio.to_thread(databases.drop_database, postgres_url, name)
        original = read_manifest(demo_backup)
        changed = {n for n, t in edited.tables.items() if t != original.tables[n]}
        assert changed == {"companies"}
        assert edited.tables["companies"].rows == original.tables["companies"].rows

    async def test_concurrent_writers_stay_out(
        self, postgres_url: str, migrated_database_url: str, tmp_path: Path
    ) -> None:
        """Rows committed after the snapshot is taken are in neither the counts nor the dump."""
        name, url = await asyncio.to_thread(
            demo_database, postgres_url, migrated_database_url, "bmadb_backup_live"
        )
        written: list[str] = []

        async def insert(ticker: str) -> None:
            async with Database.from_url(url) as db, db.session() as session:
                await session.execute(
                    text("INSERT INTO companies (ticker, name) VALUES (:t, :n)"),
                    {"t": ticker, "n": f"Concurrent {ticker}"},
                )
                await session.commit()
            written.append(ticker)

        def writer(event: Progress) -> None:
            # The start of counting (snapshot exported) and of dumping (pg_dump not yet
            # started): another session commits a company each time, and waits for it.
            if event.done == 0 and event.table is None and event.phase in {"counting", "dumping"}:
                databases.run_sync(lambda: insert(f"ZZW{len(written) + 1}"))

        try:
            before = await row_counts(url)
            dump = tmp_path / "live.dump"
            manifest = await backup_database(url, dump, progress=writer)
            assert written == ["ZZW1", "ZZW2"]
            assert (await row_counts(url))["companies"] == before["companies"] + 2
            assert manifest.tables["companies"].rows == before["companies"]
            report = await verify_backup(dump, postgres_url)
        finally:
            await asyncio.to_thread(databases.drop_database, postgres_url, name)
        assert report.ok, report.differences
        assert report.restored.tables["companies"].rows == before["companies"]


class TestVerify:
    """verify_backup: sha256 first, a scratch restore in one transaction, then a comparison."""

    async def test_verified(self, postgres_url: str, demo_backup: Path) -> None:
        before = await database_names(postgres_url)
        events: list[Progress] = []
        report = await verify_backup(demo_backup, postgres_url, progress=events.append)
        assert report.ok, report.differences
        assert report.differences == ()
        assert report.restored.tables == report.manifest.tables
        assert report.restored.revision == report.manifest.revision
        assert report.database.startswith("bmadb_verify_")
        assert not report.kept
        assert await database_names(postgres_url) == before
        phases = {event.phase for event in events}
        assert phases == {"checking", "restoring", "comparing"}

    async def test_keep(self, postgres_url: str, demo_backup: Path) -> None:
        name = databases.unique_name("bmadb_kept")
        report = await verify_backup(demo_backup, postgres_url, target_db=name, keep=True)
        try:
            assert report.ok
            assert report.kept
            assert name in await database_names(postgres_url)
            restored = databases.database_url(postgres_url, name)
            assert await row_counts(restored) == {
                n: t.rows for n, t in report.manifest.tables.items()
            }
        finally:
            await asyncio.to_thread(databases.drop_database, postgres_url, name)

    async def test_flipped_bytes(
        self, postgres_url: str, demo_backup: Path, tmp_path: Path
    ) -> None:
        dump = flipped_copy(demo_backup, tmp_path)
        before = await database_names(postgres_url)
        with pytest.raises(CorruptBackupError) as caught:
            await verify_backup(dump, postgres_url)
        message = str(caught.value)
        assert message.startswith("sha256 checksum mismatch")
        assert "nothing was restored" in message
        assert await database_names(postgres_url) == before

    async def test_tampered_counts(
        self, postgres_url: str, demo_backup: Path, tmp_path: Path
    ) -> None:
        dump = copy_backup(demo_backup, tmp_path)
        manifest = read_manifest(dump)
        tables = dict(manifest.tables)
        tables["signals"] = tables["signals"].model_copy(
            update={"rows": tables["signals"].rows + 1}
        )
        rewrite_manifest(dump, tables=tables, revision="9999")
        before = await database_names(postgres_url)
        report = await verify_backup(dump, postgres_url)
        assert not report.ok
        found = {(d.item, d.aspect, d.expected, d.actual) for d in report.differences}
        assert found == {
            ("alembic revision", "revision", "9999", manifest.revision),
            ("signals", "rows", str(SPEC.signals + 1), str(SPEC.signals)),
        }
        assert await database_names(postgres_url) == before

    async def test_tampered_checksum(
        self, postgres_url: str, demo_backup: Path, tmp_path: Path
    ) -> None:
        dump = copy_backup(demo_backup, tmp_path)
        tables = dict(read_manifest(dump).tables)
        tables["companies"] = tables["companies"].model_copy(update={"checksum": "0" * 32})
        rewrite_manifest(dump, tables=tables)
        report = await verify_backup(dump, postgres_url)
        assert [(d.item, d.aspect, d.expected) for d in report.differences] == [
            ("companies", "checksum", "0" * 32)
        ]

    async def test_truncated_with_recomputed_sha(
        self, postgres_url: str, demo_backup: Path, tmp_path: Path
    ) -> None:
        """Only pg_restore can notice: the restore fails whole and its database is dropped."""
        dump = truncated_copy(demo_backup, tmp_path)
        before = await database_names(postgres_url)
        events: list[Progress] = []
        name = databases.unique_name("bmadb_truncated")
        with pytest.raises(BackupError, match=r"pg_restore .* failed: .*end of file"):
            await verify_backup(dump, postgres_url, target_db=name, progress=events.append)
        # It had started loading data, inside the transaction that was rolled back.
        assert any(e.phase == "restoring" and e.table for e in events)
        assert await database_names(postgres_url) == before

    async def test_missing_manifest(
        self, postgres_url: str, demo_backup: Path, tmp_path: Path
    ) -> None:
        dump = tmp_path / "alone.dump"
        shutil.copyfile(demo_backup, dump)
        with pytest.raises(BackupError, match="no manifest next to"):
            await verify_backup(dump, postgres_url)

    async def test_unreadable_manifest(
        self, postgres_url: str, demo_backup: Path, tmp_path: Path
    ) -> None:
        dump = copy_backup(demo_backup, tmp_path)
        manifest_path(dump).write_text('{"format_version": 2}', encoding="utf-8")
        with pytest.raises(CorruptBackupError, match="is not a valid backup manifest"):
            await verify_backup(dump, postgres_url)

    async def test_scratch_must_be_new(
        self, demo_url: str, demo_backup: Path, postgres_url: str
    ) -> None:
        existing = make_url(demo_url).database or ""
        with pytest.raises(BackupError, match=f"database {existing} already exists"):
            await verify_backup(demo_backup, postgres_url, target_db=existing)
        assert await row_counts(demo_url) == {
            n: t.rows for n, t in read_manifest(demo_backup).tables.items()
        }

    @pytest.mark.parametrize("name", ["Upper", "semi;colon", "x" * 64, "1starts_with_digit"])
    async def test_bad_names(self, postgres_url: str, demo_backup: Path, name: str) -> None:
        with pytest.raises(BackupError, match="must be lower-case letters"):
            await verify_backup(demo_backup, postgres_url, target_db=name)


class TestRestore:
    """restore_database: into a new or empty database, never over one that holds tables."""

    async def test_into_new(self, postgres_url: str, demo_backup: Path) -> None:
        name = databases.unique_name("bmadb_restored")
        try:
            report = await restore_database(demo_backup, postgres_url, name)
            assert report.ok
            assert report.kept
            assert name in await database_names(postgres_url)
        finally:
            await asyncio.to_thread(databases.drop_database, postgres_url, name)

    async def test_into_empty_with_another_time_zone(
        self, postgres_url: str, demo_backup: Path
    ) -> None:
        """The checksums pin the settings that shape a row's text (timestamps here)."""
        name = databases.unique_name("bmadb_restored_tz")
        url = await asyncio.to_thread(databases.create_database, postgres_url, name)
        try:
            async with Database.from_url(postgres_url) as admin, admin.session() as session:
                await session.execute(
                    text(f"ALTER DATABASE {name} SET TimeZone = 'Pacific/Chatham'")
                )
                await session.execute(text(f"ALTER DATABASE {name} SET DateStyle = 'SQL, DMY'"))
                await session.commit()
            report = await restore_database(demo_backup, postgres_url, name)
            assert report.ok, report.differences
            assert (await query(url, "SHOW TimeZone"))[0][0] == "Pacific/Chatham"
        finally:
            await asyncio.to_thread(databases.drop_database, postgres_url, name)

    async def test_refuses_a_database_with_tables(
        self, demo_url: str, postgres_url: str, demo_backup: Path
    ) -> None:
        name = make_url(demo_url).database or ""
        with pytest.raises(BackupError, match=f"database {name} is not empty"):
            await restore_database(demo_backup, postgres_url, name)

    async def test_failure_leaves_an_existing_database_empty(
        self, postgres_url: str, demo_backup: Path, tmp_path: Path
    ) -> None:
        dump = truncated_copy(demo_backup, tmp_path)
        name = databases.unique_name("bmadb_restore_fail")
        url = await asyncio.to_thread(databases.create_database, postgres_url, name)
        try:
            with pytest.raises(BackupError, match="pg_restore"):
                await restore_database(dump, postgres_url, name)
            assert name in await database_names(postgres_url)  # it was not ours to drop
            relations = await query(
                url, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            )
            assert relations == [(0,)]
        finally:
            await asyncio.to_thread(databases.drop_database, postgres_url, name)

    async def test_failure_drops_a_database_it_created(
        self, postgres_url: str, demo_backup: Path, tmp_path: Path
    ) -> None:
        dump = truncated_copy(demo_backup, tmp_path)
        name = databases.unique_name("bmadb_restore_new_fail")
        with pytest.raises(BackupError, match="pg_restore"):
            await restore_database(dump, postgres_url, name)
        assert name not in await database_names(postgres_url)
