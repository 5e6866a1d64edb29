"""What every contender implements, and the helpers they share.

Every operation returns a small check value (rows seen) so the harness can verify that
all contenders did the same work.  See ``bench/README.md`` for what each row measures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import event
from sqlalchemy.orm import Session

from bench import data
from biotech_ma_db.models.soft_delete import soft_delete_filter

CONCURRENT_TASKS = 8
POOL_SIZE = 8
PAGE = 50
AREAS = ["oncology"]
UOW_DAY = data.ANCHOR + dt.timedelta(days=1)  # the day the unit-of-work row scores
UOW_MODEL = "bench-uow"


def uow_total(signals_seen: int) -> Decimal:
    """The score a unit of work writes: the same for every contender."""
    return Decimal(min(100, 40 + signals_seen))


class Peer:
    """One contender. Subclasses implement every operation."""

    key: ClassVar[str]
    label: ClassVar[str]
    #: Whether its sessions take pooled connections (warm-up then warms all of them).
    pooled: ClassVar[bool] = True

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

    async def units_of_work(self, tickers: Sequence[str]) -> int:
        """Row 8, one unit per ticker, one after the other; the signals read in all."""
        raise NotImplementedError

    async def read_all_signals(self, company_id: int, batch_size: int) -> int:
        """The memory row: every signal of one company; the number of rows seen."""
        raise NotImplementedError


async def fan_out(tickers: Sequence[str], read: Callable[[str], Awaitable[int]]) -> int:
    """Split ``tickers`` over the concurrent tasks; each task reads its share in turn."""
    shares = [tickers[i::CONCURRENT_TASKS] for i in range(CONCURRENT_TASKS)]

    async def worker(share: Sequence[str]) -> int:
        found = 0
        for ticker in share:
            found += await read(ticker)
        return found

    return sum(await asyncio.gather(*(worker(s) for s in shares)))
