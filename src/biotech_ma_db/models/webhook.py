"""``webhooks`` and ``webhook_deliveries``: outgoing event notifications and their queue."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    SmallInteger,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biotech_ma_db.models.base import (
    AuditMixin,
    Base,
    SoftDeleteMixin,
    TimestampMixin,
    VersionMixin,
)
from biotech_ma_db.models.enums import DeliveryStatus, checked_enum

if TYPE_CHECKING:
    from biotech_ma_db.models.client import Client

__all__ = ["Webhook", "WebhookDelivery"]


class Webhook(SoftDeleteMixin, VersionMixin, AuditMixin, TimestampMixin, Base):
    """A client's endpoint subscribed to some event types, with its retry policy.

    ``secret`` signs the payloads.  It is deferred with ``raiseload``: listings never load
    it, and touching it without an explicit ``undefer`` raises instead of querying.  It is
    stored encrypted (AES-GCM, :mod:`biotech_ma_db.security`) with the version of the key
    that sealed it in ``secret_key_version`` (``NULL``: written before encryption, plain).
    """

    __tablename__ = "webhooks"

    client_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("clients.id", ondelete="CASCADE"))
    url: Mapped[str]
    event_types: Mapped[list[str]] = mapped_column(server_default=text("'{}'"))
    secret: Mapped[str] = mapped_column(deferred=True, deferred_raiseload=True)
    # Added by revision 0002 (ALTER TABLE ... ADD COLUMN): last in the table, as here.
    secret_key_version: Mapped[int | None] = mapped_column(SmallInteger, sort_order=1)
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    max_retries: Mapped[int] = mapped_column(server_default=text("5"))
    backoff_seconds: Mapped[int] = mapped_column(server_default=text("60"))
    last_delivery_at: Mapped[dt.datetime | None]
    last_status_code: Mapped[int | None]
    consecutive_failures: Mapped[int] = mapped_column(server_default=text("0"))

    client: Mapped[Client] = relationship(back_populates="webhooks", lazy="raise")
    deliveries: Mapped[list[WebhookDelivery]] = relationship(
        back_populates="webhook", cascade="all, delete-orphan", lazy="raise", passive_deletes=True
    )

    __table_args__ = (
        Index(None, "client_id", "is_active"),
        CheckConstraint("url ~* '^https?://'", name="url_scheme"),
        CheckConstraint("max_retries >= 0", name="max_retries_non_negative"),
        CheckConstraint("backoff_seconds >= 0", name="backoff_seconds_non_negative"),
        CheckConstraint("consecutive_failures >= 0", name="consecutive_failures_non_negative"),
        CheckConstraint("last_status_code BETWEEN 100 AND 599", name="last_status_code_range"),
        CheckConstraint("secret_key_version >= 0", name="secret_key_version_non_negative"),
    )


class WebhookDelivery(TimestampMixin, Base):
    """One event to deliver to one webhook; the queue is claimed ``FOR UPDATE SKIP LOCKED``.

    ``event_id`` is unique per webhook, so enqueuing the same event twice (a retried unit
    of work, a replayed upstream event) is a no-op with ``ON CONFLICT DO NOTHING``.  When
    the caller has no natural id, the server draws a random UUID.
    """

    __tablename__ = "webhook_deliveries"

    webhook_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhooks.id", ondelete="CASCADE")
    )
    event_id: Mapped[str] = mapped_column(server_default=text("gen_random_uuid()::text"))
    event_type: Mapped[str]
    payload: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[DeliveryStatus] = mapped_column(
        checked_enum(DeliveryStatus, "status"), server_default=DeliveryStatus.PENDING.value
    )
    attempts: Mapped[int] = mapped_column(server_default=text("0"))
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(server_default=text("now()"))
    last_error: Mapped[str | None]
    delivered_at: Mapped[dt.datetime | None]

    webhook: Mapped[Webhook] = relationship(back_populates="deliveries", lazy="raise")

    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        Index(None, "status", "next_attempt_at"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
    )
