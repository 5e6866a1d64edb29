"""pytest plugin: a real PostgreSQL for any test suite that installs biotech-ma-db.

Registered through the ``pytest11`` entry point, so its fixtures are available without a
``conftest.py``:

``postgres_url`` (session)
    asyncpg URL of the provider's maintenance database (see :mod:`.providers`).
``migrated_database_url`` (session)
    A database upgraded to ``head`` once; kept untouched as the template for clones.
``database`` (session)
    A :class:`~biotech_ma_db.Database` on a session-wide clone of the template.
``db_session`` (function)
    An ``AsyncSession`` inside a transaction that is rolled back after the test; the code
    under test may ``commit()`` (commits become savepoints).
``uow`` (function)
    An entered :class:`~biotech_ma_db.UnitOfWork` (``actor="pytest"``) over a session
    joined to an outer transaction the same way: ``await uow.commit()`` works, and
    everything is rolled back after the test.
``fresh_database`` (function)
    A ``Database`` on a brand-new clone of the template, dropped after the test: for
    tests that need real commits or several connections.
``empty_database_url`` (function)
    URL of a new empty database (for migration tests), dropped after the test.
``replica_url`` (session)
    asyncpg URL of the maintenance database on a hot standby of the plugin's server
    (streaming replication, :mod:`.replica`); every database of the primary is there
    too (``databases.database_url(replica_url, name)``).  Skipped unless the plugin
    started that server itself (the ``embedded`` provider).

Async fixtures run on the session event loop, and tests that use them are moved onto that
loop too, so pooled connections never meet a different loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db import migrations
from biotech_ma_db.database import Database
from biotech_ma_db.testing import databases, replica
from biotech_ma_db.testing.providers import (
    PROVIDERS,
    ProvidedPostgres,
    choose_provider,
    provide_postgres,
)
from biotech_ma_db.unit_of_work import UnitOfWork

_SESSION_LOOP_FIXTURES = frozenset({"database", "db_session", "fresh_database", "uow"})
_TEST_POOL = {"pool_size": 5, "max_overflow": 5, "pool_timeout": 10.0}
_PROVIDED = pytest.StashKey[ProvidedPostgres]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("biotech-ma-db")
    group.addoption(
        "--pg-provider",
        choices=PROVIDERS,
        default=None,
        help="where the test PostgreSQL comes from (default: URL, then Docker, then embedded)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run tests that use the pooled-engine fixtures on the session loop."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if not names & _SESSION_LOOP_FIXTURES:
            continue
        if not inspect.iscoroutinefunction(getattr(item, "obj", None)):
            continue  # synchronous tests need no loop (pytest-asyncio rejects the mark)
        marker = item.get_closest_marker("asyncio")
        if marker is None or not (marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")):
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


@pytest.fixture(scope="session", name="postgres_url")
def fixture_postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """asyncpg URL of a PostgreSQL server's maintenance database."""
    forced = request.config.getoption("--pg-provider")
    provided = provide_postgres(choose_provider(forced))
    request.config.stash[_PROVIDED] = provided  # for replica_url: who started the server
    try:
        yield provided.url
    finally:
        provided.close()


@pytest.fixture(scope="session", name="replica_url")
def fixture_replica_url(request: pytest.FixtureRequest, postgres_url: str) -> Iterator[str]:
    """asyncpg URL of a hot standby's maintenance database (see the module docstring)."""
    provided = request.config.stash.get(_PROVIDED, None)
    if provided is None or provided.provider != "embedded" or provided.url != postgres_url:
        where = provided.provider if provided is not None else "a postgres_url of its own"
        pytest.skip(
            "replica_url needs a primary the plugin started itself (--pg-provider=embedded); "
            f"this session's server comes from {where}"
        )
    primary = replica.primary_of(postgres_url)
    if primary is None:
        pytest.skip("replica_url: the embedded primary's cluster folder was not found")
    standby = replica.start_replica(primary)
    try:
        yield standby.url("postgres")
    finally:
        standby.close()


@pytest.fixture(scope="session", name="migrated_database_url")
def fixture_migrated_database_url(postgres_url: str) -> Iterator[str]:
    """A database at ``head``, migrated once per session and used as a clone template."""
    name = databases.unique_name("bmadb_template")
    url = databases.create_database(postgres_url, name)
    try:
        migrations.upgrade(url)
        yield url
    finally:
        databases.drop_database(postgres_url, name)


def _clone(postgres_url: str, template_url: str, prefix: str) -> tuple[str, str]:
    template = make_url(template_url).database or ""
    name = databases.unique_name(prefix)
    return name, databases.clone_database(postgres_url, template, name)


@pytest.fixture(scope="session", name="test_database_url")
def fixture_test_database_url(postgres_url: str, migrated_database_url: str) -> Iterator[str]:
    """A session-wide clone of the template that ``database`` and ``db_session`` use."""
    name, url = _clone(postgres_url, migrated_database_url, "bmadb_test")
    try:
        yield url
    finally:
        databases.drop_database(postgres_url, name)


@pytest_asyncio.fixture(scope="session", loop_scope="session", name="database")
async def fixture_database(test_database_url: str) -> AsyncIterator[Database]:
    """A ``Database`` bound to the session's migrated test database."""
    db = Database.from_url(test_database_url, **_TEST_POOL)
    try:
        yield db
    finally:
        await db.dispose()


@asynccontextmanager
async def _rolled_back_session(database: Database) -> AsyncIterator[AsyncSession]:
    """A session inside an outer transaction that is always rolled back.

    ``join_transaction_mode="create_savepoint"`` turns the code under test's ``commit()``
    and ``rollback()`` into savepoint operations, so the outer transaction survives them.
    """
    async with database.engine.connect() as conn:
        transaction = await conn.begin()
        session = AsyncSession(
            bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


@pytest_asyncio.fixture(loop_scope="session", name="db_session")
async def fixture_db_session(database: Database) -> AsyncIterator[AsyncSession]:
    """A session whose work, committed or not, is rolled back when the test ends."""
    async with _rolled_back_session(database) as session:
        yield session


@pytest_asyncio.fixture(loop_scope="session", name="uow")
async def fixture_uow(database: Database) -> AsyncIterator[UnitOfWork]:
    """An entered unit of work whose work, committed or not, is rolled back after the test."""
    async with (
        _rolled_back_session(database) as session,
        UnitOfWork.over_session(session, actor="pytest") as unit_of_work,
    ):
        yield unit_of_work


@pytest_asyncio.fixture(loop_scope="session", name="fresh_database")
async def fixture_fresh_database(
    postgres_url: str, migrated_database_url: str
) -> AsyncIterator[Database]:
    """A ``Database`` on a new clone of the template, dropped after the test."""
    name, url = await asyncio.to_thread(_clone, postgres_url, migrated_database_url, "bmadb_fresh")
    db = Database.from_url(url, **_TEST_POOL)
    try:
        yield db
    finally:
        await db.dispose()
        await asyncio.to_thread(databases.drop_database, postgres_url, name)


@pytest.fixture(name="empty_database_url")
def fixture_empty_database_url(postgres_url: str) -> Iterator[str]:
    """URL of a new, empty database, dropped after the test."""
    name = databases.unique_name("bmadb_empty")
    url = databases.create_database(postgres_url, name)
    try:
        yield url
    finally:
        databases.drop_database(postgres_url, name)
