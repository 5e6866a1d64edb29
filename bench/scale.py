"""``python -m bench scale``: read latency with 100,000 and with 5,000,000 signals.

The signals table is filled through the library's own COPY path
(:meth:`SignalRepository.bulk_ingest`), streamed in batches from the synthetic generator,
so the client never holds more than one batch.  The first 100,000 signals cover the last
two years; the next 4.9 million go further back in time at the same density, so a
company's "last 90 days" holds the same rows at both sizes and only the table around them
grows: the reads must stay as fast (index scans), within 1.5x.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import resource
import statistics
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import asyncpg
import psutil
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bench import data
from bench.harness import RESULTS
from bench.peers import BY_COMPANY_SQL, PAGE_SQL
from bench.server import BenchServer
from biotech_ma_db import CompanyRepository, Database, SignalRepository, sampledata

SMALL = 100_000
BATCH = 20_000
LIMIT = 1.5
SIGNALS_PER_DAY = SMALL / 730  # the density of the first 100,000 (two years)


def _batches(company_ids: Sequence[int], count: int, today: dt.date, days: int) -> Iterator[list]:
    spec = sampledata.DatasetSpec(
        companies=1,
        signals=count,
        signal_days=days,
        seed=data.SEED,
        today=today,
        batch_size=BATCH,
    )
    yield from sampledata.signals(spec, list(company_ids))


class MemoryWatch:
    """Samples this process's RSS in the background; keeps the peak."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        self.peak = max(self.peak, self.process.memory_info().rss)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self.peak = 0
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> int:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()
        return self.peak


async def ingest(
    db: Database,
    batches: Iterator[list[dict[str, Any]]],
    total: int,
    label: str,
    watch: MemoryWatch,
) -> float:
    """COPY every batch through ``SignalRepository.bulk_ingest``; returns rows/s."""
    started = time.perf_counter()
    done = 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} rows/s  RSS {task.fields[rss]} MB"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, refresh_per_second=4) as progress:
        task = progress.add_task(label, total=total, rate="-", rss="-")
        for batch in batches:
            async with db.session() as session:
                done += await SignalRepository(session).bulk_ingest(batch)
            del batch
            watch.sample()
            elapsed = time.perf_counter() - started
            progress.update(
                task,
                completed=done,
                rate=f"{done / elapsed:,.0f}",
                rss=f"{watch.process.memory_info().rss / 2**20:,.0f}",
            )
    return done / (time.perf_counter() - started)


async def latencies(
    db: Database, company_ids: Sequence[int], caps: Sequence[Decimal], count: int
) -> dict[str, dict[str, float]]:
    """Median and p95 latency (ms) of get_by_company and the filtered page."""
    results: dict[str, list[float]] = {"get_by_company": [], "filtered_page": []}
    r = data.rng("scale-latency")
    since = data.SINCE_90_DAYS
    async with db.session() as session:
        signals = SignalRepository(session)
        companies = CompanyRepository(session)
        for _ in range(count // 10):  # warm the caches and the statement cache
            await signals.get_by_company(r.choice(company_ids), start_date=since)
            await companies.search(therapeutic_areas=["oncology"], min_market_cap=r.choice(caps))
        session.expunge_all()
        for _ in range(count):
            company = r.choice(company_ids)
            started = time.perf_counter()
            await signals.get_by_company(company, start_date=since)
            results["get_by_company"].append(time.perf_counter() - started)
            cap = r.choice(caps)
            started = time.perf_counter()
            await companies.search(therapeutic_areas=["oncology"], min_market_cap=cap)
            results["filtered_page"].append(time.perf_counter() - started)
            session.expunge_all()
    return {
        name: {
            "median_ms": statistics.median(values) * 1000,
            "p95_ms": statistics.quantiles(values, n=20)[-1] * 1000,
        }
        for name, values in results.items()
    }


async def explain(conn: asyncpg.Connection, company_id: int, cap: Decimal) -> dict[str, str]:
    plans = {}
    for name, sql, args in (
        ("get_by_company", BY_COMPANY_SQL, (company_id, data.SINCE_90_DAYS)),
        ("filtered_page", PAGE_SQL, (["oncology"], cap)),
    ):
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) {sql}", *args)
        plans[name] = "\n".join(r[0] for r in rows)
    return plans


async def _measure(
    srv: BenchServer, db: Database, active: list[int], caps: list[Decimal], count: int
) -> dict[str, Any]:
    conn = await asyncpg.connect(**srv.dsn)
    try:
        await conn.execute("VACUUM ANALYZE signals")
        # Write back what the ingest and VACUUM dirtied (gigabytes at 5M rows) before timing:
        # otherwise the checkpointer and the kernel flush it during the timed reads, and the
        # latencies measure the disk, not the indexes.
        await conn.execute("CHECKPOINT")
        os.sync()
        rows = await conn.fetchval("SELECT count(*) FROM signals")
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('signals'))")
        plans = await explain(conn, active[len(active) // 2], caps[len(caps) // 2])
    finally:
        await conn.close()
    timings = await latencies(db, active, caps, count)
    return {"rows": rows, "table_size": size, "latency": timings, "explain": plans}


async def scale(srv: BenchServer, final_rows: int, quick: bool) -> dict[str, Any]:
    started = time.perf_counter()
    watch = MemoryWatch()
    conn = await asyncpg.connect(**srv.dsn)
    try:
        rows = data.seed_companies(2_000)
        records = [tuple(r[c] for c in data.COMPANY_COLUMNS) for r in rows]
        await conn.copy_records_to_table("companies", records=records, columns=data.COMPANY_COLUMNS)
        company_ids = [r[0] for r in await conn.fetch("SELECT id FROM companies ORDER BY id")]
        caps = [
            r[0]
            for r in await conn.fetch(
                "SELECT market_cap_usd FROM companies WHERE 'oncology' = ANY(therapeutic_areas) "
                "ORDER BY market_cap_usd DESC"
            )
        ][49:]
    finally:
        await conn.close()
    count = 200 if quick else 1_000
    report: dict[str, Any] = {"final_rows": final_rows, "batch_rows": BATCH}
    async with Database.from_url(srv.url, pool_size=4, max_overflow=0) as db:
        watch.start()
        recent = _batches(company_ids, SMALL, data.ANCHOR, 730)
        report["ingest_small_rows_per_s"] = await ingest(
            db, recent, SMALL, "signals to 100k", watch
        )
        report["peak_rss_small_mb"] = await watch.stop() / 2**20
        conn = await asyncpg.connect(**srv.dsn)
        try:
            active = [
                r[0]
                for r in await conn.fetch(
                    "SELECT DISTINCT company_id FROM signals WHERE event_date >= $1 ORDER BY 1",
                    data.SINCE_90_DAYS,
                )
            ]
        finally:
            await conn.close()
        report["small"] = await _measure(srv, db, active, caps, count)
        print(f"100k: {json.dumps(report['small']['latency'])}")

        more = final_rows - SMALL
        days = round(more / SIGNALS_PER_DAY)
        older = _batches(company_ids, more, data.ANCHOR - dt.timedelta(days=731), days)
        watch.start()
        report["ingest_large_rows_per_s"] = await ingest(
            db, older, more, f"signals to {final_rows / 1e6:g}M", watch
        )
        report["peak_rss_large_mb"] = await watch.stop() / 2**20
        report["large"] = await _measure(srv, db, active, caps, count)
    report["max_rss_process_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["total_wall_s"] = round(time.perf_counter() - started, 1)
    report["placement"] = srv.placement.describe()
    report["date_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    return report


def render(report: dict[str, Any]) -> str:
    small, large = report["small"], report["large"]
    big = f"{report['final_rows'] / 1e6:g}M signals"
    lines = [
        f"biotech-ma-db scale run — {report['date_utc']} UTC; CPU placement: {report['placement']}",
        "",
        f"{'':<34}{'100k signals':>16}{big:>16}{'ratio':>9}  ok (<= {LIMIT}x)",
        f"{'table size (signals + indexes)':<34}{small['table_size']:>16}{large['table_size']:>16}",
    ]
    verdicts = []
    for name in ("get_by_company", "filtered_page"):
        for stat in ("median_ms", "p95_ms"):
            a, b = small["latency"][name][stat], large["latency"][name][stat]
            ratio = b / a
            ok = ratio <= LIMIT
            if stat == "median_ms":
                verdicts.append(ok)
            label = f"{name} {stat.replace('_ms', '')} [ms]"
            lines.append(f"{label:<34}{a:>16.3f}{b:>16.3f}{ratio:>8.2f}x  {'yes' if ok else 'NO'}")
    lines += [
        "",
        f"ingest (bulk_ingest, COPY, {report['batch_rows']:,}-row batches): "
        f"{report['ingest_small_rows_per_s']:,.0f} rows/s to 100k, "
        f"{report['ingest_large_rows_per_s']:,.0f} rows/s to {report['final_rows']:,}",
        f"peak client RSS during the {report['final_rows']:,}-row ingest: "
        f"{report['peak_rss_large_mb']:,.0f} MB (limit 300 MB) — "
        f"{'ok' if report['peak_rss_large_mb'] < 300 else 'OVER'}; "
        f"process max RSS (getrusage) {report['max_rss_process_mb']:,.0f} MB",
        "",
    ]
    for size, block in (("100k", small), (big.split(maxsplit=1)[0], large)):
        for name, plan in block["explain"].items():
            lines += [f"EXPLAIN {name} at {size}:", *(f"  {p}" for p in plan.splitlines()), ""]
    lines.append(f"total wall time {report['total_wall_s']}s")
    return "\n".join(lines)


def run_scale(server: BenchServer, *, final_rows: int, quick: bool) -> None:
    if quick:
        final_rows = min(final_rows, 500_000)
    report = asyncio.run(scale(server, final_rows, quick))
    text = render(report)
    print()
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / ("scale-quick.json" if quick else "scale.json")
    path.write_text(json.dumps({**report, "table": text}, indent=2, default=str))
    print(f"\nresults written to {path}")
