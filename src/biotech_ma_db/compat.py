"""The original system's module-level API, kept as a thin facade over one ``Database``.

``init_db()`` builds the default :class:`~biotech_ma_db.database.Database` (nothing is
created at import), ``get_db_session()`` hands out sessions from it, ``health_check()``
answers a bool and ``close_db()`` disposes of it::

    await init_db(pool_size=20, max_overflow=10)
    async with get_db_session() as session:
        repo = CompanyRepository(session)
        ...
    await close_db()

New code should hold a ``Database`` explicitly instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db.database import Database
from biotech_ma_db.errors import DatabaseUnavailableError
from biotech_ma_db.settings import DatabaseSettings

__all__ = ["close_db", "get_database", "get_db_session", "health_check", "init_db"]

_default: Database | None = None


async def init_db(
    pool_size: int = 20,
    max_overflow: int = 10,
    echo: bool = False,
    **overrides: Any,
) -> Database:
    """Create the default ``Database`` from the environment (``DATABASE_URL``/``POSTGRES_*``).

    Calling it again replaces (and disposes) the previous default.

    Args:
        pool_size: Connections kept open in the pool.
        max_overflow: Extra connections allowed above ``pool_size`` under load.
        echo: Log every SQL statement (parameters hidden).
        **overrides: Any other :class:`DatabaseSettings` field, e.g. ``database_url``.
    """
    global _default
    settings = DatabaseSettings(
        pool_size=pool_size, max_overflow=max_overflow, echo=echo, **overrides
    )
    previous, _default = _default, Database(settings)
    if previous is not None:
        await previous.dispose()
    return _default


def get_database() -> Database:
    """The default ``Database``; raises if ``init_db()`` has not been awaited."""
    if _default is None:
        raise DatabaseUnavailableError("init_db() has not been called")
    return _default


@asynccontextmanager
async def get_db_session() -> AsyncIterator[AsyncSession]:
    """A session of the default ``Database``: commits on clean exit, rolls back on error."""
    async with get_database().session() as session:
        yield session


async def health_check() -> bool:
    """True when the default database answers a query."""
    if _default is None:
        return False
    return (await _default.health()).ok


async def close_db() -> None:
    """Dispose of the default ``Database`` (safe to call when none exists)."""
    global _default
    previous, _default = _default, None
    if previous is not None:
        await previous.dispose()
