"""pytest-alembic's fixtures, served by this project's own pytest plugin.

``alembic_config`` is the project's migrations (``migrations.alembic_config()``, no ini
file); ``alembic_engine`` is an ``AsyncEngine`` on a new empty database per test (the
plugin's ``empty_database_url``), as an application on asyncpg would hand it over.
``NullPool``: each run of ``env.py`` and of pytest-alembic's own tasks uses a private
event loop, and a pooled connection may not outlive its loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from pytest_alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from biotech_ma_db import migrations

from .helpers import REPO_ROOT


@pytest.fixture
def alembic_config() -> Config:
    """The project's own migration scripts and ``env.py``."""
    return Config(alembic_config=migrations.alembic_config())


@pytest.fixture
def alembic_engine(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AsyncEngine]:
    """An async engine on a brand-new empty database, dropped after the test."""
    url = make_url(empty_database_url)
    # test_all_models_register_on_metadata puts the engine's URL into an ini file config
    # (in a subprocess that reads ./alembic.ini), and ConfigParser rejects the "%2F" of a
    # socket folder in ?host=.  asyncpg reads PGHOST/PGPORT for a URL without a host.
    for key, variable in (("host", "PGHOST"), ("port", "PGPORT")):
        value = url.query.get(key)
        if isinstance(value, str):
            monkeypatch.setenv(variable, value)
    monkeypatch.chdir(REPO_ROOT)
    engine = create_async_engine(url.difference_update_query(["host", "port"]), poolclass=NullPool)
    try:
        yield engine
    finally:
        asyncio.run(engine.dispose())


@pytest.fixture(name="lock_holder")
async def fixture_lock_holder(empty_database_url: str) -> AsyncIterator[AsyncConnection]:
    """A connection holding the migration advisory lock, as a running deploy would."""
    engine = create_async_engine(empty_database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(
                text("SELECT pg_advisory_lock(:k)"), {"k": migrations.MIGRATION_LOCK_KEY}
            )
            await conn.commit()
            yield conn
    finally:
        await engine.dispose()
