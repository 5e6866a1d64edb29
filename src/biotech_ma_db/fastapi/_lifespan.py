"""The app's lifespan: one ``Database`` opened at startup, disposed at shutdown.

The database travels in the lifespan *state* (Starlette copies it into every request's
``request.state``), not in a module global, so two apps, or two runs of one app in
tests, never share a pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Final, TypedDict

from fastapi import Depends, Request

from biotech_ma_db.database import Database
from biotech_ma_db.settings import DatabaseSettings

__all__ = ["STATE_KEY", "DatabaseDep", "DatabaseState", "database_lifespan", "get_database"]

STATE_KEY: Final = "biotech_ma_db"
"""Key of the ``Database`` in the lifespan state (``request.state.biotech_ma_db``)."""

DatabaseSource = Database | DatabaseSettings | Callable[[], Database] | None
"""What :func:`database_lifespan` opens: a ``Database``, its settings, or a factory."""


class DatabaseState(TypedDict):
    """The lifespan state :func:`database_lifespan` yields."""

    biotech_ma_db: Database


def database_lifespan(
    source: DatabaseSource = None,
) -> Callable[[object], AbstractAsyncContextManager[DatabaseState]]:
    """A FastAPI ``lifespan`` that opens one ``Database`` and disposes it at shutdown.

    ::

        app = FastAPI(lifespan=database_lifespan())          # settings from the environment
        app = FastAPI(lifespan=database_lifespan(DatabaseSettings(pool_size=5)))

    To run more at startup, enter it from your own lifespan and pass its state on::

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
            async with database_lifespan()(app) as state:
                yield {**state, "http": ...}

    Args:
        source: A ``Database`` (disposed at shutdown, reusable afterwards), the
            ``DatabaseSettings`` to build one from, or a zero-argument factory called at
            startup.  ``None`` builds ``Database()`` from the environment at startup (never
            at import).

    Returns:
        The lifespan function to pass as ``FastAPI(lifespan=...)``.
    """

    @asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[DatabaseState]:
        database = _open(source)
        try:
            yield {STATE_KEY: database}
        finally:
            await database.dispose()

    return lifespan


def _open(source: DatabaseSource) -> Database:
    if source is None:
        return Database()
    if isinstance(source, Database):
        return source
    if isinstance(source, DatabaseSettings):
        return Database(source)
    return source()


def get_database(request: Request) -> Database:
    """The app's ``Database`` (a FastAPI dependency; override it in tests if you like).

    Raises:
        RuntimeError: The app was not started with :func:`database_lifespan`, or the
            server ran no lifespan (in tests, use ``asgi_lifespan.LifespanManager`` and
            send requests to its ``manager.app``).
    """
    database = request.scope.get("state", {}).get(STATE_KEY)
    if not isinstance(database, Database):
        raise RuntimeError(
            "no Database in the request state: create the app with "
            "FastAPI(lifespan=database_lifespan(...)) and run its lifespan"
        )
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
"""A handler parameter that receives the app's ``Database``."""
