"""``python -m bench frames``: a 100,000-signal DataFrame against the raw asyncpg fetch.

One company with 100,000 signals (the synthetic generator's, with JSONB documents).  Per
run, round-robin over the contenders, each timed from the call to the finished result:

- ``asyncpg``: a prepared ``fetch`` on a plain asyncpg connection of the statement
  ``SignalRepository.get_by_company`` builds, selecting the frame's columns as PostgreSQL
  stores them, without a page limit: the rows as ``Record`` objects (the limit);
- ``frame``: ``biotech_ma_db.frames.signals_frame(db, company_id)``, a polars DataFrame
  (``Database`` from the public API: a pooled session, its connection, the library's
  select list, the column-wise build);
- ``asyncpg (frame SQL)``: the frame's own statement fetched raw, for information (epoch
  microseconds and float8 instead of ``datetime`` and ``Decimal``).

The goal: the frame in at most 1.5x the median time of the raw fetch, in the same run.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql

from bench import data
from bench.harness import RESULTS
from bench.server import BenchServer
from biotech_ma_db import Database, Signal
from biotech_ma_db.frames import _SIGNAL_COLUMNS, _Sql, signals_frame
from biotech_ma_db.repositories.signal import _by_company_query

SIGNALS = 100_000
GOAL = 1.5
_SHAPE = (False, False, None, None)  # get_by_company(company_id): no other filter


def _statements() -> tuple[_Sql, _Sql]:
    """The repository's statement with the frame's columns: stored types, and the frame's."""
    table: Table = Signal.__table__  # type: ignore[assignment]
    statement = _by_company_query(_SHAPE)(list(table.c))
    dialect = postgresql.asyncpg.dialect()  # type: ignore[attr-defined]
    native = statement.with_only_columns(*(table.c[c.name] for c in _SIGNAL_COLUMNS))
    framed = statement.with_only_columns(*(c.select for c in _SIGNAL_COLUMNS))
    return _Sql.of(native, dialect), _Sql.of(framed, dialect)


async def _seed(server: BenchServer) -> int:
    conn = await asyncpg.connect(**server.dsn)
    try:
        await conn.execute("INSERT INTO companies (ticker, name) VALUES ('FRAME', 'Frame Co')")
        company_id: int = await conn.fetchval("SELECT id FROM companies WHERE ticker = 'FRAME'")
        records = [
            data.signal_record(row)
            for batch in data.signals([company_id], SIGNALS)
            for row in batch
        ]
        await conn.copy_records_to_table("signals", records=records, columns=data.SIGNAL_COLUMNS)
        await conn.execute("VACUUM ANALYZE signals")
    finally:
        await conn.close()
    return company_id


async def frames_bench(server: BenchServer, repeats: int) -> dict[str, Any]:
    started = time.perf_counter()
    company_id = await _seed(server)
    print(f"seeded {SIGNALS:,} signals for one company in {time.perf_counter() - started:.1f}s")
    native_sql, framed_sql = _statements()
    values = {"company_id": company_id, "limit": None, "offset": 0}
    native_args, framed_args = native_sql.arguments(values), framed_sql.arguments(values)
    conn = await asyncpg.connect(**server.dsn)
    db = Database.from_url(server.url, pool_size=1, max_overflow=0)
    try:
        native = await conn.prepare(native_sql.text)
        framed = await conn.prepare(framed_sql.text)

        async def raw() -> int:
            return len(await native.fetch(*native_args))

        async def raw_frame_sql() -> int:
            return len(await framed.fetch(*framed_args))

        async def frame() -> int:
            return (await signals_frame(db, company_id)).height

        contenders: dict[str, Callable[[], Awaitable[int]]] = {
            "asyncpg": raw,
            "frame": frame,
            "asyncpg (frame SQL)": raw_frame_sql,
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        client: dict[str, list[float]] = {name: [] for name in contenders}
        server_cpu: dict[str, list[float]] = {name: [] for name in contenders}
        for name, run in contenders.items():  # warm-up: caches, statement preparation
            rows = await run()
            if rows != SIGNALS:
                raise AssertionError(f"{name} saw {rows} rows, expected {SIGNALS}")
        for _ in range(repeats):
            for name, run in contenders.items():
                server.pin_server()
                served, used = server.server_cpu_seconds(), time.process_time()
                begin = time.perf_counter()
                await run()
                times[name].append(time.perf_counter() - begin)
                client[name].append(time.process_time() - used)
                server_cpu[name].append(server.server_cpu_seconds() - served)
    finally:
        await conn.close()
        await db.dispose()
    medians = {name: statistics.median(runs) for name, runs in times.items()}
    ratio = medians["frame"] / medians["asyncpg"]
    return {
        "signals": SIGNALS,
        "repeats": repeats,
        "placement": server.placement.describe(),
        "median_ms": {name: round(value * 1000, 1) for name, value in medians.items()},
        "runs_ms": {name: [round(t * 1000, 1) for t in runs] for name, runs in times.items()},
        "client_cpu_ms": _medians_ms(client),
        "server_cpu_ms": _medians_ms(server_cpu),
        "ratio": round(ratio, 3),
        "goal": GOAL,
        "met": ratio <= GOAL,
    }


def _medians_ms(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: round(statistics.median(runs) * 1000, 1) for name, runs in samples.items()}


def render(report: dict[str, Any]) -> str:
    median, client, server = report["median_ms"], report["client_cpu_ms"], report["server_cpu_ms"]
    base = median["asyncpg"]
    lines = [
        f"{report['signals']:,}-signal frame, median of {report['repeats']} runs "
        f"({report['placement']})",
        f"  {'':<26}{'wall':>10}{'ratio':>8}{'client CPU':>12}{'server CPU':>12}",
    ]
    for name, label in (
        ("asyncpg", "asyncpg fetch (Records)"),
        ("frame", "signals_frame (polars)"),
        ("asyncpg (frame SQL)", "asyncpg fetch, frame SQL"),
    ):
        lines.append(
            f"  {label:<26}{median[name]:>7.1f} ms{median[name] / base:>7.2f}x"
            f"{client[name]:>9.1f} ms{server[name]:>9.1f} ms"
        )
    verdict = "met" if report["met"] else "MISSED"
    lines.append(f"  goal: the frame in <= {report['goal']}x the raw fetch: {verdict}")
    return "\n".join(lines)


def run_frames(server: BenchServer, *, repeats: int) -> None:
    report = asyncio.run(frames_bench(server, repeats))
    text = render(report)
    print()
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "frames.json"
    path.write_text(json.dumps({**report, "table": text}, indent=2))
    print(f"\nresults written to {path}")
