"""Database: sessions, health, pool status, slow-query log and disposal on a real server."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import text

from biotech_ma_db import Database, DatabaseUnavailableError, PoolExhaustedError


def _url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


async def _create_notes(db: Database) -> None:
    async with db.session() as session:
        await session.execute(text("CREATE TABLE notes (id int PRIMARY KEY, body text)"))


async def _count_notes(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(text("SELECT count(*) FROM notes"))).scalar_one())


async def _backends(observer: Database, database_name: str) -> int:
    """Server connections open on a database (a new transaction: stats are snapshotted)."""
    async with observer.session() as session:
        query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name")
        return int((await session.execute(query, {"name": database_name})).scalar_one())


class TestSession:
    """``Database.session()`` commits on clean exit and rolls back on error."""

    async def test_clean_exit_commits(self, fresh_database: Database) -> None:
        await _create_notes(fresh_database)
        async with fresh_database.session() as session:
            await session.execute(text("INSERT INTO notes VALUES (1, 'kept')"))
        assert await _count_notes(fresh_database) == 1

    async def test_error_rolls_back_and_propagates(self, fresh_database: Database) -> None:
        await _create_notes(fresh_database)
        with pytest.raises(RuntimeError, match="boom"):
            async with fresh_database.session() as session:
                await session.execute(text("INSERT INTO notes VALUES (1, 'lost')"))
                raise RuntimeError("boom")
        assert await _count_notes(fresh_database) == 0
        assert fresh_database.pool_status().checked_out == 0

    async def test_session_reads_settings_sent_at_connect(self, database: Database) -> None:
        async with database.session() as session:
            row = (
                await session.execute(
                    text(
                        "SELECT current_setting('application_name'),"
                        " current_setting('statement_timeout'),"
                        " current_setting('client_connection_check_interval')"
                    )
                )
            ).one()
        assert tuple(row) == ("biotech-ma-db", "30s", "1s")


class TestHealth:
    """``health()`` reports latency, version and recovery state, and never raises."""

    async def test_healthy_server(self, database: Database) -> None:
        report = await database.health()
        assert report.ok is True
        assert report.in_recovery is False
        assert report.server_version is not None
        assert int(report.server_version.split(".")[0]) >= 14
        assert 0 < report.latency_ms < 5_000
        assert report.error is None

    async def test_unreachable_server(self, tmp_path: object) -> None:
        db = Database.from_url(
            "postgresql+asyncpg://nobody@/postgres?host=/nonexistent-socket-dir",
            connect_timeout_s=1,
        )
        async with db:
            report = await db.health()
        assert report.ok is False
        assert report.server_version is None
        assert report.error is not None


class TestPoolStatus:
    """``pool_status()`` numbers follow the sessions that are open."""

    async def test_counts_change_while_sessions_are_open(self, fresh_database: Database) -> None:
        before = fresh_database.pool_status()
        assert before.checked_out == 0
        assert (before.size, before.max_overflow, before.timeout) == (5, 5, 10.0)
        async with fresh_database.session() as first, fresh_database.session() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            assert fresh_database.pool_status().checked_out == 2
        after = fresh_database.pool_status()
        assert after.checked_out == 0
        assert after.checked_in == 2

    async def test_overflow_is_reported(self, migrated_database_url: str) -> None:
        db = Database.from_url(migrated_database_url, pool_size=1, max_overflow=2)
        async with db, db.session() as first, db.session() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            status = db.pool_status()
            assert (status.checked_out, status.overflow) == (2, 1)

    async def test_exhausted_pool_raises_typed_error(self, migrated_database_url: str) -> None:
        db = Database.from_url(migrated_database_url, pool_size=1, max_overflow=0, pool_timeout=0.3)
        async with db, db.session() as holder:
            await holder.execute(text("SELECT 1"))
            with pytest.raises(PoolExhaustedError) as caught:
                async with db.session() as waiter:
                    await waiter.execute(text("SELECT 1"))
            assert "postgresql" not in str(caught.value)


class TestDispose:
    """``dispose()`` closes pooled connections and the object stays usable."""

    async def test_dispose_closes_server_connections(
        self, fresh_database: Database, database: Database
    ) -> None:
        name = str(fresh_database.engine.url.database)
        async with fresh_database.session() as session:
            await session.execute(text("SELECT 1"))
        assert await _backends(database, name) == 1
        await fresh_database.dispose()
        for _ in range(50):
            if await _backends(database, name) == 0:
                break
            await asyncio.sleep(0.02)
        assert await _backends(database, name) == 0
        assert (await fresh_database.health()).ok

    async def test_context_manager_disposes(self, migrated_database_url: str) -> None:
        async with Database.from_url(migrated_database_url) as db:
            async with db.session() as session:
                await session.execute(text("SELECT 1"))
            assert db.pool_status().checked_in == 1
        assert db.pool_status().checked_in == 0


class TestSlowQueryLog:
    """Statements slower than ``DB_SLOW_QUERY_MS`` are logged with duration, no parameters."""

    async def test_slow_statement_is_logged_without_parameters(
        self, migrated_database_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        secret = "parameter-value-that-must-not-be-logged"
        caplog.set_level(logging.WARNING, logger="biotech_ma_db.slow_query")
        db = Database.from_url(migrated_database_url, slow_query_ms=50)
        async with db, db.session() as session:
            await session.execute(text("SELECT :v, pg_sleep(0.1)"), {"v": secret})
            await session.execute(text("SELECT :v"), {"v": secret})
        slow = [r.getMessage() for r in caplog.records if r.name == "biotech_ma_db.slow_query"]
        assert len(slow) == 1
        assert "pg_sleep" in slow[0]
        assert " ms: " in slow[0]
        assert secret not in caplog.text

    async def test_disabled_when_unset(
        self, migrated_database_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="biotech_ma_db.slow_query")
        db = Database.from_url(migrated_database_url, slow_query_ms=None)
        async with db, db.session() as session:
            await session.execute(text("SELECT pg_sleep(0.06)"))
        assert not [r for r in caplog.records if r.name == "biotech_ma_db.slow_query"]


class TestPgbouncerPreset:
    """The transaction-pooling preset still works against a direct server."""

    async def test_queries_run_without_statement_cache(self, migrated_database_url: str) -> None:
        async with Database.from_url(migrated_database_url, pgbouncer=True) as db:
            for _ in range(3):
                async with db.session() as session:
                    value = (await session.execute(text("SELECT 41 + 1"))).scalar_one()
                    assert value == 42


class TestUnavailable:
    """A server that cannot be reached surfaces as a typed error, not a driver error."""

    async def test_session_on_missing_socket(self) -> None:
        db = Database.from_url(
            "postgresql+asyncpg://nobody@/postgres?host=/nonexistent-socket-dir",
            connect_timeout_s=1,
        )
        async with db:
            with pytest.raises(DatabaseUnavailableError):
                async with db.session() as session:
                    await session.execute(text("SELECT 1"))
