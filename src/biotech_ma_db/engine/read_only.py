"""The read-only guard: a write on a read-only session fails before any SQL is sent.

A session marked with :data:`READ_ONLY_KEY` in its ``info`` (``db.session(read_only=True)``,
``db.unit_of_work(read_only=True)``) may run on a hot standby, where the server would refuse
the write only after the round trip, or on the primary inside ``READ ONLY`` transactions.
Either way the caller gets :class:`~biotech_ma_db.errors.ReadOnlyViolationError` from the
client instead, for:

- a flush with new, changed or deleted objects (``before_flush``);
- Core ``INSERT``/``UPDATE``/``DELETE`` statements executed through the session (each
  connection a read-only session begins a transaction on carries
  :data:`READ_ONLY_OPTION`, checked in ``before_execute``);
- writes that go straight to the driver (COPY, ``executemany``), which call
  :func:`ensure_writable` first.

Raw SQL text is not parsed: the server still refuses it (``READ ONLY`` transaction or
standby, SQLSTATE 25006, :class:`~biotech_ma_db.errors.PermissionDeniedError`).
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql.dml import UpdateBase

from biotech_ma_db.errors import ReadOnlyViolationError

__all__ = [
    "READ_ONLY_KEY",
    "READ_ONLY_OPTION",
    "ensure_writable",
    "install_read_only_guard",
    "install_statement_guard",
    "is_read_only",
    "read_only_listeners",
]

READ_ONLY_KEY: Final = "biotech_ma_db.read_only"
"""``Session.info`` key: the session must not write."""

READ_ONLY_OPTION: Final = "biotech_ma_db.read_only"
"""Connection execution option set on the connections a read-only session runs on."""


def is_read_only(session: Session) -> bool:
    """Whether ``session`` is marked read-only."""
    return session.info.get(READ_ONLY_KEY) is True


def ensure_writable(session: Session, action: str) -> None:
    """Raise before ``action`` (e.g. ``"COPY"``) when ``session`` is read-only.

    Raises:
        ReadOnlyViolationError: The session is read-only.
    """
    if is_read_only(session):
        raise ReadOnlyViolationError(f"{action} on a read-only session: nothing was sent")


def install_read_only_guard() -> None:
    """Listen for every session's flushes and transactions once per process (idempotent)."""
    if not event.contains(Session, "before_flush", _refuse_flush):
        event.listen(Session, "before_flush", _refuse_flush)
    if not event.contains(Session, "after_begin", _mark_connection):
        event.listen(Session, "after_begin", _mark_connection)


def read_only_listeners() -> tuple[object, ...]:
    """The session listeners :func:`install_read_only_guard` registers."""
    return (_refuse_flush, _mark_connection)


def install_statement_guard(engine: AsyncEngine) -> None:
    """Refuse Core DML on ``engine``'s connections that a read-only session marked."""
    if not event.contains(engine.sync_engine, "before_execute", _refuse_dml):
        event.listen(engine.sync_engine, "before_execute", _refuse_dml)


def _refuse_flush(session: Session, _flush_context: object, _instances: object) -> None:
    if is_read_only(session) and (session.new or session.dirty or session.deleted):
        raise ReadOnlyViolationError(
            "a read-only session cannot write: the flush has new, changed or deleted "
            "objects (nothing was sent)"
        )


def _mark_connection(
    session: Session, _transaction: SessionTransaction, connection: Connection
) -> None:
    # The option lives on this Connection object only, not on the pooled DBAPI
    # connection, so it is gone when the connection goes back to the pool.
    if is_read_only(session):
        connection.execution_options(**{READ_ONLY_OPTION: True})


def _refuse_dml(conn: Connection, clause: object, *_: Any) -> None:
    if isinstance(clause, UpdateBase) and conn.get_execution_options().get(READ_ONLY_OPTION):
        verb = type(clause).__name__.upper()
        raise ReadOnlyViolationError(f"{verb} on a read-only session: nothing was sent")
