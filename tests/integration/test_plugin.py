"""The pytest plugin isolates tests: rolled-back sessions and throwaway databases."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db import Database
from biotech_ma_db.testing import databases

_fresh_names: list[str] = []


async def _table_exists(session: AsyncSession, name: str) -> bool:
    found = await session.execute(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name})
    return bool(found.scalar_one())


class TestDbSessionIsolation:
    """Work done in ``db_session``, even committed, is gone in the next test."""

    async def test_first_writes_and_commits(self, db_session: AsyncSession) -> None:
        await db_session.execute(text("CREATE TABLE isolation_probe (id int)"))
        await db_session.execute(text("INSERT INTO isolation_probe VALUES (1)"))
        await db_session.commit()
        count = await db_session.execute(text("SELECT count(*) FROM isolation_probe"))
        assert count.scalar_one() == 1

    async def test_second_sees_nothing(self, db_session: AsyncSession) -> None:
        assert not await _table_exists(db_session, "isolation_probe")

    async def test_rollback_inside_test_keeps_earlier_commit(
        self, db_session: AsyncSession
    ) -> None:
        await db_session.execute(text("CREATE TABLE savepoint_probe (id int)"))
        await db_session.commit()
        await db_session.execute(text("INSERT INTO savepoint_probe VALUES (1)"))
        await db_session.rollback()
        assert await _table_exists(db_session, "savepoint_probe")
        count = await db_session.execute(text("SELECT count(*) FROM savepoint_probe"))
        assert count.scalar_one() == 0


class TestFreshDatabase:
    """``fresh_database`` is a real, separate database, dropped after its test."""

    async def test_commits_are_real(self, fresh_database: Database) -> None:
        async with fresh_database.session() as session:
            await session.execute(text("CREATE TABLE fresh_probe (id int)"))
            await session.execute(text("INSERT INTO fresh_probe VALUES (1)"))
        async with fresh_database.session() as session:
            count = await session.execute(text("SELECT count(*) FROM fresh_probe"))
            assert count.scalar_one() == 1
        _fresh_names.append(str(fresh_database.engine.url.database))

    async def test_nothing_leaks_to_the_next(
        self, fresh_database: Database, database: Database
    ) -> None:
        assert _fresh_names, "runs after test_commits_are_real"
        async with fresh_database.session() as session:
            assert not await _table_exists(session, "fresh_probe")
        async with database.session() as session:
            assert not await _table_exists(session, "fresh_probe")
            dropped = await session.execute(
                text("SELECT count(*) FROM pg_database WHERE datname = :n"),
                {"n": _fresh_names[0]},
            )
            assert dropped.scalar_one() == 0

    async def test_clone_has_the_migrated_schema(self, fresh_database: Database) -> None:
        async with fresh_database.session() as session:
            version = await session.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalar_one()


class TestEmptyDatabase:
    """``empty_database_url`` is a database with no tables at all."""

    async def test_has_no_tables(self, empty_database_url: str) -> None:
        async with Database.from_url(empty_database_url) as db, db.session() as session:
            tables = await session.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            )
            assert tables.scalar_one() == 0


class TestFunctionLoopScope:
    """Tests that ask for a function-scoped loop still get working database fixtures."""

    @pytest.mark.asyncio(loop_scope="function")
    async def test_plain_url_fixture_on_function_loop(self, migrated_database_url: str) -> None:
        async with Database.from_url(migrated_database_url) as db:
            assert (await db.health()).ok

    async def test_urls_point_at_distinct_databases(
        self, postgres_url: str, migrated_database_url: str, database: Database
    ) -> None:
        names = {
            make_url(postgres_url).database,
            make_url(migrated_database_url).database,
            database.engine.url.database,
        }
        assert len(names) == 3

    def test_database_url_helper(self, postgres_url: str) -> None:
        moved = make_url(databases.database_url(postgres_url, "other"))
        assert moved.database == "other"
        assert moved.query == make_url(postgres_url).query
