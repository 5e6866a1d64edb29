"""``Database``: engines, pools and sessions, plus the unit of work over them.

Build one per process (or per test), use it as an async context manager, and let it
dispose the pool on the way out::

    async with Database.from_url("postgresql+asyncpg://app@db/biotech_ma") as db:
        async with db.session() as session:
            ...                      # committed on clean exit, rolled back on error
        async with db.unit_of_work(actor="ops", reason="fix") as uow:
            ...
            await uow.commit()
        async with db.unit_of_work(read_only=True, consistency=uow.consistency_token) as ro:
            ...                      # on a read replica that has replayed that commit
        print(await db.health(), db.pool_status())

The facade of the package's layering: it sits above the unit of work, while the engine,
pool and session factory it inherits (:class:`~biotech_ma_db.engine.ConnectionManager`)
sit below the models.  Nothing here runs at import time; the engine connects lazily.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from biotech_ma_db.engine import (
    AUTOCOMMIT_READS_OPTION,
    FAST_READS_OPTION,
    PLAIN_SESSION_KEY,
    SLOW_QUERY_OPTION,
    ConnectionManager,
    ConsistencyToken,
    HealthReport,
    PoolStatus,
    ReplicaStatus,
    connect_args,
    deferred_ping,
    engine_options,
    fast_path_options,
    server_settings,
)
from biotech_ma_db.unit_of_work import (
    IsolationLevel,
    RetryEvent,
    UnitOfWork,
    run_in_transaction,
)

ResultT = TypeVar("ResultT")

__all__ = [
    "AUTOCOMMIT_READS_OPTION",
    "FAST_READS_OPTION",
    "PLAIN_SESSION_KEY",
    "SLOW_QUERY_OPTION",
    "ConsistencyToken",
    "Database",
    "HealthReport",
    "PoolStatus",
    "ReplicaStatus",
    "connect_args",
    "deferred_ping",
    "engine_options",
    "fast_path_options",
    "server_settings",
]


class Database(ConnectionManager):
    """Engine, connection pool, session factory and units of work for one database.

    Args:
        settings: Connection and pool settings; read from the environment when omitted.
    """

    def unit_of_work(
        self,
        *,
        read_only: bool = False,
        actor: str | None = None,
        reason: str | None = None,
        client_id: int | None = None,
        isolation_level: IsolationLevel | None = None,
        consistency: ConsistencyToken | None = None,
        consistency_wait: float | None = None,
    ) -> UnitOfWork:
        """A :class:`~biotech_ma_db.unit_of_work.UnitOfWork` on this database.

        Use it as ``async with db.unit_of_work(actor=..., reason=...) as uow:`` and call
        ``await uow.commit()``; leaving without a commit rolls back.

        Args:
            read_only: Start every transaction ``READ ONLY`` and refuse writes before any
                SQL (:class:`~biotech_ma_db.errors.ReadOnlyViolationError`); run on a read
                replica (``DB_READ_REPLICA_URLS``, round-robin over the healthy ones) when
                one can take it, else on the primary.
            actor: Who makes the changes (audit columns and ``audit_log``).
            reason: Why (``change_reason`` and ``audit_log.reason``).
            client_id: The API client the work is done for (row-level security); behind
                pgbouncer (``DB_PGBOUNCER``) a unit of work without one also resets
                ``app.client_id`` in each transaction.
            isolation_level: ``"REPEATABLE READ"`` or ``"SERIALIZABLE"`` for every
                transaction (the server's default, READ COMMITTED, when omitted).
            consistency: With ``read_only``, the ``consistency_token`` of an earlier unit's
                commit: only a replica that has replayed that commit may serve this unit.
                Ignored by units that write (they run on the primary).
            consistency_wait: Seconds to wait for a replica to replay ``consistency``
                before running on the primary (default ``DB_REPLICA_WAIT_MS``).
        """
        self.read_wait(consistency, consistency_wait)  # bad arguments fail here, always
        routed = read_only and bool(self.router)
        return UnitOfWork(
            self.sessionmaker,
            read_only=read_only,
            actor=actor,
            reason=reason,
            client_id=client_id,
            security=self.security,
            reset_client_scope=self.settings.pgbouncer,
            isolation_level=isolation_level,
            opener=(
                (lambda: self.open_read_session(consistency, consistency_wait)) if routed else None
            ),
            token_source=self.consistency_token if self.router and not read_only else None,
        )

    async def run_in_transaction(
        self,
        fn: Callable[[UnitOfWork], Awaitable[ResultT]],
        *,
        attempts: int = 4,
        deadline: float | None = 30.0,
        idempotent: bool = False,
        isolation_level: IsolationLevel | None = None,
        read_only: bool = False,
        actor: str | None = None,
        reason: str | None = None,
        client_id: int | None = None,
        retry_on: tuple[type[BaseException], ...] = (),
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        on_retry: Callable[[RetryEvent], object] | None = None,
    ) -> ResultT:
        """Run ``fn(uow)`` in a new unit of work, commit, and re-run it on transient errors.

        ::

            async def rename(uow: UnitOfWork) -> None:
                await uow.companies.update(company_id, name="New Name")

            await db.run_in_transaction(rename, actor="ops", reason="rebrand")

        Re-runs the whole unit (never a single statement) on serialization failures,
        deadlocks, lost or refused connections, server restarts and cached statements
        invalidated by DDL, with exponential backoff and full jitter, at most ``attempts``
        times and not past ``deadline`` seconds.  A connection lost while ``COMMIT`` was in
        flight raises :class:`~biotech_ma_db.errors.CommitOutcomeUnknownError` unless
        ``idempotent=True``.  See :func:`biotech_ma_db.unit_of_work.run_in_transaction`
        for every argument; the unit-of-work arguments are those of :meth:`unit_of_work`.
        """
        return await run_in_transaction(
            lambda: self.unit_of_work(
                read_only=read_only,
                actor=actor,
                reason=reason,
                client_id=client_id,
                isolation_level=isolation_level,
            ),
            fn,
            attempts=attempts,
            deadline=deadline,
            idempotent=idempotent,
            retry_on=retry_on,
            base_delay=base_delay,
            max_delay=max_delay,
            on_retry=on_retry,
        )
