"""Plain SQLAlchemy models over the same tables, for the SQLAlchemy and advanced-alchemy peers.

They map the columns the benchmark touches the way a SQLAlchemy user would, on their own
``DeclarativeBase``: no soft-delete listener, validation or audit hooks of the library, so
the peers measure SQLAlchemy itself.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Computed,
    DateTime,
    ForeignKey,
    Identity,
    Numeric,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class PeerBase(DeclarativeBase):
    type_annotation_map = {
        str: Text,
        dt.datetime: DateTime(timezone=True),
        Decimal: Numeric(20, 2),
        list[str]: ARRAY(Text),
        dict[str, Any]: JSONB,
    }


class PeerCompany(PeerBase):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    ticker: Mapped[str]
    name: Mapped[str]
    exchange: Mapped[str | None]
    market_cap_usd: Mapped[Decimal | None]
    cash_position_usd: Mapped[Decimal | None]
    quarterly_burn_usd: Mapped[Decimal | None]
    total_debt_usd: Mapped[Decimal | None]
    revenue_ttm_usd: Mapped[Decimal | None]
    employee_count: Mapped[int | None]
    headquarters_country: Mapped[str | None]
    founded_year: Mapped[int | None]
    therapeutic_areas: Mapped[list[str]] = mapped_column(server_default=text("'{}'"))
    cash_runway_months: Mapped[Decimal | None] = mapped_column(
        Numeric, Computed("0", persisted=True)
    )
    cash_constrained: Mapped[bool] = mapped_column(Computed("false", persisted=True))
    deleted_at: Mapped[dt.datetime | None]
    version: Mapped[int] = mapped_column(server_default=text("1"))
    created_by: Mapped[str | None]
    updated_by: Mapped[str | None]
    change_reason: Mapped[str | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class PeerSignal(PeerBase):
    __tablename__ = "signals"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    company_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("companies.id"))
    signal_type: Mapped[str]
    event_date: Mapped[dt.datetime]
    severity: Mapped[str] = mapped_column(server_default="medium")
    title: Mapped[str]
    description: Mapped[str | None]
    source: Mapped[str | None]
    source_url: Mapped[str | None]
    signal_data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    ma_impact_score: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    created_by: Mapped[str | None]
    updated_by: Mapped[str | None]
    change_reason: Mapped[str | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class PeerScore(PeerBase):
    __tablename__ = "ma_scores"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    company_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("companies.id"))
    score_date: Mapped[dt.date]
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
    created_by: Mapped[str | None]
    updated_by: Mapped[str | None]
    change_reason: Mapped[str | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    company: Mapped[PeerCompany] = relationship(lazy="raise")
