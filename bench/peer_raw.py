"""The limit: raw asyncpg with prepared statements, binary COPY and executemany.

Rows stay ``Record``s.  The reads send the library's statements character for character
(:mod:`bench.statements`), so both are planned alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from bench import data
from bench.peer_base import AREAS, PAGE, POOL_SIZE, UOW_DAY, UOW_MODEL, Peer, fan_out, uow_total
from bench.statements import (
    ALL_BY_COMPANY_SQL,
    LIB_BY_COMPANY_SQL,
    LIB_PAGE_SQL,
    LIB_POINT_SQL,
    PERCENTILE_SQL,
    SCORE_INSERT_SQL,
    TOP_SQL,
    UPSERT_SQL,
)


class RawAsyncpg(Peer):
    """One connection for the sequential rows, an ``asyncpg`` pool for the pooled ones."""

    key = "asyncpg"
    label = "asyncpg (raw)"
    pooled = False  # the sequential rows run on one connection, warmed by the warm-up

    async def start(self, url: str, dsn: dict[str, object]) -> None:
        self.conn: asyncpg.Connection = await asyncpg.connect(**dsn)
        self.pool: asyncpg.Pool = await asyncpg.create_pool(
            min_size=POOL_SIZE, max_size=POOL_SIZE, **dsn
        )
        self.point = await self.conn.prepare(LIB_POINT_SQL)
        self.page = await self.conn.prepare(LIB_PAGE_SQL)
        self.signals = await self.conn.prepare(LIB_BY_COMPANY_SQL)
        self.top = await self.conn.prepare(TOP_SQL)
        # The prepares leave the connection inside the implicit transaction of their last
        # Parse, holding its tables' share locks: a write row run first (whose reset
        # truncates) would wait on them for ever.  A simple query ends it.
        await self.conn.execute("SELECT 1")

    async def close(self) -> None:
        await self.pool.close()
        await self.conn.close()

    async def point_reads(self, tickers: Sequence[str]) -> int:
        fetchrow = self.point.fetchrow
        found = 0
        for ticker in tickers:
            if await fetchrow(ticker, 1) is not None:
                found += 1
        return found

    async def filtered_pages(self, caps: Sequence[Decimal]) -> int:
        fetch = self.page.fetch
        return sum([len(await fetch(AREAS, cap, PAGE, 0)) for cap in caps])

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
                return int(await conn.fetchrow(LIB_POINT_SQL, ticker, 1) is not None)

        return await fan_out(tickers, read)

    async def by_company(self, company_ids: Sequence[int]) -> int:
        fetch = self.signals.fetch
        since = data.SINCE_90_DAYS
        return sum([len(await fetch(cid, since, PAGE, 0)) for cid in company_ids])

    async def top_scores(self, count: int) -> int:
        return sum([len(await self.top.fetch(PAGE)) for _ in range(count)])

    async def percentile_ranks(self) -> int:
        async with self.conn.transaction():
            status = await self.conn.execute(PERCENTILE_SQL)
        return int(status.rsplit(" ", 1)[-1])

    async def units_of_work(self, tickers: Sequence[str]) -> int:
        seen = 0
        since = data.SINCE_90_DAYS
        for ticker in tickers:
            async with self.pool.acquire() as conn, conn.transaction():
                company = await conn.fetchrow(LIB_POINT_SQL, ticker, 1)
                signals = await conn.fetch(LIB_BY_COMPANY_SQL, company["id"], since, PAGE, 0)
                await conn.fetchval(
                    SCORE_INSERT_SQL,
                    company["id"],
                    UOW_DAY,
                    uow_total(len(signals)),
                    None,
                    None,
                    UOW_MODEL,
                )
            seen += len(signals)
        return seen

    async def read_all_signals(self, company_id: int, batch_size: int) -> int:
        # The whole result in memory at once: what ``fetch`` does.
        return len(await self.conn.fetch(ALL_BY_COMPANY_SQL, company_id))
