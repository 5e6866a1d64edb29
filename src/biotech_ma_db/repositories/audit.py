"""``AuditLogRepository``: read the audit trail (it is append-only, so reads only)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import ClassVar

from sqlalchemy import select

from biotech_ma_db.errors import ValidationError
from biotech_ma_db.models import AuditLogEntry
from biotech_ma_db.repositories.base import ReadRepository, check_id
from biotech_ma_db.repositories.query import (
    DEFAULT_LIMIT,
    ColumnAttribute,
    SortSpec,
    check_limit,
)

__all__ = ["AuditLogRepository"]


class AuditLogRepository(ReadRepository[AuditLogEntry]):
    """The ``audit_log`` rows written by units of work (see :mod:`biotech_ma_db.auditing`)."""

    model = AuditLogEntry
    sortable: ClassVar[Mapping[str, ColumnAttribute]] = {
        "id": AuditLogEntry.id,
        "occurred_at": AuditLogEntry.occurred_at,
    }
    filterable: ClassVar[Mapping[str, ColumnAttribute]] = {
        **sortable,
        "actor": AuditLogEntry.actor,
        "table_name": AuditLogEntry.table_name,
        "row_id": AuditLogEntry.row_id,
        "action": AuditLogEntry.action,
        "transaction_id": AuditLogEntry.transaction_id,
    }
    default_order: ClassVar[SortSpec] = "id"

    async def for_row(
        self, table_name: str, row_id: int, *, limit: int = DEFAULT_LIMIT
    ) -> builtins.list[AuditLogEntry]:
        """The history of one row, oldest first."""
        if not _is_table_name(table_name):
            raise ValidationError("table_name", "expected a table name")
        stmt = (
            select(AuditLogEntry)
            .where(
                AuditLogEntry.table_name == table_name,
                AuditLogEntry.row_id == check_id(row_id, "row_id"),
            )
            .order_by(AuditLogEntry.id)
            .limit(check_limit(limit))
        )
        return await self._scalars(stmt)

    async def for_transaction(
        self, transaction_id: int, *, limit: int = DEFAULT_LIMIT
    ) -> builtins.list[AuditLogEntry]:
        """Everything one transaction (one unit of work's commit) changed, in order."""
        stmt = (
            select(AuditLogEntry)
            .where(AuditLogEntry.transaction_id == check_id(transaction_id, "transaction_id"))
            .order_by(AuditLogEntry.id)
            .limit(check_limit(limit))
        )
        return await self._scalars(stmt)


def _is_table_name(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 63 and "\x00" not in value
