"""Fixtures of the security tests: a database run the way production runs it.

``secured`` (session) is a database on the test server that was provisioned with
:func:`biotech_ma_db.roles.provision_roles` **before** any migration, then migrated by
``alembic upgrade head`` as ``app_migrator`` (so every object belongs to ``app_owner`` and
reaches the application roles through default privileges).  The tests run as ``app_rw``,
``app_ro`` and ``app_worker`` — never as the superuser, which bypasses row-level
security.  The superuser URL (``secured.admin_url``) is only used to inspect.

Each test prints its figure and records it with the ``figure`` fixture; the figures are
listed again at the end of the run ("security figures").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from biotech_ma_db import Database, migrations
from biotech_ma_db.roles import provision_roles
from biotech_ma_db.testing import databases

Figure = Callable[[str], None]
"""The ``figure`` fixture: ``figure("0 occurrences in 113 captured strings")``."""

_FIGURES: list[tuple[str, str]] = []
_POOL = {"pool_size": 2, "max_overflow": 2, "pool_timeout": 10.0}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _FIGURES:
        terminalreporter.section("security figures")
        for test, text in _FIGURES:
            terminalreporter.write_line(f"{test}: {text}")


@pytest.fixture(name="figure")
def fixture_figure(request: pytest.FixtureRequest) -> Figure:
    """Print a test's figure and keep it for the end-of-run summary."""

    module = request.module.__name__.rsplit(".", 1)[-1]  # test_sec3_roles -> T-SEC-3
    kind, number = module.split("_")[1][:3].upper(), module.split("_")[1][3:]
    label = f"T-{kind}-{number} {request.node.name}"

    def record(text: str) -> None:
        print(f"{label}: {text}")
        _FIGURES.append((label, text))

    return record


@dataclass(frozen=True)
class Secured:
    """A provisioned, migrated database and how to reach it as each role."""

    server_url: str
    name: str

    @property
    def admin_url(self) -> str:
        """The superuser on this database (inspection only: it bypasses RLS)."""
        return databases.database_url(self.server_url, self.name)

    def url(self, role: str) -> str:
        """asyncpg URL of this database as ``role`` (the test server trusts local users)."""
        return make_url(self.admin_url).set(username=role).render_as_string(hide_password=False)

    def connect_kwargs(self, role: str) -> dict[str, object]:
        """Keyword arguments of ``asyncpg.connect`` for ``role``."""
        url = make_url(self.admin_url)
        host = url.query.get("host", url.host)
        port = url.port or url.query.get("port")
        params: dict[str, object] = {"user": role, "database": self.name, "host": host}
        if port is not None:
            params["port"] = int(str(port))
        return params

    async def connect(self, role: str) -> asyncpg.Connection:
        """A raw asyncpg connection as ``role`` (plain SQL, exact SQLSTATEs)."""
        return await asyncpg.connect(**self.connect_kwargs(role), timeout=10)


@pytest.fixture(scope="session", name="secured")
def fixture_secured(postgres_url: str) -> Iterator[Secured]:
    """A database provisioned with the library's roles, then migrated as ``app_migrator``."""
    name = databases.unique_name("bmadb_secured")
    databases.create_database(postgres_url, name)
    secured = Secured(postgres_url, name)
    try:
        provision_roles(postgres_url, database=name)
        migrations.upgrade(secured.url("app_migrator"))
        yield secured
    finally:
        databases.drop_database(postgres_url, name)


async def _database(secured: Secured, role: str) -> AsyncIterator[Database]:
    db = Database.from_url(secured.url(role), application_name=f"sec-test-{role}", **_POOL)
    try:
        yield db
    finally:
        await db.dispose()


@pytest_asyncio.fixture(scope="session", loop_scope="session", name="rw_db")
async def fixture_rw_db(secured: Secured) -> AsyncIterator[Database]:
    """The application as ``app_rw``."""
    async for db in _database(secured, "app_rw"):
        yield db


@pytest_asyncio.fixture(scope="session", loop_scope="session", name="ro_db")
async def fixture_ro_db(secured: Secured) -> AsyncIterator[Database]:
    """The application as ``app_ro``."""
    async for db in _database(secured, "app_ro"):
        yield db


@pytest_asyncio.fixture(scope="session", loop_scope="session", name="worker_db")
async def fixture_worker_db(secured: Secured) -> AsyncIterator[Database]:
    """The delivery worker as ``app_worker``."""
    async for db in _database(secured, "app_worker"):
        yield db


@dataclass(frozen=True)
class Tenant:
    """An API client created through the library as ``app_rw``, with one API key."""

    client_id: int
    api_key: str


async def new_tenant(db: Database, name: str) -> Tenant:
    """Create a client (and its first key) as the application does: no superuser."""
    async with db.unit_of_work(actor="security-test") as uow:
        client, key = await uow.clients.create_with_api_key(name)
        await uow.commit()
    return Tenant(client.id, key)
