"""``SyncDatabase``: a :class:`~biotech_ma_db.Database` driven from synchronous code."""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from types import TracebackType
from typing import Any, Generic, ParamSpec, Self, TypeVar

from sqlalchemy.engine import URL

from biotech_ma_db.database import Database, HealthReport, PoolStatus
from biotech_ma_db.settings import DatabaseSettings
from biotech_ma_db.sync._loop import LoopThread
from biotech_ma_db.sync._unit_of_work import SyncUnitOfWork
from biotech_ma_db.unit_of_work import IsolationLevel

__all__ = ["SyncDatabase"]

ParamsT = ParamSpec("ParamsT")
ResultT = TypeVar("ResultT")
EnteredT = TypeVar("EnteredT")


class _Blocking(Generic[EnteredT]):
    """An async context manager entered and exited on the loop thread, as ``with``."""

    def __init__(self, loop: LoopThread, manager: AbstractAsyncContextManager[EnteredT]) -> None:
        self._loop = loop
        self._manager = manager

    def __enter__(self) -> EnteredT:
        return self._loop.run(self._manager.__aenter__())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return self._loop.run(self._manager.__aexit__(exc_type, exc, tb))


class SyncDatabase:
    """The async :class:`~biotech_ma_db.Database`, callable without ``await``.

    It owns one daemon thread running an event loop; the database, its pool and every
    unit of work live there, and each call blocks the calling thread until the loop has
    done it.  The caller's own event loop, if any (Jupyter), is never used, so this works
    the same in a script, a notebook cell, a thread or inside ``async def``.

    ::

        with SyncDatabase.from_url(url) as db:
            with db.unit_of_work(actor="notebook", reason="fix") as uow:
                company = uow.companies.get_by_ticker("ABCD")
                uow.commit()

    Objects returned are detached from their session once the unit of work ends, with
    every loaded column readable from any thread (sessions never expire on commit);
    relationships that were not loaded raise instead of loading, as in async code.

    Args:
        settings: Connection and pool settings; read from the environment when omitted.
    """

    def __init__(self, settings: DatabaseSettings | None = None) -> None:
        database = Database(settings)
        self._loop = LoopThread()
        self._database = database
        # Close the loop thread and the pool if the object is dropped unclosed; the
        # finalizer holds what it closes, not ``self``.
        self._finalizer = weakref.finalize(self, _shutdown, self._loop, self._database)

    @classmethod
    def from_url(cls, url: str | URL, **overrides: Any) -> Self:
        """A synchronous database for an explicit URL; ``overrides`` are settings fields."""
        return cls(DatabaseSettings.from_url(url, **overrides))

    def __repr__(self) -> str:
        return f"Sync{self._database!r}"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def database(self) -> Database:
        """The async database (use it only from code running on :meth:`run`'s loop)."""
        return self._database

    @property
    def settings(self) -> DatabaseSettings:
        """The connection and pool settings."""
        return self._database.settings

    def close(self) -> None:
        """Dispose of the pool and stop the loop thread; safe to call twice."""
        self._finalizer()

    def run(
        self,
        fn: Callable[ParamsT, Awaitable[ResultT]],
        /,
        *args: ParamsT.args,
        **kwargs: ParamsT.kwargs,
    ) -> ResultT:
        """``await fn(*args, **kwargs)`` on the loop thread; its result (or error) here.

        The way to reuse async code as it is, e.g. a function written for
        :meth:`Database.run_in_transaction`::

            db.run(db.database.run_in_transaction, rename, actor="ops", reason="rebrand")
        """
        return self._loop.call(fn, *args, **kwargs)

    @contextmanager
    def unit_of_work(
        self,
        *,
        read_only: bool = False,
        actor: str | None = None,
        reason: str | None = None,
        client_id: int | None = None,
        isolation_level: IsolationLevel | None = None,
    ) -> Iterator[SyncUnitOfWork]:
        """A unit of work (see :meth:`Database.unit_of_work`): ``with db.unit_of_work() as uow``.

        Call ``uow.commit()``; leaving the block without it, or with an exception,
        rolls back.
        """
        unit_of_work = self._database.unit_of_work(
            read_only=read_only,
            actor=actor,
            reason=reason,
            client_id=client_id,
            isolation_level=isolation_level,
        )
        with _Blocking(self._loop, unit_of_work) as entered:
            yield SyncUnitOfWork(entered, self._loop)

    @contextmanager
    def session(self) -> Iterator[SyncUnitOfWork]:
        """Like ``get_db_session()``: a unit of work that commits when the block ends cleanly.

        The repositories are its attributes (``session.companies``, ...); an exception
        rolls everything back.
        """
        with self.unit_of_work() as unit_of_work:
            yield unit_of_work
            unit_of_work.commit()

    def health(self) -> HealthReport:
        """Probe the server (see :meth:`Database.health`)."""
        return self._loop.run(self._database.health())

    def pool_status(self) -> PoolStatus:
        """Pool size and use (see :meth:`Database.pool_status`)."""
        return self._database.pool_status()


def _shutdown(loop: LoopThread, database: Database) -> None:
    """Dispose of the pool on its loop, then stop the loop thread."""
    try:
        if loop.running:
            loop.run(database.dispose())
    finally:
        loop.close()
