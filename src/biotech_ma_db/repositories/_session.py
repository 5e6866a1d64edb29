"""The statements of a repository, run in its session with errors translated.

Every statement a repository sends goes through one of :class:`SessionIO`'s helpers,
which translate SQLAlchemy and driver exceptions into the library's typed errors
(:func:`~._support.translating_errors`).  Domain repositories use them too, for the
statements that are theirs alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

from sqlalchemy import Executable, Result, Select, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import TypedReturnsRows

from biotech_ma_db.engine.read_only import ensure_writable
from biotech_ma_db.repositories._fast import FastQuery, RowT, fetch_objects, fetch_rows
from biotech_ma_db.repositories._fast_insert import insert_object
from biotech_ma_db.repositories._support import ModelT, translating_errors
from biotech_ma_db.sa_internals import begin_on_driver

__all__ = ["SessionIO"]

T = TypeVar("T")

_BULK_SAVEPOINT = "biotech_ma_db_bulk"


class SessionIO(Generic[ModelT]):
    """One model's statements over one ``AsyncSession``, which it never commits.

    Args:
        session: The session every statement runs in.
    """

    model: type[ModelT]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model.__name__})"

    async def _fast(self, query: FastQuery, values: Mapping[str, object]) -> list[ModelT] | None:
        """Run a cached fast-path query (see :mod:`._fast`); ``None`` means use the ORM."""
        return await fetch_objects(self.session, query, values)

    async def _fast_rows(
        self, query: FastQuery, values: Mapping[str, object], row_type: type[RowT]
    ) -> list[RowT] | None:
        """Like :meth:`_fast`, as untracked ``row_type`` tuples (see :func:`._fast.fetch_rows`)."""
        return await fetch_rows(self.session, query, values, row_type)

    async def _rows(self, stmt: Select[Any], row_type: type[RowT]) -> list[RowT]:
        """Run ``stmt`` (selecting ``row_type``'s columns, in order) as ``row_type`` tuples."""
        with translating_errors():
            result = await self.session.execute(stmt)
            return [row_type._make(row) for row in result]

    async def _execute(self, stmt: Executable, params: Any = None) -> Result[*tuple[Any, ...]]:
        with translating_errors():
            return await self.session.execute(stmt, params)

    async def _scalars(self, stmt: TypedReturnsRows[T]) -> list[T]:
        with translating_errors():
            return list((await self.session.scalars(stmt)).all())

    async def _scalar_one(self, stmt: Select[T]) -> T:
        with translating_errors():
            return (await self.session.execute(stmt)).scalar_one()

    @asynccontextmanager
    async def _driver_in_savepoint(self) -> AsyncIterator[tuple[Any, Dialect]]:
        """The session's asyncpg connection inside a savepoint, for COPY and executemany.

        The savepoint makes a statement sent straight to the driver all-or-nothing: any
        exception in the block (a server error, or a bad row found while streaming) rolls
        it back, and the session's transaction stays usable.  Pending ORM changes are
        flushed first, as SQLAlchemy's own savepoints do.  On a read-only session it
        raises :class:`~biotech_ma_db.errors.ReadOnlyViolationError` before any SQL.

        The savepoint is the driver's, not ``session.begin_nested()``: nothing in the
        block touches ORM state, and SQLAlchemy's nested transaction costs about a
        millisecond of client time per call (its statements are prepared first).
        """
        session = self.session
        ensure_writable(session.sync_session, "a COPY or batch write")
        with translating_errors():
            if session.new or session.dirty or session.deleted:
                await session.flush()
            connection = await session.connection()
            raw = await connection.get_raw_connection()
            await begin_on_driver(raw.dbapi_connection)
            driver: Any = raw.driver_connection
            await driver.execute(f"SAVEPOINT {_BULK_SAVEPOINT}")
        try:
            with translating_errors():
                yield driver, connection.dialect
        except BaseException:
            with contextlib.suppress(Exception):
                # A connection that cannot roll back is broken: the original error says why.
                await driver.execute(f"ROLLBACK TO SAVEPOINT {_BULK_SAVEPOINT}")
            raise
        with translating_errors():
            await driver.execute(f"RELEASE SAVEPOINT {_BULK_SAVEPOINT}")

    async def _insert(self, values: Mapping[str, object]) -> ModelT:
        """Insert one row from validated ``values``; the new persistent object.

        One statement with its audit row when the fast insert applies
        (:mod:`._fast_insert`), an ORM flush otherwise; the same object and rows either way.
        """
        with translating_errors():
            found = await insert_object(self.session, inspect(self.model), values)
        if found is not None:
            row: ModelT = found
            return row
        row = self.model(**values)
        self.session.add(row)
        await self._flush()
        return row

    async def _flush(self) -> None:
        with translating_errors():
            await self.session.flush()
