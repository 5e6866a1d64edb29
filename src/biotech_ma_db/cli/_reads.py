"""Database reads that several commands share (``demo``'s report, ``top``, ``seed``).

Each runs in a read-only session, so with ``DB_READ_REPLICA_URLS`` it is served by a read
replica; ``consistency`` is handed on to :meth:`Database.session` (``PRIMARY_ONLY`` for a
read that must see everything, e.g. the check before a write).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db.database import ConsistencyToken, Database
from biotech_ma_db.models import AcquirerMatch, Base, Company, MAScore, Signal

__all__ = ["Ranked", "best_acquirers", "count_rows", "signal_counts", "top_targets"]


@dataclass(frozen=True, slots=True)
class Ranked:
    """One scored target: its latest score and its company."""

    score: MAScore
    company: Company


async def _latest_score_date(session: AsyncSession) -> dt.date | None:
    latest: dt.date | None = await session.scalar(select(func.max(MAScore.score_date)))
    return latest


async def top_targets(
    db: Database,
    *,
    limit: int,
    therapeutic_areas: Sequence[str] = (),
    min_market_cap: Decimal | None = None,
    max_market_cap: Decimal | None = None,
    cash_constrained: bool = False,
    consistency: ConsistencyToken | None = None,
) -> list[Ranked]:
    """The best-scored companies on the latest score date, filtered, best first."""
    # One session for both reads, so one server (the same replica) answers them.
    async with db.session(read_only=True, consistency=consistency) as session:
        latest = await _latest_score_date(session)
        if latest is None:
            return []
        statement = (
            select(MAScore, Company)
            .join(Company, Company.id == MAScore.company_id)
            .where(MAScore.score_date == latest)
            .order_by(MAScore.total_score.desc(), Company.ticker)
            .limit(limit)
        )
        if therapeutic_areas:
            statement = statement.where(Company.therapeutic_areas.overlap(list(therapeutic_areas)))
        if min_market_cap is not None:
            statement = statement.where(Company.market_cap_usd >= min_market_cap)
        if max_market_cap is not None:
            statement = statement.where(Company.market_cap_usd <= max_market_cap)
        if cash_constrained:
            statement = statement.where(Company.cash_constrained.is_(True))
        rows = (await session.execute(statement)).all()
    return [Ranked(score, company) for score, company in rows]


async def best_acquirers(
    db: Database, target_ids: Sequence[int], *, consistency: ConsistencyToken | None = None
) -> dict[int, tuple[AcquirerMatch, Company]]:
    """The best-ranked acquirer match (and its acquirer) of each target that has one."""
    if not target_ids:
        return {}
    statement = (
        select(AcquirerMatch, Company)
        .join(Company, Company.id == AcquirerMatch.acquirer_company_id)
        .where(AcquirerMatch.target_company_id.in_(list(target_ids)))
        .order_by(
            AcquirerMatch.target_company_id,
            AcquirerMatch.match_rank.asc().nulls_last(),
            AcquirerMatch.strategic_fit_score.desc(),
        )
    )
    best: dict[int, tuple[AcquirerMatch, Company]] = {}
    async with db.session(read_only=True, consistency=consistency) as session:
        for match, acquirer in (await session.execute(statement)).all():
            best.setdefault(match.target_company_id, (match, acquirer))
    return best


async def signal_counts(
    db: Database, since: dt.datetime, *, consistency: ConsistencyToken | None = None
) -> list[tuple[str, int, int]]:
    """``(signal type, signals, high or critical)`` since ``since``, busiest first."""
    severe = Signal.severity.in_(["high", "critical"])
    statement = (
        select(
            Signal.signal_type,
            func.count(),
            func.count().filter(severe),
        )
        .where(Signal.event_date >= since)
        .group_by(Signal.signal_type)
        .order_by(func.count().desc())
    )
    async with db.session(read_only=True, consistency=consistency) as session:
        rows = (await session.execute(statement)).all()
    return [(str(kind), int(total), int(high)) for kind, total, high in rows]


async def count_rows(
    db: Database, model: type[Base], *, consistency: ConsistencyToken | None = None
) -> int:
    """How many rows the table of ``model`` holds."""
    async with db.session(read_only=True, consistency=consistency) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)
