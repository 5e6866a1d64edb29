"""The four contenders, each doing the same operations its own idiomatic way.

Every operation returns a small check value (rows seen) so the harness can verify that
all peers did the same work.  See ``bench/README.md`` for what each row measures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar

import asyncpg
from advanced_alchemy.filters import LimitOffset, OrderBy
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import event, func, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session, aliased, contains_eager

from bench import data
from bench.peer_models import PeerCompany, PeerScore, PeerSignal
from biotech_ma_db import Database
from biotech_ma_db.models.soft_delete import soft_delete_filter
from biotech_ma_db.repositories import CompanyRepository, ScoreRepository, SignalRepository

CONCURRENT_TASKS = 8
POOL_SIZE = 8
PAGE = 50
AREAS = ["oncology"]

# --- raw SQL: the same statements the library sends ------------------------------------

_COMPANY_COLS = (
    "id, ticker, name, exchange, market_cap_usd, cash_position_usd, quarterly_burn_usd, "
    "total_debt_usd, revenue_ttm_usd, employee_count, headquarters_country, founded_year, "
    "therapeutic_areas, cash_runway_months, cash_constrained, deleted_at, version, "
    "created_by, updated_by, change_reason, created_at, updated_at"
)
_SIGNAL_COLS = (
    "id, company_id, signal_type, event_date, severity, title, description, source, "
    "source_url, signal_data, ma_impact_score, created_by, updated_by, change_reason, "
    "created_at, updated_at"
)
_SCORE_COLS = (
    "s.id, s.company_id, s.score_date, s.total_score, s.pipeline_score, s.financial_score, "
    "s.strategic_score, s.signal_score, s.percentile_rank, s.score_change_30d, "
    "s.score_change_90d, s.key_drivers, s.risk_factors, s.model_version, s.created_by, "
    "s.updated_by, s.change_reason, s.created_at, s.updated_at"
)
POINT_SQL = (
    f"SELECT {_COMPANY_COLS} FROM companies WHERE ticker = $1 AND deleted_at IS NULL "
    "ORDER BY id DESC LIMIT 1"
)
PAGE_SQL = (
    f"SELECT {_COMPANY_COLS} FROM companies WHERE therapeutic_areas && $1::text[] "
    "AND market_cap_usd >= $2 AND deleted_at IS NULL "
    "ORDER BY market_cap_usd DESC NULLS LAST, id DESC LIMIT 50"
)
BY_COMPANY_SQL = (
    f"SELECT {_SIGNAL_COLS} FROM signals WHERE company_id = $1 AND event_date >= $2 "
    "ORDER BY event_date DESC, id DESC LIMIT 50"
)
TOP_SQL = (
    f"SELECT {_SCORE_COLS}, c.* FROM companies c "
    "JOIN LATERAL (SELECT l.id FROM ma_scores l WHERE l.company_id = c.id "
    "ORDER BY l.score_date DESC LIMIT 1) latest ON true "
    "JOIN ma_scores s ON s.id = latest.id WHERE c.deleted_at IS NULL "
    "ORDER BY s.total_score DESC, s.company_id, s.id LIMIT $1"
)
# The library's statement: only scores whose rank changes are written.
PERCENTILE_SQL = (
    "UPDATE ma_scores SET percentile_rank = ranked.rank, updated_at = now() FROM "
    "(SELECT id AS score_id, CAST(percent_rank() OVER (PARTITION BY score_date "
    "ORDER BY total_score) AS NUMERIC(5, 4)) AS rank FROM ma_scores) AS ranked "
    "WHERE ma_scores.id = ranked.score_id "
    "AND ma_scores.percentile_rank IS DISTINCT FROM ranked.rank"
)
_UPSERT_SET = ", ".join(f"{c} = excluded.{c}" for c in data.COMPANY_COLUMNS if c != "ticker")
UPSERT_SQL = (
    f"INSERT INTO companies ({', '.join(data.COMPANY_COLUMNS)}) VALUES "
    f"({', '.join(f'${i + 1}' for i in range(len(data.COMPANY_COLUMNS)))}) "
    "ON CONFLICT (ticker) WHERE deleted_at IS NULL DO UPDATE SET "
    f"{_UPSERT_SET}, version = companies.version + 1, updated_at = now()"
)


class Peer:
    """One contender. Subclasses implement every operation."""

    key: ClassVar[str]
    label: ClassVar[str]

    async def start(self, url: str, dsn: dict[str, object]) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def enter(self) -> None:
        """Called before this peer's runs (the library's global hooks on or off)."""
        if not event.contains(Session, "do_orm_execute", soft_delete_filter):
            event.listen(Session, "do_orm_execute", soft_delete_filter)

    async def point_reads(self, tickers: Sequence[str]) -> int:
        raise NotImplementedError

    async def filtered_pages(self, caps: Sequence[Decimal]) -> int:
        raise NotImplementedError

    async def tracked_pages(self, caps: Sequence[Decimal]) -> int:
        """Row 2 with session-tracked objects; the same as row 2 unless a peer has both."""
        return await self.filtered_pages(caps)

    async def bulk_insert(self, rows: Sequence[dict[str, Any]]) -> int:
        raise NotImplementedError

    async def upsert(self, rows: Sequence[dict[str, Any]]) -> int:
        raise NotImplementedError

    async def concurrent_reads(self, tickers: Sequence[str]) -> int:
        raise NotImplementedError

    async def by_company(self, company_ids: Sequence[int]) -> int:
        raise NotImplementedError

    async def top_scores(self, count: int) -> int:
        raise NotImplementedError

    async def percentile_ranks(self) -> int:
        raise NotImplementedError


async def _fan_out(tickers: Sequence[str], read: Any) -> int:
    """Split ``tickers`` over the concurrent tasks; each task reads its share in turn."""
    shares = [tickers[i::CONCURRENT_TASKS] for i in range(CONCURRENT_TASKS)]

    async def worker(share: Sequence[str]) -> int:
        found = 0
        for ticker in share:
            found += await read(ticker)
        return found

    return sum(await asyncio.gather(*(worker(s) for s in shares)))


# --- raw asyncpg ------------------------------------------------------------------------


class RawAsyncpg(Peer):
    """The limit: prepared statements, binary COPY, executemany; rows stay ``Record``s."""

    key = "asyncpg"
    label = "asyncpg (raw)"

    async def start(self, url: str, dsn: dict[str, object]) -> None:
        self.conn: asyncpg.Connection = await asyncpg.connect(**dsn)
        self.pool: asyncpg.Pool = await asyncpg.create_pool(
            min_size=POOL_SIZE, max_size=POOL_SIZE, **dsn
        )
        self.point = await self.conn.prepare(POINT_SQL)
        self.page = await self.conn.prepare(PAGE_SQL)
        self.signals = await self.conn.prepare(BY_COMPANY_SQL)
        self.top = await self.conn.prepare(TOP_SQL)

    async def close(self) -> None:
        await self.pool.close()
        await self.conn.close()

    async def point_reads(self, tickers: Sequence[str]) -> int:
        fetchrow = self.point.fetchrow
        found = 0
        for ticker in tickers:
            if await fetchrow(ticker) is not None:
                found += 1
        return found

    async def filtered_pages(self, caps: Sequence[Decimal]) -> int:
        fetch = self.page.fetch
        return sum([len(await fetch(AREAS, cap)) for cap in caps])

    async def bulk_insert(self, rows: Sequence[dict[str, Any]]) -> int:
        records = [data.signal_record(row) for row in rows]
        async with self.conn.transaction():
            status = await self.conn.copy_records_to_table(
                "signals", records=records, columns=data.SIGNAL_COLUMNS
            )
        return int(status.rsplit(" ", 1)[-1])

    async def upsert(self, rows: Sequence[dict[str, Any]]) -> int:
        columns = data.COMPANY_COLUMNS
        args = [tuple(row[c] for c in columns) for row in rows]
        async with self.conn.transaction():
            await self.conn.executemany(UPSERT_SQL, args)
        return len(args)

    async def concurrent_reads(self, tickers: Sequence[str]) -> int:
        pool = self.pool

        async def read(ticker: str) -> int:
            async with pool.acquire() as conn:
                return int(await conn.fetchrow(POINT_SQL, ticker) is not None)

        return await _fan_out(tickers, read)

    async def by_company(self, company_ids: Sequence[int]) -> int:
        fetch = self.signals.fetch
        since = data.SINCE_90_DAYS
        return sum([len(await fetch(cid, since)) for cid in company_ids])

    async def top_scores(self, count: int) -> int:
        return sum([len(await self.top.fetch(PAGE)) for _ in range(count)])

    async def percentile_ranks(self) -> int:
        async with self.conn.transaction():
            status = await self.conn.execute(PERCENTILE_SQL)
        return int(status.rsplit(" ", 1)[-1])


# --- SQLAlchemy ORM -----------------------------------------------------------------------


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

        return await _fan_out(tickers, read)

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


# --- advanced-alchemy -------------------------------------------------------------------


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

        return await _fan_out(tickers, read)

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

    async def percentile_ranks(self) -> int:
        # advanced-alchemy has no set-based update; its repository's session runs it.
        async with self.session() as session:
            repo = _ScoreRepo(session=session)
            result = await repo.session.execute(_percentile_update())
            await repo.session.commit()
        return int(getattr(result, "rowcount", 0))


# --- this library -----------------------------------------------------------------------


class Library(Peer):
    """biotech-ma-db's public API: ``Database.session()`` plus the repositories."""

    key = "lib"
    label = "biotech-ma-db"

    async def start(self, url: str, dsn: dict[str, object]) -> None:
        self.db = Database.from_url(url, pool_size=POOL_SIZE, max_overflow=0)

    async def close(self) -> None:
        await self.db.dispose()

    async def point_reads(self, tickers: Sequence[str]) -> int:
        found = 0
        async with self.db.session() as session:
            repo = CompanyRepository(session)
            for ticker in tickers:
                company = await repo.get_by_ticker(ticker)
                if company is not None:
                    session.expunge_all()
                    found += 1
        return found

    async def filtered_pages(self, caps: Sequence[Decimal]) -> int:
        total = 0
        async with self.db.session() as session:
            repo = CompanyRepository(session)
            for cap in caps:
                rows = await repo.search_rows(
                    therapeutic_areas=AREAS, min_market_cap=cap, limit=PAGE
                )
                total += len(rows)
        return total

    async def tracked_pages(self, caps: Sequence[Decimal]) -> int:
        total = 0
        async with self.db.session() as session:
            repo = CompanyRepository(session)
            for cap in caps:
                rows = await repo.search(therapeutic_areas=AREAS, min_market_cap=cap, limit=PAGE)
                total += len(rows)
                session.expunge_all()
        return total

    async def bulk_insert(self, rows: Sequence[dict[str, Any]]) -> int:
        async with self.db.session() as session:
            return await SignalRepository(session).bulk_ingest(rows)

    async def upsert(self, rows: Sequence[dict[str, Any]]) -> int:
        async with self.db.session() as session:
            return await CompanyRepository(session).upsert_many(rows)

    async def concurrent_reads(self, tickers: Sequence[str]) -> int:
        async def read(ticker: str) -> int:
            async with self.db.session() as session:
                company = await CompanyRepository(session).get_by_ticker(ticker)
                return int(company is not None)

        return await _fan_out(tickers, read)

    async def by_company(self, company_ids: Sequence[int]) -> int:
        total = 0
        since = data.SINCE_90_DAYS
        async with self.db.session() as session:
            repo = SignalRepository(session)
            for cid in company_ids:
                rows = await repo.get_by_company(cid, start_date=since, limit=PAGE)
                total += len(rows)
                session.expunge_all()
        return total

    async def top_scores(self, count: int) -> int:
        total = 0
        async with self.db.session() as session:
            repo = ScoreRepository(session)
            for _ in range(count):
                total += len(await repo.get_top_scores(PAGE))
                session.expunge_all()
        return total

    async def percentile_ranks(self) -> int:
        async with self.db.session() as session:
            return await ScoreRepository(session).update_percentile_ranks()


PEERS: tuple[type[Peer], ...] = (RawAsyncpg, SqlAlchemyOrm, AdvancedAlchemy, Library)
