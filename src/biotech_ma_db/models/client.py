"""``clients``: API clients, their hashed keys, scopes, limits and watchlists."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biotech_ma_db.models.base import (
    AuditMixin,
    Base,
    SoftDeleteMixin,
    TimestampMixin,
    VersionMixin,
)

if TYPE_CHECKING:
    from biotech_ma_db.models.alert import Alert
    from biotech_ma_db.models.webhook import Webhook

__all__ = ["Client"]


class Client(SoftDeleteMixin, VersionMixin, AuditMixin, TimestampMixin, Base):
    """An API client.

    Only a digest of the API key is stored (``api_key_hash``, unique, looked up by
    equality) together with its non-secret ``api_key_prefix`` for display and lookup;
    the key itself is shown to the user once and never written anywhere.  The digest is
    deferred with ``raiseload``: it is not loaded by ordinary queries and touching it
    raises instead of querying.
    """

    __tablename__ = "clients"

    name: Mapped[str]
    api_key_prefix: Mapped[str]
    api_key_hash: Mapped[str] = mapped_column(deferred=True, deferred_raiseload=True)
    scopes: Mapped[list[str]] = mapped_column(server_default=text("'{}'"))
    rate_limit_per_minute: Mapped[int] = mapped_column(server_default=text("60"))
    watchlist: Mapped[list[int]] = mapped_column(server_default=text("'{}'"))
    preferences: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    last_seen_at: Mapped[dt.datetime | None]

    alerts: Mapped[list[Alert]] = relationship(
        back_populates="client", cascade="all, delete-orphan", lazy="raise", passive_deletes=True
    )
    webhooks: Mapped[list[Webhook]] = relationship(
        back_populates="client", cascade="all, delete-orphan", lazy="raise", passive_deletes=True
    )

    __table_args__ = (
        UniqueConstraint("api_key_prefix"),
        UniqueConstraint("api_key_hash"),
        CheckConstraint("rate_limit_per_minute > 0", name="rate_limit_per_minute_positive"),
    )
