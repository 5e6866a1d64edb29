"""Per-transaction settings: isolation level, ``READ ONLY`` and the row-level-security client.

A session that carries :class:`TransactionSettings` under :data:`TRANSACTION_INFO_KEY` in
its ``info`` gets them applied as each of its (outer) transactions begins, on the
connection that transaction runs on: ``SET TRANSACTION ...`` and a transaction-local
``set_config('app.client_id', ...)``.  Transaction-local, so nothing outlives the
transaction on a pooled (or pgbouncer) server connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, SessionTransaction

__all__ = [
    "TRANSACTION_INFO_KEY",
    "IsolationLevel",
    "TransactionSettings",
    "install_transaction_listener",
]

IsolationLevel = Literal["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"]
"""Transaction isolation levels a unit of work may ask for."""

TRANSACTION_INFO_KEY: Final = "biotech_ma_db.transaction"
"""Key of the :class:`TransactionSettings` in ``Session.info``."""


@dataclass(frozen=True, slots=True)
class TransactionSettings:
    """What every transaction of a unit of work's session starts with.

    Attributes:
        read_only: Run ``SET TRANSACTION READ ONLY``.
        client_id: Publish ``app.client_id`` for row-level security.
        reset_client: Without ``client_id``, publish an empty ``app.client_id``.
        isolation_level: Run ``SET TRANSACTION ISOLATION LEVEL ...``.
    """

    read_only: bool = False
    client_id: int | None = None
    reset_client: bool = False
    isolation_level: IsolationLevel | None = None


def install_transaction_listener() -> None:
    """Listen for every session's ``after_begin`` once per process (idempotent)."""
    if not event.contains(Session, "after_begin", _start_transaction):
        event.listen(Session, "after_begin", _start_transaction)


def _start_transaction(
    session: Session, transaction: SessionTransaction, connection: Connection
) -> None:
    """Apply the unit of work's :class:`TransactionSettings` as each transaction begins."""
    settings = session.info.get(TRANSACTION_INFO_KEY)
    if not isinstance(settings, TransactionSettings) or transaction.nested:
        return
    modes = []
    if settings.isolation_level is not None:
        modes.append(f"ISOLATION LEVEL {settings.isolation_level}")  # validated literal
    if settings.read_only:
        modes.append("READ ONLY")
    if modes:
        connection.exec_driver_sql(f"SET TRANSACTION {', '.join(modes)}")
    if settings.client_id is not None:
        connection.execute(
            text("SELECT set_config('app.client_id', :client_id, true)"),
            {"client_id": str(settings.client_id)},
        )
    elif settings.reset_client:
        connection.exec_driver_sql("SELECT set_config('app.client_id', '', true)")
