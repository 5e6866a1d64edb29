"""This library's contender: ``Database.session()``, units of work and the repositories."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from bench import data
from bench.peer_base import AREAS, PAGE, POOL_SIZE, UOW_DAY, UOW_MODEL, Peer, fan_out, uow_total
from biotech_ma_db import Database
from biotech_ma_db.repositories import CompanyRepository, ScoreRepository, SignalRepository


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

        return await fan_out(tickers, read)

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

    async def units_of_work(self, tickers: Sequence[str]) -> int:
        seen = 0
        since = data.SINCE_90_DAYS
        for ticker in tickers:
            async with self.db.unit_of_work() as uow:
                company = await uow.companies.get_by_ticker(ticker)
                assert company is not None
                signals = await uow.signals.get_by_company(company.id, start_date=since, limit=PAGE)
                # The score changes are given (as every contender writes them), so the
                # library does not look them up in the history.
                await uow.scores.create(
                    company_id=company.id,
                    total_score=uow_total(len(signals)),
                    score_date=UOW_DAY,
                    score_change_30d=None,
                    score_change_90d=None,
                    model_version=UOW_MODEL,
                )
                await uow.commit()
            seen += len(signals)
        return seen

    async def read_all_signals(self, company_id: int, batch_size: int) -> int:
        seen = 0
        async with self.db.session(read_only=True) as session:
            stream = SignalRepository(session).stream_by_company(company_id, batch_size=batch_size)
            async for batch in stream:
                seen += len(batch)
        return seen
