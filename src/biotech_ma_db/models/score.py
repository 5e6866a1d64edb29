"""``ma_scores``: a company's daily M&A likelihood score and its components."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Numeric,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biotech_ma_db.models.base import AuditMixin, Base, TimestampMixin

if TYPE_CHECKING:
    from biotech_ma_db.models.company import Company

__all__ = ["SCORE_COMPONENTS", "MAScore"]

SCORE_COMPONENTS = ("pipeline_score", "financial_score", "strategic_score", "signal_score")
"""The component scores; each, like ``total_score``, runs from 0 to 100."""


class MAScore(AuditMixin, TimestampMixin, Base):
    """One company's score on one day (unique per company and ``score_date``).

    ``percentile_rank`` (0..1) is filled for a whole day at once by the score repository;
    ``score_change_30d``/``score_change_90d`` are differences to the scores 30 and 90
    days earlier.  Newest-first history per company reads the unique key's index
    backwards, so there is no separate ``(company_id, score_date DESC)`` index.
    """

    __tablename__ = "ma_scores"

    company_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("companies.id", ondelete="CASCADE")
    )
    score_date: Mapped[dt.date] = mapped_column(server_default=func.current_date())
    total_score: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    pipeline_score: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    financial_score: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    strategic_score: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    signal_score: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    percentile_rank: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    score_change_30d: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    score_change_90d: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    key_drivers: Mapped[list[str]] = mapped_column(server_default=text("'{}'"))
    risk_factors: Mapped[list[str]] = mapped_column(server_default=text("'{}'"))
    model_version: Mapped[str | None]

    company: Mapped[Company] = relationship(back_populates="scores", lazy="raise")

    __table_args__ = (
        UniqueConstraint("company_id", "score_date"),
        Index(None, "total_score"),
        Index(None, "score_date"),
        CheckConstraint("total_score BETWEEN 0 AND 100", name="total_score_range"),
        *(CheckConstraint(f"{c} BETWEEN 0 AND 100", name=f"{c}_range") for c in SCORE_COMPONENTS),
        CheckConstraint("percentile_rank BETWEEN 0 AND 1", name="percentile_rank_range"),
    )
