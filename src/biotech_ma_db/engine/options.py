"""Engine and connection options derived from :class:`~biotech_ma_db.settings.DatabaseSettings`.

What ``create_async_engine`` and asyncpg's ``connect()`` are given: pool sizing, timeouts,
server settings sent in the startup packet, TLS, the pgbouncer preset, and the execution
options that the repositories' fast read path reads.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

from biotech_ma_db.settings import DatabaseSettings

__all__ = [
    "AUTOCOMMIT_READS_OPTION",
    "FAST_READS_OPTION",
    "PLAIN_SESSION_KEY",
    "SLOW_QUERY_OPTION",
    "connect_args",
    "engine_options",
    "fast_path_options",
    "server_settings",
]

FAST_READS_OPTION: Final = "biotech_ma_db.fast_reads"
"""Engine execution option: repositories may use their fast read path (default on)."""

AUTOCOMMIT_READS_OPTION: Final = "biotech_ma_db.autocommit_reads"
"""Engine execution option: a fast read may run as one statement before ``BEGIN``."""

SLOW_QUERY_OPTION: Final = "biotech_ma_db.slow_query_s"
"""Engine execution option: fast reads slower than this many seconds are logged."""

PLAIN_SESSION_KEY: Final = "biotech_ma_db.plain_session"
"""``Session.info`` key set by ``Database.session()`` (no per-transaction settings)."""


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
