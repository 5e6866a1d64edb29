"""The original system's module-level API: init_db, get_db_session, health_check, close_db."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from biotech_ma_db import Database, close_db, get_db_session, health_check, init_db
from biotech_ma_db.errors import DatabaseUnavailableError


class TestModuleApi:
    """The seed README's initialisation and session examples work as written."""

    async def test_init_session_health_close(
        self, fresh_database: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", fresh_database.engine.url.render_as_string(False))
        db = await init_db(pool_size=20, max_overflow=10)
        try:
            assert db.pool_status().size == 20
            assert db.pool_status().max_overflow == 10
            async with get_db_session() as session:
                await session.execute(text("CREATE TABLE seed_probe (id int)"))
                await session.execute(text("INSERT INTO seed_probe VALUES (1)"))
            async with get_db_session() as session:
                count = (await session.execute(text("SELECT count(*) FROM seed_probe"))).scalar()
            assert count == 1
            assert await health_check() is True
        finally:
            await close_db()
        assert await health_check() is False

    async def test_session_before_init_is_a_clear_error(self) -> None:
        await close_db()
        with pytest.raises(DatabaseUnavailableError, match="init_db"):
            async with get_db_session():
                pass

    async def test_echo_and_reinit(
        self, fresh_database: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DATABASE_URL", fresh_database.engine.url.render_as_string(False))
        first = await init_db(echo=True)
        second = await init_db(pool_size=50, max_overflow=20)
        try:
            assert first is not second
            assert first.engine.echo is True
            assert second.pool_status().size == 50
            assert await health_check() is True
        finally:
            await close_db()

    async def test_seed_test_fixture_pattern(
        self, fresh_database: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The seed's example fixtures: a session yielded, then rolled back."""
        monkeypatch.setenv("DATABASE_URL", fresh_database.engine.url.render_as_string(False))
        await init_db(echo=True)
        try:
            async with get_db_session() as session:
                await session.execute(text("CREATE TABLE fixture_probe (id int)"))
            async with get_db_session() as session:
                await session.execute(text("INSERT INTO fixture_probe VALUES (1)"))
                await session.rollback()
            async with get_db_session() as session:
                count = (await session.execute(text("SELECT count(*) FROM fixture_probe"))).scalar()
            assert count == 0
        finally:
            await close_db()
