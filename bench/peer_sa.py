"""The SQLAlchemy ORM and advanced-alchemy contenders, on their own models (``peer_models``).

Plain SQLAlchemy 2.x ORM: ``select(Model)``, ``add_all``, ORM upsert with RETURNING;
advanced-alchemy: its ``SQLAlchemyAsyncRepository`` with default settings, one repository
per session.  Neither has the library's hooks (the soft-delete filter is switched off
while they run).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import event, func, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session, aliased, contains_eager

from bench import data
from bench.peer_base import AREAS, PAGE, POOL_SIZE, UOW_DAY, UOW_MODEL, Peer, fan_out, uow_total
from bench.peer_models import PeerCompany, PeerScore, PeerSignal
from biotech_ma_db.models.soft_delete import soft_delete_filter


def _sa_engine(url: str) -> AsyncEngine:
    return create_async_engine(url, pool_size=POOL_SIZE, max_overflow=0)


def _scores_with_latest() -> Any:
    """``select(PeerScore)`` from each company's latest score (the library's LATERAL probe)."""
    inner = aliased(PeerScore)
    latest = (
        select(inner.id)
        .where(inner.company_id == PeerCompany.id)
        .order_by(inner.score_date.desc())
        .limit(1)
        .lateral("latest")
    )
    return (
        select(PeerScore)
        .select_from(PeerCompany)
        .join(latest, true())
        .join(PeerScore, PeerScore.id == latest.c.id)
    )


def _percentile_update() -> Any:
    ranked = select(
        PeerScore.id.label("score_id"),
        func.percent_rank()
        .over(partition_by=PeerScore.score_date, order_by=PeerScore.total_score)
        .label("rank"),
    ).subquery("ranked")
    return (
        update(PeerScore)
        .where(PeerScore.id == ranked.c.score_id)
        .values(percentile_rank=ranked.c.rank, updated_at=func.now())
        .execution_options(synchronize_session=False)
    )


def _upsert_statement() -> Any:
    stmt = insert(PeerCompany)
    updates: dict[str, Any] = {c: stmt.excluded[c] for c in data.COMPANY_COLUMNS if c != "ticker"}
    updates["version"] = PeerCompany.version + 1
    updates["updated_at"] = func.now()
    return stmt.on_conflict_do_update(
        index_elements=[PeerCompany.ticker],
        index_where=PeerCompany.deleted_at.is_(None),
        set_=updates,
    )


def _uow_score(company_id: int, signals_seen: int) -> PeerScore:
    return PeerScore(
        company_id=company_id,
        score_date=UOW_DAY,
        total_score=uow_total(signals_seen),
        score_change_30d=None,
        score_change_90d=None,
        model_version=UOW_MODEL,
    )


class SqlAlchemyOrm(Peer):
    """Plain SQLAlchemy 2.x ORM: ``select(Model)``, ``add_all``, ORM upsert with RETURNING."""

    key = "orm"
    label = "SA ORM"

    async def start(self, url: str, dsn: dict[str, object]) -> None:
        self.engine = _sa_engine(url)

    async def close(self) -> None:
        await self.engine.dispose()

    def enter(self) -> None:
        # The library's soft-delete hook is global on Session; plain SQLAlchemy has none.
        if event.contains(Session, "do_orm_execute", soft_delete_filter):
            event.remove(Session, "do_orm_execute", soft_delete_filter)

    def session(self) -> AsyncSession:
        return AsyncSession(self.engine, expire_on_commit=False)

    async def point_reads(self, tickers: Sequence[str]) -> int:
        found = 0
        async with self.session() as session:
            for ticker in tickers:
                company = await session.scalar(
                    select(PeerCompany)
                    .where(PeerCompany.ticker == ticker, PeerCompany.deleted_at.is_(None))
                    .order_by(PeerCompany.id.desc())
                    .limit(1)
                )
                if company is not None:
                    session.expunge_all()
                    found += 1
        return found

    async def filtered_pages(self, caps: Sequence[Decimal]) -> int:
        total = 0
        async with self.session() as session:
            for cap in caps:
                rows = (
                    await session.scalars(
                        select(PeerCompany)
                        .where(
                            PeerCompany.therapeutic_areas.overlap(AREAS),
                            PeerCompany.market_cap_usd >= cap,
                            PeerCompany.deleted_at.is_(None),
                        )
                        .order_by(
                            PeerCompany.market_cap_usd.desc().nulls_last(), PeerCompany.id.desc()
                        )
                        .limit(PAGE)
                    )
                ).all()
                total += len(rows)
                session.expunge_all()
        return total

    async def bulk_insert(self, rows: Sequence[dict[str, Any]]) -> int:
        async with self.session() as session:
            session.add_all([PeerSignal(**row) for row in rows])
            await session.commit()
        return len(rows)

    async def upsert(self, rows: Sequence[dict[str, Any]]) -> int:
        async with self.session() as session:
            result = await session.scalars(
                _upsert_statement().returning(PeerCompany), [dict(r) for r in rows]
            )
            count = len(result.all())
            await session.commit()
        return count

    async def concurrent_reads(self, tickers: Sequence[str]) -> int:
        async def read(ticker: str) -> int:
            async with self.session() as session:
                company = await session.scalar(
                    select(PeerCompany)
                    .where(PeerCompany.ticker == ticker, PeerCompany.deleted_at.is_(None))
                    .order_by(PeerCompany.id.desc())
                    .limit(1)
                )
                return int(company is not None)

        return await fan_out(tickers, read)

    async def by_company(self, company_ids: Sequence[int]) -> int:
        total = 0
        async with self.session() as session:
            for cid in company_ids:
                rows = (
                    await session.scalars(
                        select(PeerSignal)
                        .where(
                            PeerSignal.company_id == cid,
                            PeerSignal.event_date >= data.SINCE_90_DAYS,
                        )
                        .order_by(PeerSignal.event_date.desc(), PeerSignal.id.desc())
                        .limit(PAGE)
                    )
                ).all()
                total += len(rows)
                session.expunge_all()
        return total

    async def top_scores(self, count: int) -> int:
        total = 0
        async with self.session() as session:
            for _ in range(count):
                rows = (
                    await session.scalars(
                        _scores_with_latest()
                        .where(PeerCompany.deleted_at.is_(None))
                        .options(contains_eager(PeerScore.company))
                        .order_by(PeerScore.total_score.desc(), PeerScore.company_id, PeerScore.id)
                        .limit(PAGE)
                    )
                ).all()
                total += len(rows)
                session.expunge_all()
        return total

    async def percentile_ranks(self) -> int:
        async with self.session() as session:
            result = await session.execute(_percentile_update())
            await session.commit()
        return int(getattr(result, "rowcount", 0))

    async def units_of_work(self, tickers: Sequence[str]) -> int:
        seen = 0
        for ticker in tickers:
            async with self.session() as session, session.begin():
                company = await session.scalar(
                    select(PeerCompany)
                    .where(PeerCompany.ticker == ticker, PeerCompany.deleted_at.is_(None))
                    .order_by(PeerCompany.id.desc())
                    .limit(1)
                )
                assert company is not None
                signals = (
                    await session.scalars(
                        select(PeerSignal)
                        .where(
                            PeerSignal.company_id == company.id,
                            PeerSignal.event_date >= data.SINCE_90_DAYS,
                        )
                        .order_by(PeerSignal.event_date.desc(), PeerSignal.id.desc())
                        .limit(PAGE)
                    )
                ).all()
                session.add(_uow_score(company.id, len(signals)))
            seen += len(signals)
        return seen


class _CompanyRepo(SQLAlchemyAsyncRepository[PeerCompany]):
    model_type = PeerCompany


class _SignalRepo(SQLAlchemyAsyncRepository[PeerSignal]):
    model_type = PeerSignal


class _ScoreRepo(SQLAlchemyAsyncRepository[PeerScore]):
    model_type = PeerScore


class AdvancedAlchemy(SqlAlchemyOrm):
    """advanced-alchemy's repository with default settings, one repository per session."""

    key = "aa"
    label = "advanced-alchemy"

    async def point_reads(self, tickers: Sequence[str]) -> int:
        found = 0
        async with self.session() as session:
            repo = _CompanyRepo(session=session)
            for ticker in tickers:
                company = await repo.get_one_or_none(
                    PeerCompany.deleted_at.is_(None), ticker=ticker
                )
                if company is not None:
                    session.expunge_all()
                    found += 1
        return found

    async def filtered_pages(self, caps: Sequence[Decimal]) -> int:
        total = 0
        async with self.session() as session:
            repo = _CompanyRepo(session=session)
            for cap in caps:
                rows = await repo.list(
                    PeerCompany.therapeutic_areas.overlap(AREAS),
                    PeerCompany.market_cap_usd >= cap,
                    PeerCompany.deleted_at.is_(None),
                    OrderBy("market_cap_usd", "desc"),
                    LimitOffset(PAGE, 0),
                )
                total += len(rows)
                session.expunge_all()
        return total

    async def bulk_insert(self, rows: Sequence[dict[str, Any]]) -> int:
        async with self.session() as session:
            repo = _SignalRepo(session=session)
            added = await repo.add_many([PeerSignal(**row) for row in rows], auto_commit=True)
        return len(added)

    async def upsert(self, rows: Sequence[dict[str, Any]]) -> int:
        async with self.session() as session:
            repo = _CompanyRepo(session=session)
            done = await repo.upsert_many(
                [PeerCompany(**row) for row in rows], match_fields=["ticker"], auto_commit=True
            )
        return len(done)

    async def concurrent_reads(self, tickers: Sequence[str]) -> int:
        async def read(ticker: str) -> int:
            async with self.session() as session:
                repo = _CompanyRepo(session=session)
                company = await repo.get_one_or_none(
                    PeerCompany.deleted_at.is_(None), ticker=ticker
                )
                return int(company is not None)

        return await fan_out(tickers, read)

    async def by_company(self, company_ids: Sequence[int]) -> int:
        total = 0
        async with self.session() as session:
            repo = _SignalRepo(session=session)
            for cid in company_ids:
                rows = await repo.list(
                    PeerSignal.company_id == cid,
                    PeerSignal.event_date >= data.SINCE_90_DAYS,
                    OrderBy("event_date", "desc"),
                    LimitOffset(PAGE, 0),
                )
                total += len(rows)
                session.expunge_all()
        return total

    async def top_scores(self, count: int) -> int:
        total = 0
        async with self.session() as session:
            repo = _ScoreRepo(session=session)
            base = _scores_with_latest()
            for _ in range(count):
                rows = await repo.list(
                    PeerCompany.deleted_at.is_(None),
                    OrderBy("total_score", "desc"),
                    LimitOffset(PAGE, 0),
                    statement=base,
                    load=[contains_eager(PeerScore.company)],
                )
                total += len(rows)
                session.expunge_all()
        return total

    async def units_of_work(self, tickers: Sequence[str]) -> int:
        seen = 0
        for ticker in tickers:
            async with self.session() as session:
                company = await _CompanyRepo(session=session).get_one(
                    PeerCompany.deleted_at.is_(None), ticker=ticker
                )
                signals = await _SignalRepo(session=session).list(
                    PeerSignal.company_id == company.id,
                    PeerSignal.event_date >= data.SINCE_90_DAYS,
                    OrderBy("event_date", "desc"),
                    LimitOffset(PAGE, 0),
                )
                await _ScoreRepo(session=session).add(
                    _uow_score(company.id, len(signals)), auto_commit=True
                )
            seen += len(signals)
        return seen

    async def percentile_ranks(self) -> int:
        # advanced-alchemy has no set-based update; its repository's session runs it.
        async with self.session() as session:
            repo = _ScoreRepo(session=session)
            result = await repo.session.execute(_percentile_update())
            await repo.session.commit()
        return int(getattr(result, "rowcount", 0))
