"""``drug_candidates``: the pipeline assets of a company."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biotech_ma_db.models.base import AuditMixin, Base, TimestampMixin
from biotech_ma_db.models.enums import DevelopmentPhase, checked_enum

if TYPE_CHECKING:
    from biotech_ma_db.models.company import Company

__all__ = ["DrugCandidate"]


class DrugCandidate(AuditMixin, TimestampMixin, Base):
    """A drug in a company's pipeline, unique by name within the company.

    ``regulatory_designations`` holds values such as ``orphan``, ``fast_track``,
    ``breakthrough`` and ``priority_review``.
    """

    __tablename__ = "drug_candidates"

    company_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("companies.id", ondelete="CASCADE")
    )
    drug_name: Mapped[str]
    phase: Mapped[DevelopmentPhase] = mapped_column(checked_enum(DevelopmentPhase, "phase"))
    indication: Mapped[str | None]
    mechanism_of_action: Mapped[str | None]
    therapeutic_area: Mapped[str | None]
    patent_expiry_date: Mapped[dt.date | None]
    regulatory_designations: Mapped[list[str]] = mapped_column(server_default=text("'{}'"))
    regulatory_status: Mapped[str | None]
    peak_sales_estimate_usd: Mapped[Decimal | None]

    company: Mapped[Company] = relationship(back_populates="drug_candidates", lazy="raise")

    __table_args__ = (
        UniqueConstraint("company_id", "drug_name"),
        Index(None, "company_id", "phase"),
        Index(None, "therapeutic_area"),
        CheckConstraint(
            "peak_sales_estimate_usd >= 0", name="peak_sales_estimate_usd_non_negative"
        ),
    )
