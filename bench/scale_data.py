"""The scale run's data: its companies, the streamed signal batches and the month partitions.

The signals table grows *around* the companies whose reads are timed.  All 10,000
companies are loaded first, so the ``companies`` table is the same at both sizes:

* 2,000 **measured** companies (the comparison run's companies) get the first 100,000
  signals, spread over the last two years;
* 8,000 **bulk** companies get every later signal, over the same two years.  They work
  outside oncology, so the filtered page (oncology, a market-cap floor) returns the same
  companies as in the comparison run.

The bulk signals come in one of two shapes (``--ingest``):

* ``daily`` (the default): a daily feed replayed oldest day first, as the predictor ingests
  it in production: each batch's dates lie within a day or two, so a COPY writes into the
  newest month partition (two at a month's turn) and only that partition's indexes have
  to be in memory, however large the table has grown;
* ``backfill``: every batch spread at random over the two years (a history loaded out of
  order), so every batch writes into all 24 partitions' indexes; once those outgrow the
  server's ``shared_buffers`` each row costs buffer reads and evictions, and the rate falls.

A measured company's 90-day window therefore holds the same rows at 100,000 and at N
signals, while the monthly partitions that window reads hold N / 100,000 times more rows
around them: the reads are timed on the same result over a growing table.  (Growing the
table further back in time at the same density, as this run did before ``signals`` was
partitioned, would need 400 years of monthly partitions for 20 million signals.)

Batches come from the library's generator (:func:`biotech_ma_db.sampledata.signals`),
one at a time, so the client never holds more than one batch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from bench import data
from biotech_ma_db import Database, sampledata
from biotech_ma_db.partitions import ensure_partitions

SMALL = 100_000
BATCH = 20_000
MEASURED_COMPANIES = 2_000
BULK_COMPANIES = 8_000
SIGNAL_DAYS = 730
INGEST_SHAPES = ("daily", "backfill")
OUTSIDE_ONCOLOGY = "rare_disease"  # a bulk company whose drawn areas were all oncology

# The timed 90-day window, bounded at both ends (a date includes its whole day), so the
# planner can prune every month partition outside it and the DEFAULT partition.
WINDOW_START = data.SINCE_90_DAYS
WINDOW_END = data.ANCHOR
# The generator's newest moment; the oldest is SIGNAL_DAYS before it.
NEWEST = dt.datetime.combine(data.ANCHOR, dt.time(23, 59), tzinfo=dt.UTC)
OLDEST = NEWEST - dt.timedelta(days=SIGNAL_DAYS)


@dataclass(frozen=True)
class Companies:
    """The loaded companies, by role."""

    measured: list[int]
    bulk: list[int]
    oncology_caps: list[Decimal]  # market-cap floors that leave at least 50 oncology rows


def _bulk_row(index: int) -> dict[str, Any]:
    row = data.company_row(data.rng("scale-bulk", index), data.new_ticker(index), index)
    areas = [a for a in row["therapeutic_areas"] if a != "oncology"]
    row["therapeutic_areas"] = areas or [OUTSIDE_ONCOLOGY]
    return row


async def load_companies(conn: asyncpg.Connection) -> Companies:
    """COPY the measured and the bulk companies; return their ids and the page floors."""
    rows = data.seed_companies(MEASURED_COMPANIES)
    rows += [_bulk_row(i) for i in range(BULK_COMPANIES)]
    records = [tuple(r[c] for c in data.COMPANY_COLUMNS) for r in rows]
    await conn.copy_records_to_table("companies", records=records, columns=data.COMPANY_COLUMNS)
    found = await conn.fetch("SELECT id, ticker FROM companies ORDER BY id")
    caps = await conn.fetch(
        "SELECT market_cap_usd FROM companies WHERE 'oncology' = ANY(therapeutic_areas) "
        "ORDER BY market_cap_usd DESC"
    )
    return Companies(
        measured=[r["id"] for r in found if r["ticker"].startswith("C")],
        bulk=[r["id"] for r in found if r["ticker"].startswith("N")],
        oncology_caps=[r[0] for r in caps][49:],
    )


def signal_batches(company_ids: Sequence[int], count: int, stream: int) -> Iterator[list[dict]]:
    """``count`` signals about ``company_ids`` over the two years, in ``BATCH``-row lists."""
    spec = sampledata.DatasetSpec(
        companies=1,
        signals=count,
        signal_days=SIGNAL_DAYS,
        seed=data.SEED + stream,
        today=data.ANCHOR,
        batch_size=BATCH,
    )
    yield from sampledata.signals(spec, list(company_ids))


def daily_batches(company_ids: Sequence[int], count: int, stream: int) -> Iterator[list[dict]]:
    """``count`` signals as a daily feed, oldest day first, in ``BATCH``-row lists.

    Every day of the two years gets the same share of ``count`` (the remainder goes to the
    first days), drawn from the library's generator one day at a time with a seed of its
    own; a batch takes the rows of one day, or the end of one and the start of the next.
    """
    per_day, extra = divmod(count, SIGNAL_DAYS)
    pending: list[dict[str, Any]] = []
    for day in range(SIGNAL_DAYS):
        spec = sampledata.DatasetSpec(
            companies=1,
            signals=per_day + (1 if day < extra else 0),
            signal_days=1,
            seed=data.SEED + stream * 100_000 + day,
            today=OLDEST.date() + dt.timedelta(days=day + 1),
            batch_size=BATCH,
        )
        for rows in sampledata.signals(spec, list(company_ids)):
            pending += rows
            while len(pending) >= BATCH:
                yield pending[:BATCH]
                del pending[:BATCH]
    if pending:
        yield pending


def bulk_batches(
    shape: str, company_ids: Sequence[int], count: int, stream: int
) -> Iterator[list[dict]]:
    """The bulk signals in the ``shape`` of :data:`INGEST_SHAPES` (see the module's text)."""
    if shape == "daily":
        return daily_batches(company_ids, count, stream)
    if shape == "backfill":
        return signal_batches(company_ids, count, stream)
    raise ValueError(f"ingest shape must be one of {', '.join(INGEST_SHAPES)}, not {shape!r}")


def months_spanned() -> int:
    """Calendar months from the oldest to the newest generated moment, both included."""
    return (NEWEST.year - OLDEST.year) * 12 + NEWEST.month - OLDEST.month + 1


async def ensure_months(db: Database) -> list[str]:
    """Create a partition for every month the generated signals fall in (not DEFAULT)."""
    result = await ensure_partitions(
        db, start=OLDEST.date(), months_ahead=months_spanned() - 1, lock_timeout_ms=30_000
    )
    return list(result.created)
