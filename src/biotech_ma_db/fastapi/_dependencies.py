"""Per-request units of work: committed when the handler returns, rolled back if it raises.

Each dependency is a ``yield`` dependency with ``scope="function"`` (FastAPI 0.121+): its
exit, and so the ``COMMIT``, runs after the handler and before the response is sent.
With the default scope FastAPI would run it after the response, and a commit that fails
there would be lost while the client had been told it worked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends
from fastapi.params import Depends as DependsParam

from biotech_ma_db.database import Database
from biotech_ma_db.fastapi._lifespan import get_database
from biotech_ma_db.unit_of_work import IsolationLevel, UnitOfWork

__all__ = [
    "ReadOnlyUnitOfWorkDep",
    "UnitOfWorkDep",
    "read_only_unit_of_work",
    "request_unit_of_work",
    "unit_of_work",
]


@asynccontextmanager
async def request_unit_of_work(
    database: Database,
    *,
    read_only: bool = False,
    actor: str | None = None,
    reason: str | None = None,
    client_id: int | None = None,
    isolation_level: IsolationLevel | None = None,
) -> AsyncIterator[UnitOfWork]:
    """The body of every unit-of-work dependency: enter, hand out, commit (or roll back).

    Use it to write a dependency of your own (an ``actor`` taken from your auth, say)::

        async def audited(
            db: DatabaseDep, user: CurrentUser
        ) -> AsyncIterator[UnitOfWork]:
            async with request_unit_of_work(db, actor=user.email) as uow:
                yield uow

        AuditedUnitOfWork = Annotated[UnitOfWork, Depends(audited, scope="function")]

    An exception from the handler arrives at the ``yield``: the unit of work rolls back
    and releases its connection, and the exception goes on to the error handlers.  A
    read-only unit of work is not committed (there is nothing to keep).
    """
    async with database.unit_of_work(
        read_only=read_only,
        actor=actor,
        reason=reason,
        client_id=client_id,
        isolation_level=isolation_level,
    ) as uow:
        yield uow
        if not read_only:
            await uow.commit()


def unit_of_work(
    *,
    actor: str | None = None,
    reason: str | None = None,
    isolation_level: IsolationLevel | None = None,
) -> DependsParam:
    """A dependency that gives the handler a unit of work and commits it afterwards.

    ::

        AuditedUnitOfWork = Annotated[UnitOfWork, unit_of_work(actor="api", reason="import")]

        @app.post("/companies")
        async def create(uow: AuditedUnitOfWork) -> ...: ...

    Keep such aliases at module level: under ``from __future__ import annotations``
    FastAPI resolves a handler's annotations in its module's globals only.

    Args:
        actor: Who makes the changes (audit columns and ``audit_log``).
        reason: Why (``change_reason`` and ``audit_log.reason``).
        isolation_level: ``"REPEATABLE READ"`` or ``"SERIALIZABLE"`` (server default when
            omitted).

    Returns:
        A ``Depends`` (scope ``"function"``) to put in ``Annotated[UnitOfWork, ...]``.
    """

    async def dependency(
        database: Annotated[Database, Depends(get_database)],
    ) -> AsyncIterator[UnitOfWork]:
        async with request_unit_of_work(
            database, actor=actor, reason=reason, isolation_level=isolation_level
        ) as uow:
            yield uow

    return _scoped(dependency)


def read_only_unit_of_work(*, isolation_level: IsolationLevel | None = None) -> DependsParam:
    """A dependency that gives the handler a read-only unit of work.

    It is ``db.unit_of_work(read_only=True)``: every transaction starts ``READ ONLY`` (a
    write is a :class:`~biotech_ma_db.errors.PermissionDeniedError`), and the reads go to
    a read replica when the ``Database`` has one.

    Returns:
        A ``Depends`` (scope ``"function"``) to put in ``Annotated[UnitOfWork, ...]``.
    """

    async def dependency(
        database: Annotated[Database, Depends(get_database)],
    ) -> AsyncIterator[UnitOfWork]:
        async with request_unit_of_work(
            database, read_only=True, isolation_level=isolation_level
        ) as uow:
            yield uow

    return _scoped(dependency)


def _scoped(dependency: Callable[..., AsyncIterator[UnitOfWork]]) -> DependsParam:
    scoped: DependsParam = Depends(dependency, scope="function")
    return scoped


UnitOfWorkDep = Annotated[UnitOfWork, unit_of_work()]
"""A handler parameter: a unit of work committed when the handler returns."""

ReadOnlyUnitOfWorkDep = Annotated[UnitOfWork, read_only_unit_of_work()]
"""A handler parameter: a read-only unit of work (served by a replica when configured)."""
