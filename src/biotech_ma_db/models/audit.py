"""``audit_log``: the append-only record of every audited change."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Index, func, text
from sqlalchemy.orm import Mapped, mapped_column

from biotech_ma_db.models.base import Base
from biotech_ma_db.models.enums import AuditAction, checked_enum

__all__ = ["AuditLogEntry"]


class AuditLogEntry(Base):
    """One change to one row: who, why, when, and the changed columns.

    ``changes`` maps each changed column to ``[old, new]``.  ``transaction_id`` is the
    PostgreSQL transaction id, which groups the entries of one unit of work.
    """

    __tablename__ = "audit_log"

    occurred_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    actor: Mapped[str | None]
    reason: Mapped[str | None]
    table_name: Mapped[str]
    row_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[AuditAction] = mapped_column(checked_enum(AuditAction, "action"))
    changes: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    transaction_id: Mapped[int | None] = mapped_column(
        BigInteger, server_default=text("(pg_current_xact_id())::text::bigint")
    )

    __table_args__ = (
        Index(None, "table_name", "row_id"),
        Index(None, "occurred_at"),
    )
