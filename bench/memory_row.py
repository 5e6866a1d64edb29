"""The memory row: one company's 100,000 signals read by raw asyncpg and streamed by the library.

Raw asyncpg ``fetch`` holds the whole result (100,000 ``Record``s) at once: that is the
limit to compare with.  The library reads the same rows through
``SignalRepository.stream_by_company`` (a server-side cursor, 1,000 rows a batch), the
caller keeping nothing.  Each read runs once to warm up, once timed and once under
``tracemalloc`` with the RSS sampled (:func:`bench.measure.memory_run`); the goal is a
library peak under twice raw asyncpg's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench import data
from bench.measure import memory_run, rss_bytes
from bench.peers import Peer

if TYPE_CHECKING:
    from bench.harness import Harness

ROWS = 100_000
BATCH = 1_000
GOAL = 2.0  # library peak / raw asyncpg peak


async def measure(harness: Harness, peers: Sequence[Peer]) -> dict[str, object]:
    """Seed the company, read it with each of ``peers`` (fresh instances), report."""
    company_id = await _seed(harness)
    server = harness.server
    found: dict[str, object] = {}
    for cls in (type(p) for p in peers):
        peer = cls()
        await peer.start(server.url, server.dsn)
        try:
            peer.enter()
            await peer.read_all_signals(company_id, BATCH)  # warm-up
            started = time.perf_counter()
            rows = await peer.read_all_signals(company_id, BATCH)
            wall = time.perf_counter() - started
            memory = await memory_run(lambda p=peer: p.read_all_signals(company_id, BATCH), ROWS)
        finally:
            await peer.close()
        found[peer.key] = {
            "label": peer.label,
            "rows": rows,
            "wall_s": round(wall, 3),
            **memory.as_json(),
        }
    raw, lib = found.get("asyncpg"), found.get("lib")
    summary: dict[str, object] = {"rows": ROWS, "batch_size": BATCH, "goal": GOAL, "peers": found}
    if isinstance(raw, dict) and isinstance(lib, dict):
        ratio = lib["tracemalloc_peak_kib"] / max(raw["tracemalloc_peak_kib"], 1)
        summary["peak_ratio"] = round(ratio, 3)
        summary["meets_goal"] = ratio < GOAL and lib["rows"] == raw["rows"] == ROWS
    summary["client_rss_now_mib"] = round(rss_bytes() / 2**20, 1)
    return summary


async def _seed(harness: Harness) -> int:
    conn = await harness.admin()
    try:
        company_id = await conn.fetchval(
            "INSERT INTO companies (ticker, name) VALUES ('BIG00', 'Big Signals Inc') "
            "ON CONFLICT (ticker) WHERE deleted_at IS NULL DO UPDATE SET name = excluded.name "
            "RETURNING id"
        )
        await conn.execute("DELETE FROM signals WHERE company_id = $1", company_id)
        for batch in data.big_company_signals(company_id, ROWS):
            await conn.copy_records_to_table(
                "signals",
                records=[data.signal_record(r) for r in batch],
                columns=data.SIGNAL_COLUMNS,
            )
        await conn.execute("VACUUM ANALYZE signals")
    finally:
        await conn.close()
    return int(company_id)
