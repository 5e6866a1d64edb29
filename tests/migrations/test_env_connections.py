"""What ``env.py`` accepts in ``config.attributes["connection"]``, and what it refuses.

Every form Alembic's documentation and pytest-alembic hand over: a ``Connection``, a proxy
whose ``connect()`` yields one (pytest-alembic's ``WrappingConnection``), an
``AsyncEngine``, an ``AsyncConnection``, or nothing.  Whenever ``env.py`` opens the
connection itself, it takes the deploy lock first.
"""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from alembic.config import Config
from pytest_alembic.tests.experimental.downgrade_leaves_no_trace import WrappingConnection
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from biotech_ma_db import MigrationError, migrations

from .helpers import scalars

HEAD = migrations.heads()[0]


async def _tables(url: str) -> set[object]:
    rows = await scalars(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return set(rows) - {"alembic_version"}


def _config(connection: object, *, lock_wait_seconds: float = 5) -> Config:
    config = migrations.alembic_config(lock_wait_seconds=lock_wait_seconds)
    config.attributes["connection"] = connection
    return config


class TestAsyncEngine:
    """pytest-alembic's usual ``alembic_engine``: env.py opens (and locks) its connection."""

    async def test_upgrades_and_disposes(self, empty_database_url: str) -> None:
        engine = create_async_engine(empty_database_url)  # a pooled engine, on purpose
        try:
            config = migrations.alembic_config(connection=engine, lock_wait_seconds=5)
            await asyncio.to_thread(command.upgrade, config, "head")
            assert engine.pool.checkedin() == 0  # nothing left bound to env.py's loop
        finally:
            await engine.dispose()
        assert await asyncio.to_thread(migrations.current, empty_database_url) == HEAD

    async def test_takes_the_deploy_lock(
        self, empty_database_url: str, lock_holder: AsyncConnection
    ) -> None:
        engine = create_async_engine(empty_database_url, poolclass=NullPool)
        config = _config(engine, lock_wait_seconds=1)
        with pytest.raises(MigrationError, match="another migration holds the lock"):
            await asyncio.to_thread(command.upgrade, config, "head")
        assert await asyncio.to_thread(migrations.current, empty_database_url) is None


class TestAsyncConnection:
    """An ``AsyncConnection`` is run through ``run_sync`` on its own event loop."""

    async def test_from_a_worker_thread(self, empty_database_url: str) -> None:
        engine = create_async_engine(empty_database_url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                await asyncio.to_thread(command.upgrade, _config(conn), "head")
        finally:
            await engine.dispose()
        assert "companies" in await _tables(empty_database_url)
        assert await asyncio.to_thread(migrations.current, empty_database_url) == HEAD

    async def test_joins_the_callers_transaction(self, empty_database_url: str) -> None:
        engine = create_async_engine(empty_database_url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                transaction = await conn.begin()
                await asyncio.to_thread(command.upgrade, _config(conn), "head")
                version = await conn.execute(text("SELECT version_num FROM alembic_version"))
                assert version.scalar_one() == HEAD
                await transaction.rollback()
        finally:
            await engine.dispose()
        assert await _tables(empty_database_url) == set()

    async def test_refused_from_inside_its_own_loop(self, empty_database_url: str) -> None:
        engine = create_async_engine(empty_database_url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                with pytest.raises(MigrationError, match="from inside its event loop"):
                    command.upgrade(_config(conn), "head")  # blocks this loop: refused
        finally:
            await engine.dispose()
        assert await asyncio.to_thread(migrations.current, empty_database_url) is None


class TestProxyOfAConnection:
    """pytest-alembic's ``WrappingConnection``: the migrations join the held transaction."""

    async def test_wrapping_connection_in_a_transaction(self, empty_database_url: str) -> None:
        engine = create_async_engine(empty_database_url, poolclass=NullPool)

        def upgrade(sync_conn: Connection) -> object:
            command.upgrade(_config(WrappingConnection(sync_conn)), "head")
            return sync_conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

        try:
            async with engine.connect() as conn:
                transaction = await conn.begin()
                assert await conn.run_sync(upgrade) == HEAD
                await transaction.rollback()
        finally:
            await engine.dispose()
        assert await _tables(empty_database_url) == set()


class TestRefused:
    """Anything else is refused with the list of accepted forms."""

    def test_a_url_string_is_not_a_connection(self, empty_database_url: str) -> None:
        with pytest.raises(MigrationError, match="an AsyncEngine or an AsyncConnection; got str"):
            command.upgrade(_config(empty_database_url), "head")
