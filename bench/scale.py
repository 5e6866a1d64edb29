"""``python -m bench scale [--rows N]``: reads, ingest and memory at 100,000 and at N signals.

One run fills ``signals`` (range-partitioned by month on ``event_date``) up to N rows
(5,000,000 by default) through the library's COPY path, in batches streamed from the
synthetic generator, and measures at 100,000 and at N rows:

* ``get_by_company`` over a 90-day window and the filtered page: median and p95 over
  1,000 calls through the library (goal: at N within 1.3x of 100k), the partitions each
  read touched (from its plan), table and index sizes summed over the partitions;
* the COPY ingest rate of the first and the last 10 % of the rows (goal: the end at least
  0.8x the start), with the bulk rows as a daily feed (default) or a random-date backfill
  (``--ingest``), and the client's peak RSS (goal: under 300 MB);
* after the ingest, the same reads on a streaming hot standby against the primary
  (goal: within 1.2x).

What grows and what stays the same is in :mod:`bench.scale_data`; how each figure is taken
in :mod:`bench.scale_measure`, :mod:`bench.scale_ingest` and :mod:`bench.scale_replica`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg

from bench import scale_data
from bench.harness import RESULTS
from bench.scale_data import BATCH, SMALL, WINDOW_END, WINDOW_START, Companies
from bench.scale_ingest import MB, IngestLog, MemoryWatch, ingest, peak_rss
from bench.scale_measure import phase, settle
from bench.scale_replica import replica_row
from bench.scale_report import goals, render
from bench.server import BenchServer
from biotech_ma_db import Database

QUICK_ROWS = 500_000


async def _load(srv: BenchServer) -> Companies:
    conn = await asyncpg.connect(**srv.dsn)
    try:
        companies = await scale_data.load_companies(conn)
        await settle(conn, "companies")
    finally:
        await conn.close()
    return companies


async def _active(srv: BenchServer) -> list[int]:
    """The measured companies with at least one signal in the timed window."""
    conn = await asyncpg.connect(**srv.dsn)
    try:
        rows = await conn.fetch(
            "SELECT DISTINCT company_id FROM signals WHERE event_date >= $1 "
            "AND event_date < $2::date + 1 ORDER BY 1",
            WINDOW_START,
            WINDOW_END,
        )
    finally:
        await conn.close()
    return [r[0] for r in rows]


async def scale(srv: BenchServer, final_rows: int, quick: bool, shape: str) -> dict[str, Any]:
    """The whole run; returns the report (see :func:`bench.scale_report.render`)."""
    started = time.perf_counter()
    count = 200 if quick else 1_000
    watch, log = MemoryWatch(), IngestLog()
    companies = await _load(srv)
    caps = companies.oncology_caps
    report: dict[str, Any] = {
        "final_rows": final_rows,
        "ingest_shape": shape,
        "batch_rows": BATCH,
        "months": scale_data.months_spanned(),
        "companies": {"measured": len(companies.measured), "bulk": len(companies.bulk)},
        "calls_per_read": count,
    }
    async with Database.from_url(srv.url, pool_size=4, max_overflow=0) as db:
        report["partitions_created"] = await scale_data.ensure_months(db)
        watch.start()
        recent = scale_data.signal_batches(companies.measured, SMALL, stream=0)
        await ingest(db, recent, SMALL, "signals to 100k", dsn=srv.dsn, watch=watch, log=log)
        await watch.stop()
        active = await _active(srv)
        report["small"] = await phase(srv, db, active, caps, count)
        print(f"100k: {json.dumps(report['small']['latency'])}", flush=True)

        more = final_rows - SMALL
        bulk = scale_data.bulk_batches(shape, companies.bulk, more, stream=1)
        watch.start()
        label = f"signals to {final_rows / 1e6:g}M"
        await ingest(db, bulk, more, label, dsn=srv.dsn, watch=watch, log=log)
        sampled = await watch.stop()
        report["large"] = await phase(srv, db, active, caps, count, busy=companies.bulk)
        print(f"{final_rows:,}: {json.dumps(report['large']['latency'])}", flush=True)
    report["ingest"] = log.summary()
    report["replica"] = await replica_row(srv, active, caps, count)
    report["memory"] = {"sampled_ingest_mb": sampled / MB, **peak_rss()}
    report["goals"] = goals(report)
    report["total_wall_s"] = round(time.perf_counter() - started, 1)
    report["placement"] = srv.placement.describe()
    report["date_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    return report


def run_scale(server: BenchServer, *, final_rows: int, quick: bool, shape: str = "daily") -> None:
    """Run, print the table and write ``bench/results/scale.json`` (``scale-quick.json``)."""
    if quick:
        final_rows = min(final_rows, QUICK_ROWS)
    if final_rows <= SMALL:
        raise SystemExit(f"--rows must be more than {SMALL:,}")
    report = asyncio.run(scale(server, final_rows, quick, shape))
    text = render(report)
    print()
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "scale-quick" if quick else "scale"
    path = RESULTS / (f"{name}.json" if shape == "daily" else f"{name}-{shape}.json")
    path.write_text(json.dumps({**report, "table": text}, indent=2, default=str))
    print(f"\nresults written to {path}")
