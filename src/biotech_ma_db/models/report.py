"""``reports``: metadata of generated reports (the files live in local or S3 storage)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, Index, text
from sqlalchemy.orm import Mapped, mapped_column

from biotech_ma_db.models.base import Base, SoftDeleteMixin, TimestampMixin
from biotech_ma_db.models.enums import ReportStatus, StorageBackend, checked_enum

__all__ = ["Report"]


class Report(SoftDeleteMixin, TimestampMixin, Base):
    """A generated report: what period it covers, where its file is, who received it.

    ``sha256`` is the lowercase hex digest of the stored file.
    """

    __tablename__ = "reports"

    report_type: Mapped[str]
    report_date: Mapped[dt.date]
    period_start: Mapped[dt.date | None]
    period_end: Mapped[dt.date | None]
    title: Mapped[str]
    storage_backend: Mapped[StorageBackend] = mapped_column(
        checked_enum(StorageBackend, "storage_backend"),
        server_default=StorageBackend.LOCAL.value,
    )
    storage_uri: Mapped[str | None]
    content_type: Mapped[str | None]
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None]
    status: Mapped[ReportStatus] = mapped_column(
        checked_enum(ReportStatus, "status"), server_default=ReportStatus.PENDING.value
    )
    recipients: Mapped[list[str]] = mapped_column(server_default=text("'{}'"))
    distributed_at: Mapped[dt.datetime | None]

    __table_args__ = (
        Index(None, "report_type", "report_date"),
        CheckConstraint("period_start <= period_end", name="period_ordered"),
        CheckConstraint("size_bytes >= 0", name="size_bytes_non_negative"),
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256_format"),
    )
