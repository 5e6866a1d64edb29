"""``ConnectionManager``: the object that owns the engines, the pools and the session factory.

It is the engine layer of the package (below the models, repositories and the unit of
work); :class:`~biotech_ma_db.database.Database` builds on it and adds the unit of work.
Besides the primary it keeps one engine and pool per read replica
(``DB_READ_REPLICA_URLS``) and routes read-only sessions to them
(:mod:`biotech_ma_db.engine.routing`).  Nothing here runs at import time; the engines
connect lazily on first use.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from biotech_ma_db.engine.consistency import ConsistencyToken, current_token, parse_lsn
from biotech_ma_db.engine.read_only import install_read_only_guard
from biotech_ma_db.engine.replicas import Replica, build_engine
from biotech_ma_db.engine.routing import ReplicaRouter, SessionLease
from biotech_ma_db.engine.session_scope import SessionScope
from biotech_ma_db.engine.status import HealthReport, PoolStatus, pool_snapshot
from biotech_ma_db.engine.transactions import install_transaction_listener
from biotech_ma_db.errors import ValidationError, translate_error
from biotech_ma_db.security import SecurityConfig
from biotech_ma_db.settings import DatabaseSettings

__all__ = ["ConnectionManager", "HealthReport", "PoolStatus"]

logger = logging.getLogger("biotech_ma_db")

_HEALTH_SQL = (
    "SELECT current_setting('server_version'), pg_is_in_recovery(),"
    " (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
    " ELSE pg_current_wal_lsn() END)::text"
)


class ConnectionManager:
    """Engines, connection pools and session factory for one PostgreSQL database.

    The part of :class:`~biotech_ma_db.database.Database` that sits below the models:
    it knows engines, pools and sessions, nothing about repositories or units of work.

    Args:
        settings: Connection and pool settings; read from the environment when omitted.
    """

    def __init__(self, settings: DatabaseSettings | None = None) -> None:
        self.settings = settings if settings is not None else DatabaseSettings()
        self.engine = build_engine(self.settings.url(), self.settings)
        #: API-key pepper, webhook-secret keys and the https rule, from the settings.
        self.security = SecurityConfig.from_settings(self.settings)
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        #: The read replicas (``DB_READ_REPLICA_URLS``), each with its own engine and pool.
        self.router = ReplicaRouter(
            [Replica(url, self.settings) for url in self.settings.replica_urls()],
            max_lag_s=self.settings.max_replica_lag_s,
        )

    @classmethod
    def from_url(cls, url: str | URL, **overrides: Any) -> Self:
        """An instance for an explicit URL; ``overrides`` are settings fields."""
        return cls(DatabaseSettings.from_url(url, **overrides))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.engine.url!r})"

    async def __aenter__(self) -> Self:
        """Probe the read replicas once: an unreachable one starts out of rotation.

        That is logged as a warning, never raised: reads go to the other replicas or to
        the primary until it answers.
        """
        if self.router:
            await self.router.probe_all(None)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.dispose()

    def session(
        self,
        *,
        read_only: bool = False,
        consistency: ConsistencyToken | None = None,
        consistency_wait: float | None = None,
    ) -> AbstractAsyncContextManager[AsyncSession]:
        """An ``AsyncSession`` that commits on clean exit and rolls back on error.

        Errors leave as the library's typed errors (see :mod:`biotech_ma_db.errors`),
        with the driver's exception as ``__cause__``.

        Args:
            read_only: Run on a read replica when one can take the read (else on the
                primary), every transaction ``READ ONLY``; a write raises
                :class:`~biotech_ma_db.errors.ReadOnlyViolationError` before any SQL.
            consistency: With ``read_only``, a token from an earlier commit
                (:meth:`consistency_token`, ``uow.consistency_token``): only a replica
                that has replayed it may serve the read.
            consistency_wait: Seconds to wait for a replica to replay ``consistency``
                before reading on the primary (default ``DB_REPLICA_WAIT_MS``).
        """
        if not read_only:
            return SessionScope(self.sessionmaker)
        return SessionScope(
            self.sessionmaker, lambda: self.open_read_session(consistency, consistency_wait)
        )

    async def open_read_session(
        self,
        consistency: ConsistencyToken | None = None,
        consistency_wait: float | None = None,
    ) -> SessionLease:
        """A bare session for a read: on a replica that can take it, else on the primary.

        The building block of ``session(read_only=True)`` and of read-only units of
        work: the caller closes the session, then calls ``await lease.release()``.

        Raises:
            ValidationError: ``consistency`` is not a token, or ``consistency_wait`` is
                not a finite number of seconds.
        """
        wait_s = self.read_wait(consistency, consistency_wait)
        install_read_only_guard()
        install_transaction_listener()
        return await self.router.lease(self.sessionmaker, consistency, wait_s)

    def read_wait(
        self, consistency: ConsistencyToken | None, consistency_wait: float | None
    ) -> float:
        """Check the read-routing arguments; the wait in seconds they come to.

        Raises:
            ValidationError: ``consistency`` is not a token, or ``consistency_wait`` is
                not a finite number of seconds.
        """
        if consistency is not None and not isinstance(consistency, ConsistencyToken):
            raise ValidationError("consistency", "expected a ConsistencyToken")
        return _wait_seconds(consistency_wait, self.settings.replica_wait_ms / 1000)

    async def consistency_token(self) -> ConsistencyToken:
        """A token covering every commit on the primary so far (for read-your-writes).

        Pass it as ``consistency=`` to a read-only session or unit of work, which then
        reads on a replica only once that replica has replayed this far.  Ask for it
        after the commit whose effects the read must see.
        """
        return await current_token(self.engine)

    async def health(self) -> HealthReport:
        """Probe the server: one round trip, its latency, version and recovery state.

        With read replicas, each is probed too (all at once) and reported in
        ``replicas``: in rotation or not, its lag behind the primary in WAL bytes and in
        seconds.  A replica that answers is put back in rotation, one that does not is
        taken out.
        """
        started = time.perf_counter()
        primary_lsn: int | None = None
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(text(_HEALTH_SQL))).one()
        except Exception as exc:  # noqa: BLE001 — a health probe reports, it does not raise
            report = HealthReport(
                ok=False,
                latency_ms=(time.perf_counter() - started) * 1000,
                server_version=None,
                in_recovery=None,
                error=str(translate_error(exc)) or type(exc).__name__,
            )
        else:
            report = HealthReport(
                ok=True,
                latency_ms=(time.perf_counter() - started) * 1000,
                server_version=str(row[0]),
                in_recovery=bool(row[1]),
            )
            primary_lsn = parse_lsn(row[2]) if row[2] is not None else None
        if not self.router:
            return report
        return replace(report, replicas=await self.router.probe_all(primary_lsn))

    def pool_status(self) -> PoolStatus:
        """Pool size, connections checked in and out, overflow in use, and limits.

        ``replicas`` gives each replica's pool, rotation state and the lag measured last
        (by :meth:`health` or a routed read), without any I/O.
        """
        status = pool_snapshot(self.engine, self.settings)
        if not self.router:
            return status
        return replace(status, replicas=self.router.statuses())

    async def dispose(self) -> None:
        """Close every pooled connection, the replicas' too; usable again afterwards."""
        await self.engine.dispose()
        await self.router.dispose()

    aclose = dispose


def _wait_seconds(value: object, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError("consistency_wait", "expected a finite number of seconds")
    return max(float(value), 0.0)
