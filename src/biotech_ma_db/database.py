"""``Database``: the one object that owns the engine, the pool and the session factory.

Build one per process (or per test), use it as an async context manager, and let it
dispose the pool on the way out::

    async with Database.from_url("postgresql+asyncpg://app@db/biotech_ma") as db:
        async with db.session() as session:
            ...                      # committed on clean exit, rolled back on error
        print(await db.health(), db.pool_status())

Nothing here runs at import time; the engine connects lazily on first use.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import QueuePool
from sqlalchemy.util.concurrency import await_

from biotech_ma_db.errors import DatabaseError, translate_error
from biotech_ma_db.security import SecurityConfig
from biotech_ma_db.settings import DatabaseSettings

if TYPE_CHECKING:
    from biotech_ma_db.unit_of_work import IsolationLevel, RetryEvent, UnitOfWork

ResultT = TypeVar("ResultT")

__all__ = [
    "AUTOCOMMIT_READS_OPTION",
    "FAST_READS_OPTION",
    "PLAIN_SESSION_KEY",
    "SLOW_QUERY_OPTION",
    "Database",
    "HealthReport",
    "PoolStatus",
    "deferred_ping",
]

logger = logging.getLogger("biotech_ma_db")
slow_query_logger = logging.getLogger("biotech_ma_db.slow_query")

_SLOW_QUERY_TEXT_LIMIT = 500

FAST_READS_OPTION: Final = "biotech_ma_db.fast_reads"
"""Engine execution option: repositories may use their fast read path (default on)."""

AUTOCOMMIT_READS_OPTION: Final = "biotech_ma_db.autocommit_reads"
"""Engine execution option: a fast read may run as one statement before ``BEGIN``."""

SLOW_QUERY_OPTION: Final = "biotech_ma_db.slow_query_s"
"""Engine execution option: fast reads slower than this many seconds are logged."""

PLAIN_SESSION_KEY: Final = "biotech_ma_db.plain_session"
"""``Session.info`` key set by :meth:`Database.session` (no per-transaction settings)."""
_DISCONNECT_DRIVER_ERRORS = frozenset({"InternalClientError", "TimeoutError"})


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The answer of :meth:`Database.health`.

    Attributes:
        ok: Whether a round trip to the server succeeded.
        latency_ms: Round-trip time of the probe, in milliseconds.
        server_version: ``server_version`` as reported by PostgreSQL (``None`` when down).
        in_recovery: True on a hot standby (read replica).
        error: Why the probe failed (typed error message, no secrets), else ``None``.
    """

    ok: bool
    latency_ms: float
    server_version: str | None
    in_recovery: bool | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """A snapshot of the connection pool (see :meth:`Database.pool_status`)."""

    size: int
    checked_in: int
    checked_out: int
    overflow: int
    max_overflow: int
    timeout: float


class Database:
    """Engine, connection pool and session factory for one PostgreSQL database.

    Args:
        settings: Connection and pool settings; read from the environment when omitted.
    """

    def __init__(self, settings: DatabaseSettings | None = None) -> None:
        self.settings = settings if settings is not None else DatabaseSettings()
        self.engine: AsyncEngine = create_async_engine(
            self.settings.url(), **engine_options(self.settings)
        )
        _install_engine_hooks(self.engine, self.settings)
        #: API-key pepper, webhook-secret keys and the https rule, from the settings.
        self.security = SecurityConfig.from_settings(self.settings)
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    @classmethod
    def from_url(cls, url: str | URL, **overrides: Any) -> Self:
        """A ``Database`` for an explicit URL; ``overrides`` are settings fields."""
        return cls(DatabaseSettings.from_url(url, **overrides))

    def __repr__(self) -> str:
        return f"Database({self.engine.url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.dispose()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """An ``AsyncSession`` that commits on clean exit and rolls back on error.

        Errors leave as the library's typed errors (see :mod:`biotech_ma_db.errors`),
        with the driver's exception as ``__cause__``.
        """
        session = self.sessionmaker()
        sync = session.sync_session
        # Plain session (no per-transaction settings): its first fast read may borrow a
        # pooled connection instead of starting a transaction (repositories/_fast.py).
        sync.info[PLAIN_SESSION_KEY] = True
        try:
            yield session
            # A session that never began a transaction and holds no changes has nothing
            # to commit; skipping the empty commit saves its bookkeeping.
            if sync.in_transaction() or not sync._is_clean():
                await session.commit()
        except BaseException as exc:
            await _rollback_quietly(session)
            translated = translate_error(exc)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            if sync.get_transaction() is None:
                # No transaction, so no connection to give back: closing only forgets
                # the objects, no I/O, and needs no task of its own.
                sync.close()
            else:
                # Holding a connection (e.g. cancelled mid-commit): SQLAlchemy's own
                # exit, which finishes the close even if this task is cancelled.
                await session.__aexit__(None, None, None)

    def unit_of_work(
        self,
        *,
        read_only: bool = False,
        actor: str | None = None,
        reason: str | None = None,
        client_id: int | None = None,
        isolation_level: IsolationLevel | None = None,
    ) -> UnitOfWork:
        """A :class:`~biotech_ma_db.unit_of_work.UnitOfWork` on this database.

        Use it as ``async with db.unit_of_work(actor=..., reason=...) as uow:`` and call
        ``await uow.commit()``; leaving without a commit rolls back.

        Args:
            read_only: Start every transaction ``READ ONLY``.
            actor: Who makes the changes (audit columns and ``audit_log``).
            reason: Why (``change_reason`` and ``audit_log.reason``).
            client_id: The API client the work is done for (row-level security); behind
                pgbouncer (``DB_PGBOUNCER``) a unit of work without one also resets
                ``app.client_id`` in each transaction.
            isolation_level: ``"REPEATABLE READ"`` or ``"SERIALIZABLE"`` for every
                transaction (the server's default, READ COMMITTED, when omitted).
        """
        # Imported here: the unit of work sits above this module in the layering
        # (database -> models -> repositories -> unit of work).
        from biotech_ma_db.unit_of_work import UnitOfWork  # noqa: PLC0415

        return UnitOfWork(
            self.sessionmaker,
            read_only=read_only,
            actor=actor,
            reason=reason,
            client_id=client_id,
            security=self.security,
            reset_client_scope=self.settings.pgbouncer,
            isolation_level=isolation_level,
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
        from biotech_ma_db.unit_of_work import run_in_transaction  # noqa: PLC0415

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

    async def health(self) -> HealthReport:
        """Probe the server: one round trip, its latency, version and recovery state."""
        started = time.perf_counter()
        try:
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(
                        text("SELECT current_setting('server_version'), pg_is_in_recovery()")
                    )
                ).one()
        except Exception as exc:  # noqa: BLE001 — a health probe reports, it does not raise
            return HealthReport(
                ok=False,
                latency_ms=(time.perf_counter() - started) * 1000,
                server_version=None,
                in_recovery=None,
                error=str(translate_error(exc)) or type(exc).__name__,
            )
        return HealthReport(
            ok=True,
            latency_ms=(time.perf_counter() - started) * 1000,
            server_version=str(row[0]),
            in_recovery=bool(row[1]),
        )

    def pool_status(self) -> PoolStatus:
        """Pool size, connections checked in and out, overflow in use, and limits."""
        pool = self.engine.pool
        if isinstance(pool, QueuePool):
            return PoolStatus(
                size=pool.size(),
                checked_in=pool.checkedin(),
                checked_out=pool.checkedout(),
                overflow=max(pool.overflow(), 0),
                max_overflow=self.settings.max_overflow,
                timeout=pool.timeout(),
            )
        return PoolStatus(0, 0, 0, 0, 0, self.settings.pool_timeout)

    async def dispose(self) -> None:
        """Close every pooled connection. The object can be used again afterwards."""
        await self.engine.dispose()

    aclose = dispose


def engine_options(settings: DatabaseSettings) -> dict[str, Any]:
    """Keyword arguments for ``create_async_engine`` derived from the settings."""
    return {
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_timeout": settings.pool_timeout,
        "pool_recycle": settings.pool_recycle,
        "pool_pre_ping": settings.pool_pre_ping,
        "pool_use_lifo": True,
        "echo": settings.echo,
        "hide_parameters": True,
        "connect_args": connect_args(settings),
        "execution_options": fast_path_options(settings),
    }


def fast_path_options(settings: DatabaseSettings) -> dict[str, Any]:
    """Engine execution options read by the repositories' fast read path.

    Behind pgbouncer both are off: :data:`FAST_READS_OPTION` because the fast path relies
    on asyncpg's named prepared statements, which a transaction-mode pooler cannot keep,
    and :data:`AUTOCOMMIT_READS_OPTION` (a fast read may run as one statement before the
    transaction's lazy ``BEGIN``) because a statement outside a transaction may reach
    another server connection.  :data:`SLOW_QUERY_OPTION` carries
    the slow-query threshold, since fast reads bypass the cursor events that log it.
    """
    options: dict[str, Any] = {
        FAST_READS_OPTION: not settings.pgbouncer,
        AUTOCOMMIT_READS_OPTION: not settings.pgbouncer,
    }
    if settings.slow_query_ms is not None:
        options[SLOW_QUERY_OPTION] = settings.slow_query_ms / 1000
    return options


def connect_args(settings: DatabaseSettings) -> dict[str, Any]:
    """asyncpg ``connect()`` arguments: timeouts, server settings, TLS, pooler preset."""
    args: dict[str, Any] = {
        "timeout": settings.connect_timeout_s,
        "command_timeout": settings.command_timeout_s,
        "server_settings": server_settings(settings),
    }
    ssl_option = settings.ssl_context()
    if ssl_option is not None:
        args["ssl"] = ssl_option
    if settings.pgbouncer:
        # A transaction-mode pooler hands each transaction to any server connection, so a
        # statement prepared on one is missing (or duplicated) on the next.
        args["statement_cache_size"] = 0
        args["prepared_statement_cache_size"] = 0
        args["prepared_statement_name_func"] = _unique_statement_name
    return args


def server_settings(settings: DatabaseSettings) -> dict[str, str]:
    """GUCs sent in the startup packet.

    Behind pgbouncer only ``application_name`` is sent: the pooler rejects other startup
    parameters, so timeouts belong in role defaults there (see the README).
    """
    values = {"application_name": settings.application_name}
    if settings.pgbouncer:
        return values
    optional = {
        "statement_timeout": settings.statement_timeout_ms,
        "lock_timeout": settings.lock_timeout_ms,
        "idle_in_transaction_session_timeout": settings.idle_in_transaction_timeout_ms,
        "client_connection_check_interval": settings.client_connection_check_interval_ms,
    }
    values.update({name: str(ms) for name, ms in optional.items() if ms is not None})
    return values


def _unique_statement_name() -> str:
    return f"__bmadb_{uuid.uuid4().hex}__"


def _install_engine_hooks(engine: AsyncEngine, settings: DatabaseSettings) -> None:
    event.listen(engine.sync_engine, "handle_error", _mark_driver_disconnects)
    if settings.pgbouncer:
        event.listen(engine.sync_engine, "set_connection_execution_options", _refuse_autocommit)
        event.listen(engine.sync_engine, "set_engine_execution_options", _refuse_autocommit)
    if settings.pool_pre_ping and not settings.pgbouncer:
        # This engine's own dialect instance: other engines keep SQLAlchemy's ping.
        engine.sync_engine.dialect.do_ping = _ping_one_round_trip  # type: ignore[method-assign]
    if settings.slow_query_ms is not None:
        threshold = settings.slow_query_ms / 1000
        event.listen(engine.sync_engine, "before_cursor_execute", _start_timer)
        event.listen(
            engine.sync_engine,
            "after_cursor_execute",
            lambda conn, _cursor, statement, *_: _log_if_slow(conn, statement, threshold),
        )


_PING_DEFERRED: Final[ContextVar[bool]] = ContextVar("biotech_ma_db.ping_deferred", default=False)


@contextmanager
def deferred_ping() -> Iterator[None]:
    """Pool checkouts in this block (this task only) skip the pre-ping.

    For a caller whose first statement probes the connection as well as a ping would: a
    lone ``SELECT`` outside a transaction, which the caller re-runs on a freshly checked
    out (and pinged) connection if the first one turns out to be dead.  That saves the
    ping's round trip on every healthy checkout and costs nothing on a dead one.
    """
    token = _PING_DEFERRED.set(True)
    try:
        yield
    finally:
        _PING_DEFERRED.reset(token)


def _ping_one_round_trip(dbapi_connection: Any) -> bool:
    """Pre-ping with one empty statement instead of ``BEGIN``; ``;``; ``ROLLBACK``.

    SQLAlchemy's asyncpg ping wraps the probe in a transaction so that it works behind
    pgbouncer in transaction mode; talking to PostgreSQL directly, one round trip tests
    the connection just as well (the pgbouncer preset keeps SQLAlchemy's ping).  Failures
    go through the adapter's own translation, so the pool sees the same disconnect errors.
    Inside :func:`deferred_ping` the caller's own statement is the probe.
    """
    if _PING_DEFERRED.get():
        return True
    try:
        await_(dbapi_connection.driver_connection.fetchrow(";"))
    except Exception as error:  # noqa: BLE001 — the adapter raises it as its DBAPI error
        dbapi_connection._handle_exception(error)
    return True


def _mark_driver_disconnects(context: ExceptionContext) -> None:
    """Treat a hung or confused connection as gone, so the pool replaces it.

    asyncpg raises a builtin ``TimeoutError`` for ``command_timeout`` and
    ``InternalClientError`` when its protocol state is broken; neither connection is safe
    to hand to the next caller.
    """
    original = context.original_exception
    names = {cls.__name__ for cls in type(original).__mro__}
    if names & _DISCONNECT_DRIVER_ERRORS or "another operation is in progress" in str(original):
        context.is_disconnect = True


def _refuse_autocommit(_target: object, options: dict[str, Any]) -> None:
    """Behind a transaction-mode pooler, AUTOCOMMIT statements break (T-MIG-6 measured most
    of 200 failing with every client-side mitigation), so refuse them up front."""
    if options.get("isolation_level") == "AUTOCOMMIT":
        raise DatabaseError(
            "AUTOCOMMIT is not supported through a transaction-mode pooler (DB_PGBOUNCER=true): "
            "run it over a direct connection (e.g. MIGRATION_DATABASE_URL)"
        )


def _start_timer(conn: Connection, *_: object) -> None:
    conn.info.setdefault("_bmadb_query_start", []).append(time.perf_counter())


def _log_if_slow(conn: Connection, statement: str, threshold: float) -> None:
    starts: list[float] = conn.info.get("_bmadb_query_start", [])
    if not starts:
        return
    elapsed = time.perf_counter() - starts.pop()
    if elapsed >= threshold:
        # The statement text only: bound parameters may carry personal data or secrets.
        slow_query_logger.warning(
            "slow query: %.1f ms: %s",
            elapsed * 1000,
            " ".join(statement.split())[:_SLOW_QUERY_TEXT_LIMIT],
        )


async def _rollback_quietly(session: AsyncSession) -> None:
    """Roll back without letting a failure here hide the error that got us here."""
    try:
        await session.rollback()
    except Exception:
        logger.warning("rollback after an error failed as well", exc_info=True)
