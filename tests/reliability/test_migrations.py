"""Migrations under a live application: lock_timeout, failed CREATE INDEX CONCURRENTLY, poolers.

T-MIG-3, T-MIG-4 and T-MIG-6 of RELIABILITY.md §5.3.  The test revisions are written into a
copy of the project's migration scripts, on top of the real head, and run with the
project's own ``env.py``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import textwrap
import time
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from biotech_ma_db import Database, DatabaseSettings, migrations
from biotech_ma_db.database import engine_options
from biotech_ma_db.errors import DatabaseError, MigrationError

from .harness import (
    LOOPBACK,
    FaultServer,
    PgBouncer,
    Report,
    bouncer_url,
    elapsed,
    error_class,
)

LOCK_TIMEOUT_MS = 500

_MARKER_TABLE = '''
"""reliability test: a marker table for idempotent data steps"""
from alembic import op

revision = "rel_9000"
down_revision = {head!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE rel_marker (name text NOT NULL)")


def downgrade() -> None:
    op.execute("DROP TABLE rel_marker")
'''

_CONCURRENT_INDEX = '''
"""reliability test: an autocommit data step and CREATE INDEX CONCURRENTLY"""
from alembic import op

revision = "rel_9001"
down_revision = "rel_9000"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        # Idempotent data step: a re-run after a failure adds nothing.
        op.execute(
            "INSERT INTO rel_marker (name) SELECT 'seeded' "
            "WHERE NOT EXISTS (SELECT 1 FROM rel_marker WHERE name = 'seeded')"
        )
        op.execute(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_rel_companies_name "
            "ON companies (name)"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_rel_companies_name")
'''

_ALTER_TABLE = '''
"""reliability test: an ALTER TABLE that needs ACCESS EXCLUSIVE"""
from alembic import op

revision = "rel_9002"
down_revision = {head!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE companies ADD COLUMN rel_extra integer")


def downgrade() -> None:
    op.execute("ALTER TABLE companies DROP COLUMN rel_extra")
'''


def _scripts(root: Path, *revisions: tuple[str, str]) -> Path:
    """A copy of the project's migration scripts plus ``revisions`` (file name, source)."""
    target = root / "migrations"
    shutil.copytree(
        migrations.migrations_path(), target, ignore=shutil.ignore_patterns("__pycache__")
    )
    head = migrations.heads()[0]
    for name, source in revisions:
        (target / "versions" / name).write_text(textwrap.dedent(source.format(head=head)))
    return target


def _config(scripts: Path, url: str) -> Config:
    config = migrations.alembic_config(url, lock_wait_seconds=5)
    config.set_main_option("script_location", str(scripts))
    config.attributes["lock_timeout_ms"] = LOCK_TIMEOUT_MS
    return config


async def _upgrade(config: Config) -> BaseException | None:
    """``alembic upgrade head`` in a worker thread; the exception it ended with, if any."""
    try:
        await asyncio.to_thread(command.upgrade, config, "head")
    except Exception as exc:  # noqa: BLE001 — the test inspects it
        return exc
    return None


async def _connect(fault_server: FaultServer, database: str) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=LOOPBACK, port=fault_server.port, user="postgres", database=database
    )


class TestLockTimeoutOnBusyTable:
    """T-MIG-3: DDL behind an app transaction fails fast, retries, and never stalls readers."""

    @pytest.mark.slow
    async def test_alter_table_behind_a_reader(
        self,
        fault_server: FaultServer,
        fault_db: str,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
        report: Report,
    ) -> None:
        scripts = _scripts(tmp_path, ("rel_9002_alter.py", _ALTER_TABLE))
        url = fault_server.cluster.url(fault_db)
        app = await _connect(fault_server, fault_db)
        reader = await _connect(fault_server, fault_db)
        stalls: list[float] = []
        stop = asyncio.Event()

        async def read_continuously() -> None:
            while not stop.is_set():
                started = time.monotonic()
                await reader.fetchval("SELECT count(*) FROM companies")
                stalls.append(time.monotonic() - started)
                await asyncio.sleep(0.02)

        reading = asyncio.create_task(read_continuously())
        try:
            holder = app.transaction()
            await holder.start()
            await app.fetchval("SELECT count(*) FROM companies")  # ACCESS SHARE until the end
            started = time.monotonic()
            with caplog.at_level(logging.WARNING, logger="biotech_ma_db.migrations"):
                failure = await _upgrade(_config(scripts, url))
            gave_up_after = elapsed(started)
            await holder.rollback()
            assert isinstance(failure, MigrationError), failure
            assert "lock_timeout" in str(failure)
            retries = sum("lock_timeout" in r.getMessage() for r in caplog.records)
            assert (
                await app.fetchval("SELECT version_num FROM alembic_version")
                == migrations.heads()[0]
            )

            # With the application transaction gone, the same upgrade goes through.
            assert await _upgrade(_config(scripts, url)) is None
            assert await app.fetchval("SELECT version_num FROM alembic_version") == "rel_9002"
        finally:
            stop.set()
            await reading
            await app.close()
            await reader.close()
        max_stall = max(stalls)
        assert retries >= 1
        assert max_stall <= LOCK_TIMEOUT_MS / 1000 + 0.5, max_stall
        report(
            "T-MIG-3",
            f"ALTER TABLE behind an open reader: {retries + 1} attempts x 55P03 "
            f"(lock_timeout {LOCK_TIMEOUT_MS} ms), MigrationError after {gave_up_after:.1f} s, "
            f"max reader stall {max_stall:.2f} s; ok once the reader committed",
            attempts=retries + 1,
            gave_up_s=gave_up_after,
            max_reader_stall_s=round(max_stall, 3),
            reads=len(stalls),
        )


class TestConcurrentIndexFailure:
    """T-MIG-4: a failed CREATE INDEX CONCURRENTLY is repaired on the re-run."""

    @pytest.mark.slow
    async def test_invalid_index_is_rebuilt_and_data_steps_run_once(
        self, fault_server: FaultServer, fault_db: str, tmp_path: Path, report: Report
    ) -> None:
        scripts = _scripts(
            tmp_path,
            ("rel_9000_marker.py", _MARKER_TABLE),
            ("rel_9001_index.py", _CONCURRENT_INDEX),
        )
        url = fault_server.cluster.url(fault_db)
        app = await _connect(fault_server, fault_db)
        observer = await _connect(fault_server, fault_db)
        invalid_sql = """
            SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE c.relname = 'ix_rel_companies_name' AND NOT i.indisvalid
        """
        try:
            # An application transaction that writes to the table: CREATE INDEX
            # CONCURRENTLY must wait for it, and lock_timeout ends the wait.
            holder = app.transaction()
            await holder.start()
            await app.execute("UPDATE companies SET name = name WHERE false")
            failure = await _upgrade(_config(scripts, url))
            assert isinstance(failure, MigrationError), failure
            invalid_after_failure = await observer.fetchval(invalid_sql)
            version_after_failure = await observer.fetchval(
                "SELECT version_num FROM alembic_version"
            )
            await holder.rollback()

            assert await _upgrade(_config(scripts, url)) is None
            invalid = await observer.fetchval("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
            present = await observer.fetchval(
                "SELECT count(*) FROM pg_class WHERE relname = 'ix_rel_companies_name'"
            )
            seeded = await observer.fetchval(
                "SELECT count(*) FROM rel_marker WHERE name = 'seeded'"
            )
            version = await observer.fetchval("SELECT version_num FROM alembic_version")
        finally:
            await app.close()
            await observer.close()
        assert invalid_after_failure == 1
        assert version_after_failure == "rel_9000"
        assert (invalid, present, seeded, version) == (0, 1, 1, "rel_9001")
        report(
            "T-MIG-4",
            f"CIC failed behind an app writer (1 INVALID index, upgrade exited with "
            f"MigrationError); after fail+retry: {invalid} invalid indexes, "
            f"{seeded - 1} duplicate rows, version {version}",
            invalid_after_failure=invalid_after_failure,
            invalid_after_retry=invalid,
            duplicate_rows=seeded - 1,
        )


class TestPoolerRefusal:
    """T-MIG-6: migrations refuse a transaction-mode pooler; AUTOCOMMIT through it breaks."""

    @pytest.mark.slow
    async def test_migrations_refuse_pgbouncer(
        self,
        fault_server: FaultServer,
        fault_db: str,
        pgbouncer: PgBouncer,
        report: Report,
    ) -> None:
        pooled = bouncer_url(pgbouncer, fault_db)
        try:
            # The reason: AUTOCOMMIT statements through transaction pooling fail even with
            # every client-side mitigation (no statement cache, unique statement names).
            settings = DatabaseSettings.from_url(pooled, pgbouncer=True, pool_size=10)
            engine = create_async_engine(settings.url(), **engine_options(settings))
            failures: Counter[str] = Counter()

            async def autocommit_statements() -> None:
                for _ in range(20):
                    try:  # one unit: three AUTOCOMMIT statements, like a migration step
                        async with engine.connect() as conn:
                            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                            for _ in range(3):
                                await auto.execute(
                                    text("SELECT count(*) FROM companies WHERE id > :n"),
                                    {"n": 0},
                                )
                    except Exception as exc:  # noqa: BLE001 — counted
                        failures[error_class(exc)] += 1

            await asyncio.gather(*(autocommit_statements() for _ in range(10)))
            await engine.dispose()

            # The library refuses AUTOCOMMIT outright when configured for the pooler.
            guarded = Database.from_url(pooled, pgbouncer=True, pool_size=1)
            try:
                async with guarded.engine.connect() as conn:
                    with pytest.raises(DatabaseError, match="AUTOCOMMIT"):
                        await conn.execution_options(isolation_level="AUTOCOMMIT")
            finally:
                await guarded.dispose()

            with pytest.raises(MigrationError, match="pooler") as refused:
                await asyncio.to_thread(migrations.upgrade, pooled, lock_wait_seconds=5)
            # The direct address works.
            await asyncio.to_thread(migrations.upgrade, fault_server.cluster.url(fault_db))
        finally:
            await pgbouncer.kill(fault_db)
        failed = sum(failures.values())
        assert failed > 0, "expected AUTOCOMMIT through transaction pooling to break"
        report(
            "T-MIG-6",
            f"AUTOCOMMIT through pgbouncer (transaction mode, all mitigations): {failed}/200 "
            "units failed (pgbouncer=True now refuses AUTOCOMMIT); migrations through it "
            "refused with MigrationError, direct URL ok",
            autocommit_failures=failed,
            failures_by_class=dict(failures),
            refusal=str(refused.value),
        )
