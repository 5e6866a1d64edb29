"""``api_keys``: a client's API keys, stored as peppered digests (several per client)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from biotech_ma_db.models.base import AuditMixin, Base, TimestampMixin

__all__ = ["ApiKey"]


class ApiKey(AuditMixin, TimestampMixin, Base):
    """One API key of a client.

    The key itself is shown once when issued and never stored: ``key_hash`` is the hex
    HMAC-SHA-256 of the whole key under the server's pepper (unique, looked up by
    equality), ``key_prefix`` its first characters (the ``bmap_live_`` marker plus 8
    random characters, unique) and ``last4`` its last four, both for display.  A key is
    valid while ``revoked_at`` is empty and ``expires_at`` (if any) is in the future.
    ``key_hash`` is deferred with ``raiseload``: listings never load it.
    """

    __tablename__ = "api_keys"

    client_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("clients.id", ondelete="CASCADE"))
    key_prefix: Mapped[str]
    key_hash: Mapped[str] = mapped_column(
        deferred=True, deferred_raiseload=True, info={"sensitive": True}
    )
    last4: Mapped[str | None]
    name: Mapped[str | None]
    expires_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]
    last_used_at: Mapped[dt.datetime | None]

    __table_args__ = (
        Index(None, "client_id"),
        UniqueConstraint("key_prefix"),
        UniqueConstraint("key_hash"),
        CheckConstraint("key_hash ~ '^[0-9a-f]{64}$'", name="key_hash_format"),
        CheckConstraint("last4 ~ '^[A-Za-z0-9_-]{4}$'", name="last4_format"),
    )

    @property
    def is_revoked(self) -> bool:
        """Whether the key was revoked."""
        return self.revoked_at is not None
