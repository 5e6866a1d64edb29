"""Running a fast-path query on asyncpg: which connection, and what a failure does to it.

Inside a transaction the statement runs on the session's connection.  A plain session
that has not begun one borrows a pooled connection for its first read (no ``BEGIN``) and
gives it straight back; the checkout skips the pre-ping, and a connection found dead is
replaced once.  A failure that leaves a connection unusable invalidates it, as SQLAlchemy
would.  See :mod:`biotech_ma_db.repositories._fast` for when this path runs at all.

:func:`fetch_written` runs a statement that writes (the fast insert's ``INSERT ...
RETURNING``) the same way, always in the session's transaction: the ``BEGIN`` the
adapter defers is sent first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.pool import PoolProxiedConnection

from biotech_ma_db.engine import (
    AUTOCOMMIT_READS_OPTION,
    FAST_READS_OPTION,
    PLAIN_SESSION_KEY,
    SLOW_QUERY_OPTION,
    deferred_ping,
)
from biotech_ma_db.engine.statement_hook import STATEMENT_HOOK_OPTION
from biotech_ma_db.engine.transactions import TRANSACTION_INFO_KEY, TransactionSettings
from biotech_ma_db.errors import translate_error
from biotech_ma_db.repositories._fast_shapes import Compiled, FastQuery
from biotech_ma_db.sa_internals import begin_on_driver, checkout_without_io, run_sync_in_greenlet

__all__ = ["Ran", "fetch", "fetch_written"]

slow_query_logger = logging.getLogger("biotech_ma_db.slow_query")

Ran = tuple[Compiled, list[Any]]
"""What a run returns: the compiled shape and asyncpg's rows."""

_CONNECTION_KEY: Final = "biotech_ma_db.fast_connection"
_NO_SETTINGS: Final = TransactionSettings()
_SLOW_QUERY_TEXT_LIMIT: Final = 500
_CLOSED_CONNECTION_NAMES: Final = frozenset({"ConnectionDoesNotExistError", "InterfaceError"})
_SESSION_ENDED_STATES: Final = frozenset({"57P01", "57P02", "57P03"})
_BROKEN_CONNECTION_NAMES: Final = frozenset(
    {"InterfaceError", "InternalClientError", "ConnectionDoesNotExistError", "TimeoutError"}
)


async def fetch(
    session: AsyncSession, sync: Session, query: FastQuery, values: Mapping[str, object]
) -> Ran | None:
    """Run ``query`` on a borrowed connection or the session's; ``None`` when it cannot.

    Raises:
        DatabaseError: The library's typed errors, as on the ORM path.
    """
    engine = _borrowable_engine(sync, query.mapper)
    try:
        if engine is not None:
            return await _run_borrowed(engine, query, values)
        return await _run_in_session(session, sync, query, values)
    except BaseException as exc:
        translated = translate_error(exc)
        if translated is exc:
            raise
        raise translated from exc


async def fetch_written(
    session: AsyncSession, sync: Session, query: FastQuery, values: Mapping[str, object]
) -> Ran | None:
    """Run the writing ``query`` in the session's transaction; ``None`` when it cannot.

    The caller has checked that the session may write.  ``None`` (nothing was sent) when
    the session's connection is invalidated or the engine sends no statements to the
    driver itself (behind pgbouncer): the caller runs its statement through SQLAlchemy.

    Raises:
        DatabaseError: The library's typed errors, as on the ORM path.
    """
    try:
        conn = await _connection(session, sync, query.mapper)
        return await _run_on_session_connection(conn, query, values, begin=True)
    except BaseException as exc:
        translated = translate_error(exc)
        if translated is exc:
            raise
        raise translated from exc


def _borrowable_engine(session: Session, mapper: Mapper[Any]) -> Engine | None:
    """The engine to borrow a connection from, for a plain session's first read.

    Only sessions :meth:`Database.session` marked plain (no per-transaction settings to
    apply), before they begin a transaction, and once per session: a session that reads
    again keeps one connection, as the ORM would.
    """
    info = session.info
    if info.get(PLAIN_SESSION_KEY) is not True or session.get_transaction() is not None:
        return None
    bind = session.get_bind(mapper)
    if not isinstance(bind, Engine) or not bind.get_execution_options().get(
        AUTOCOMMIT_READS_OPTION
    ):
        return None
    info[PLAIN_SESSION_KEY] = "borrowed"
    return bind


async def _run_borrowed(
    engine: Engine, query: FastQuery, values: Mapping[str, object]
) -> Ran | None:
    """Run on a connection borrowed from the pool for this one statement.

    The checkout skips the pre-ping (:func:`deferred_ping`): this lone ``SELECT`` outside
    a transaction probes the connection itself, and if the connection turns out to have
    died while idle, the statement runs once more on a fresh, pinged checkout, so the
    caller sees no error a ping would have spared it.
    """
    with deferred_ping():
        fairy = checkout_without_io(engine)
        if fairy is None:
            fairy = await run_sync_in_greenlet(engine.raw_connection)
    try:
        return await _run_on(fairy, engine, query, values)
    except Exception as exc:
        if not _dead_on_arrival(exc):
            raise
    fairy = await run_sync_in_greenlet(engine.raw_connection)
    return await _run_on(fairy, engine, query, values)


async def _run_in_session(
    session: AsyncSession, sync: Session, query: FastQuery, values: Mapping[str, object]
) -> Ran | None:
    """Run on the session's connection; ``None`` when it is not in a usable state.

    The first statement of a fresh session (a new unit of work, typically) is a lone
    ``SELECT`` before ``BEGIN``: its checkout skips the pre-ping, as a borrowed read's
    does, and if the connection turns out to have died while idle the statement runs once
    more on a fresh, pinged one (nothing ran and nothing was loaded, so ending the dead
    transaction first changes nothing the caller can see).
    """
    if not _may_defer_ping(sync, query.mapper):
        conn = await _connection(session, sync, query.mapper)
        return await _run_on_session_connection(conn, query, values)
    with deferred_ping():
        conn = await _connection(session, sync, query.mapper)
    try:
        return await _run_on_session_connection(conn, query, values)
    except Exception as exc:
        if not _dead_on_arrival(exc):
            raise
    await session.rollback()
    conn = await _connection(session, sync, query.mapper)
    return await _run_on_session_connection(conn, query, values)


def _may_defer_ping(session: Session, mapper: Mapper[Any]) -> bool:
    """Whether this read will be the first statement on a fresh connection, before BEGIN.

    That is: no transaction yet, nothing loaded (a rollback on retry would expire it), no
    per-transaction settings (they would send statements at ``BEGIN`` time), and an engine
    whose fast reads run before ``BEGIN``.
    """
    if session.get_transaction() is not None or len(session.identity_map):
        return False
    if session.info.get(TRANSACTION_INFO_KEY, _NO_SETTINGS) != _NO_SETTINGS:
        return False
    bind = session.get_bind(mapper)
    if not isinstance(bind, Engine):
        return False
    options = bind.get_execution_options()
    return bool(options.get(AUTOCOMMIT_READS_OPTION) and options.get(FAST_READS_OPTION, True))


async def _run_on_session_connection(
    conn: AsyncConnection, query: FastQuery, values: Mapping[str, object], *, begin: bool = False
) -> Ran | None:
    """Run on the session's connection, after sending the deferred ``BEGIN`` if ``begin``."""
    sync_conn = conn.sync_connection
    if sync_conn is None or sync_conn.invalidated:
        return None
    options = sync_conn.get_execution_options()
    fairy = sync_conn.connection
    try:
        if begin:
            if not options.get(FAST_READS_OPTION, True):
                return None
            await begin_on_driver(fairy.dbapi_connection)
        return await _run(query, values, fairy, sync_conn.dialect, options)
    except BaseException as exc:
        if _breaks_connection(exc):
            await conn.invalidate()  # as SQLAlchemy does on a disconnect
        raise


async def _run_on(
    fairy: PoolProxiedConnection, engine: Engine, query: FastQuery, values: Mapping[str, object]
) -> Ran | None:
    """Run on the checked-out ``fairy`` and give it back (invalidated if it broke)."""
    try:
        return await _run(query, values, fairy, engine.dialect, engine.get_execution_options())
    except BaseException as exc:
        if _breaks_connection(exc):
            await run_sync_in_greenlet(
                fairy.invalidate, exc if isinstance(exc, Exception) else None
            )
        raise
    finally:
        if fairy.dbapi_connection is not None:
            # Back to the pool: no transaction was begun, so the reset sends nothing.
            fairy.close()


async def _run(
    query: FastQuery,
    values: Mapping[str, object],
    fairy: PoolProxiedConnection,
    dialect: Dialect,
    options: Mapping[str, Any],
) -> Ran | None:
    """Execute on the pooled connection ``fairy``; ``None`` when it is not in a usable state."""
    driver: Any = fairy.driver_connection
    if not options.get(FAST_READS_OPTION, True):
        return None
    if not driver.is_in_transaction() and not options.get(AUTOCOMMIT_READS_OPTION):
        return None
    compiled = await query.compiled(dialect, driver)
    args = [
        value if processor is None else processor(value)
        for name, default, processor in compiled.params
        for value in (values.get(name, default),)
    ]
    hook = options.get(STATEMENT_HOOK_OPTION)
    started = time.perf_counter()
    if hook is None:
        rows: list[Any] = await driver.fetch(compiled.sql, *args)
    else:
        with hook(compiled.sql):  # e.g. a statement span (biotech_ma_db.tracing)
            rows = await driver.fetch(compiled.sql, *args)
    threshold = options.get(SLOW_QUERY_OPTION)
    if threshold is not None and (elapsed := time.perf_counter() - started) >= threshold:
        slow_query_logger.warning(
            "slow query: %.1f ms: %s",
            elapsed * 1000,
            " ".join(compiled.sql.split())[:_SLOW_QUERY_TEXT_LIMIT],
        )
    return compiled, rows


async def _connection(session: AsyncSession, sync: Session, mapper: Mapper[Any]) -> AsyncConnection:
    """The session's connection for ``mapper``, remembered for the current transaction.

    ``AsyncSession.connection()`` costs a greenlet switch per call; within one transaction
    its answer for a mapper does not change.  A unit of work reads and writes several
    models in one transaction, so the answers are kept per mapper.
    """
    transaction = sync.get_transaction()
    cached = sync.info.get(_CONNECTION_KEY)
    if (
        cached is not None
        and transaction is not None
        and cached[0] is transaction
        and transaction.is_active
        and (found := cached[1].get(mapper)) is not None
    ):
        connection: AsyncConnection = found
        return connection
    connection = await session.connection(bind_arguments={"mapper": mapper})
    transaction = sync.get_transaction()
    if cached is None or cached[0] is not transaction:
        by_mapper: dict[Mapper[Any], AsyncConnection] = {}
        sync.info[_CONNECTION_KEY] = (transaction, by_mapper)
    else:
        by_mapper = cached[1]
    by_mapper[mapper] = connection
    return connection


def _dead_on_arrival(exc: Exception) -> bool:
    """Whether a statement failed because its connection had died before it was sent.

    The socket was closed or reset, or the server had ended the session (administrator
    command, shutdown, crash recovery): what a pre-ping would have caught.  Not a
    timeout: a server that does not answer would not have answered a ping either, and
    waiting twice would double the caller's stall.
    """
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _SESSION_ENDED_STATES or sqlstate.startswith("08")
    if isinstance(exc, OSError):
        return not isinstance(exc, TimeoutError)
    return any(cls.__name__ in _CLOSED_CONNECTION_NAMES for cls in type(exc).__mro__)


def _breaks_connection(exc: BaseException) -> bool:
    """Whether a failure leaves the connection unusable (SQLAlchemy would invalidate it)."""
    if getattr(exc, "sqlstate", None) is not None:
        return False  # the server answered: the connection is fine
    if not isinstance(exc, Exception) or isinstance(exc, OSError):
        return True  # cancelled mid-statement, or the socket failed
    return any(cls.__name__ in _BROKEN_CONNECTION_NAMES for cls in type(exc).__mro__)
