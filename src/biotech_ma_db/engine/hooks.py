"""Engine event hooks: disconnect detection, the one-round-trip pre-ping, slow-query log.

Installed once per engine by :func:`install_engine_hooks`; each hook is keyed to that
engine, so other engines in the process keep SQLAlchemy's defaults.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import Connection, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from biotech_ma_db.errors import DatabaseError
from biotech_ma_db.sa_internals import AsyncAdaptedConnection, await_driver, replace_ping
from biotech_ma_db.settings import DatabaseSettings

__all__ = ["deferred_ping", "install_engine_hooks"]

slow_query_logger = logging.getLogger("biotech_ma_db.slow_query")

_SLOW_QUERY_TEXT_LIMIT = 500
_DISCONNECT_DRIVER_ERRORS = frozenset({"InternalClientError", "TimeoutError"})


def install_engine_hooks(engine: AsyncEngine, settings: DatabaseSettings) -> None:
    """Install this library's event hooks on ``engine`` (see the module docstring)."""
    event.listen(engine.sync_engine, "handle_error", _mark_driver_disconnects)
    if settings.pgbouncer:
        event.listen(engine.sync_engine, "set_connection_execution_options", _refuse_autocommit)
        event.listen(engine.sync_engine, "set_engine_execution_options", _refuse_autocommit)
    if settings.pool_pre_ping and not settings.pgbouncer:
        # This engine's own dialect instance: other engines keep SQLAlchemy's ping.
        replace_ping(engine.sync_engine.dialect, _ping_one_round_trip)
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


def _ping_one_round_trip(dbapi_connection: AsyncAdaptedConnection) -> bool:
    """Pre-ping with one empty statement instead of ``BEGIN``; ``;``; ``ROLLBACK``.

    SQLAlchemy's asyncpg ping wraps the probe in a transaction so that it works behind
    pgbouncer in transaction mode; talking to PostgreSQL directly, one round trip tests
    the connection just as well (the pgbouncer preset keeps SQLAlchemy's ping).  Failures
    go through the adapter's own translation, so the pool sees the same disconnect errors.
    Inside :func:`deferred_ping` the caller's own statement is the probe.
    """
    if _PING_DEFERRED.get():
        return True
    await_driver(dbapi_connection, lambda driver: driver.fetchrow(";"))
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
