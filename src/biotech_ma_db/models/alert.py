"""``alerts``: a client's alert rules over companies and signals."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biotech_ma_db.models.base import (
    AuditMixin,
    Base,
    SoftDeleteMixin,
    TimestampMixin,
    VersionMixin,
)
from biotech_ma_db.models.enums import Severity, SignalType, checked_enum, enum_values

if TYPE_CHECKING:
    from biotech_ma_db.models.client import Client

__all__ = ["Alert"]

_SIGNAL_TYPES_SQL = ", ".join(f"'{value}'" for value in enum_values(SignalType))


class Alert(SoftDeleteMixin, VersionMixin, AuditMixin, TimestampMixin, Base):
    """An alert rule: fire on signals about some companies, at most once per cooldown.

    Empty ``company_ids`` or ``signal_types`` mean "any"; ``signal_types`` may only hold
    known signal types, and ``min_severity`` (when set) is a severity.
    """

    __tablename__ = "alerts"

    client_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("clients.id", ondelete="CASCADE"))
    name: Mapped[str]
    alert_type: Mapped[str]
    conditions: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    company_ids: Mapped[list[int]] = mapped_column(server_default=text("'{}'"))
    signal_types: Mapped[list[str]] = mapped_column(server_default=text("'{}'"))
    min_severity: Mapped[Severity | None] = mapped_column(checked_enum(Severity, "min_severity"))
    channels: Mapped[list[str]] = mapped_column(server_default=text("'{}'"))
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    cooldown_minutes: Mapped[int] = mapped_column(server_default=text("60"))
    last_triggered_at: Mapped[dt.datetime | None]
    trigger_count: Mapped[int] = mapped_column(server_default=text("0"))

    client: Mapped[Client] = relationship(back_populates="alerts", lazy="raise")

    __table_args__ = (
        Index(None, "client_id", "is_active"),
        CheckConstraint(
            f"signal_types <@ ARRAY[{_SIGNAL_TYPES_SQL}]::text[]", name="signal_types_known"
        ),
        CheckConstraint("cooldown_minutes >= 0", name="cooldown_minutes_non_negative"),
        CheckConstraint("trigger_count >= 0", name="trigger_count_non_negative"),
    )
