"""``acquirer_matches``: ranked pairings of a target company with a likely acquirer."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Numeric, func, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biotech_ma_db.models.base import AuditMixin, Base, TimestampMixin

if TYPE_CHECKING:
    from biotech_ma_db.models.company import Company

__all__ = ["AcquirerMatch"]


class AcquirerMatch(AuditMixin, TimestampMixin, Base):
    """A potential acquirer for a target, with fit score, rationale and valuation range.

    A company never matches itself, and the valuation range is ordered (low <= high).
    The partial index on top matches serves "best acquirers of this target" by rank.
    """

    __tablename__ = "acquirer_matches"

    target_company_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("companies.id", ondelete="CASCADE")
    )
    acquirer_company_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("companies.id", ondelete="CASCADE")
    )
    match_date: Mapped[dt.date] = mapped_column(server_default=func.current_date())
    strategic_fit_score: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    synergy_rationale: Mapped[str | None]
    therapeutic_overlap: Mapped[list[str]] = mapped_column(server_default=text("'{}'"))
    estimated_value_low_usd: Mapped[Decimal | None]
    estimated_value_high_usd: Mapped[Decimal | None]
    estimated_premium_pct: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    match_rank: Mapped[int | None]
    is_top_match: Mapped[bool] = mapped_column(server_default=text("false"))

    target_company: Mapped[Company] = relationship(
        back_populates="acquirer_matches", foreign_keys=[target_company_id], lazy="raise"
    )
    acquirer_company: Mapped[Company] = relationship(
        foreign_keys=[acquirer_company_id], lazy="raise"
    )

    __table_args__ = (
        Index(None, "target_company_id"),
        Index(None, "acquirer_company_id"),
        Index(None, "strategic_fit_score"),
        Index(
            "ix_acquirer_matches_top_matches",
            "target_company_id",
            "match_rank",
            postgresql_where=text("is_top_match"),
        ),
        CheckConstraint("target_company_id <> acquirer_company_id", name="target_not_acquirer"),
        CheckConstraint(
            "estimated_value_low_usd <= estimated_value_high_usd", name="value_range_ordered"
        ),
        CheckConstraint(
            "estimated_value_low_usd >= 0", name="estimated_value_low_usd_non_negative"
        ),
        CheckConstraint("strategic_fit_score BETWEEN 0 AND 100", name="strategic_fit_score_range"),
        CheckConstraint("match_rank >= 1", name="match_rank_positive"),
    )
