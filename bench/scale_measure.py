"""The scale run's measurements at one table size: sizes, plans and read latency.

Before anything is timed the table is settled: ``VACUUM ANALYZE`` (autovacuum is off on
the benchmark server), a ``CHECKPOINT`` and ``sync``, because the ingest and the vacuum
leave gigabytes of dirty pages; flushed during the timing, they would slow every read,
even of tables the ingest never touched.

The partitions a timed read (:mod:`bench.scale_reads`) touches are the distinct relations
its statement's ``EXPLAIN (ANALYZE, FORMAT JSON)`` scanned: plan nodes with a relation name
that ran at least once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

from bench.peers import BY_COMPANY_SQL, PAGE_SQL
from bench.scale_data import WINDOW_END, WINDOW_START
from bench.scale_reads import latencies
from bench.server import BenchServer
from biotech_ma_db import Database
from biotech_ma_db.repositories.query import DEFAULT_LIMIT

# The statement get_by_company sends for a window with both ends (an end date means
# "before the next day's midnight").
WINDOW_SQL = BY_COMPANY_SQL.replace(
    "AND event_date >= $2", "AND event_date >= $2 AND event_date < $3"
).replace("LIMIT 50", f"LIMIT {DEFAULT_LIMIT}")
WINDOW_STOP = dt.datetime.combine(WINDOW_END + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)

_SIZES_SQL = """
SELECT count(*) AS partitions,
       coalesce(sum(pg_table_size(relid)), 0) AS table_bytes,
       coalesce(sum(pg_indexes_size(relid)), 0) AS index_bytes,
       coalesce(sum(pg_total_relation_size(relid)), 0) AS total_bytes
FROM pg_partition_tree('signals') WHERE isleaf
"""
_LEAVES_SQL = """
SELECT c.relname AS name, c.reltuples::bigint AS rows
FROM pg_partition_tree('signals') AS t JOIN pg_class AS c ON c.oid = t.relid
WHERE t.isleaf ORDER BY c.relname
"""


async def settle(conn: asyncpg.Connection, *tables: str) -> None:
    """``VACUUM ANALYZE`` the tables, then write every dirty page back before timing."""
    for table in tables:
        await conn.execute(f"VACUUM ANALYZE {table}")
    await conn.execute("CHECKPOINT")
    os.sync()


async def sizes(conn: asyncpg.Connection) -> dict[str, Any]:
    """Rows, partitions and bytes of ``signals``, summed over its leaf partitions."""
    row = await conn.fetchrow(_SIZES_SQL)
    leaves = await conn.fetch(_LEAVES_SQL)
    default = "signals_default"
    has_default = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", default)
    months = [r["rows"] for r in leaves if r["name"] != default]
    in_default = await conn.fetchval(f"SELECT count(*) FROM {default}") if has_default else 0
    return {
        "rows": await conn.fetchval("SELECT count(*) FROM signals"),
        "default_rows": in_default,
        "partitions": row["partitions"],
        "month_partition_rows": {"min": min(months, default=0), "max": max(months, default=0)},
        "table_mb": row["table_bytes"] / 2**20,
        "index_mb": row["index_bytes"] / 2**20,
        "total_mb": row["total_bytes"] / 2**20,
    }


def _scanned(node: dict[str, Any], found: set[str]) -> set[str]:
    if "Relation Name" in node and node.get("Actual Loops", 1) > 0:
        found.add(node["Relation Name"])
    for child in node.get("Plans", ()):
        _scanned(child, found)
    return found


async def explain(conn: asyncpg.Connection, company_id: int, cap: Decimal) -> dict[str, Any]:
    """Each timed read's plan (text) and the relations it scanned."""
    plans: dict[str, Any] = {}
    for name, sql, args in (
        ("get_by_company", WINDOW_SQL, (company_id, WINDOW_START, WINDOW_STOP)),
        ("filtered_page", PAGE_SQL, (["oncology"], cap)),
    ):
        found = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
        plan = (json.loads(found) if isinstance(found, str) else found)[0]
        rows = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) {sql}", *args)
        plans[name] = {
            "relations": sorted(_scanned(plan["Plan"], set())),
            "plan": "\n".join(r[0] for r in rows),
        }
    return plans


async def phase(
    srv: BenchServer,
    db: Database,
    companies: Sequence[int],
    caps: Sequence[Decimal],
    count: int,
    *,
    busy: Sequence[int] = (),
) -> dict[str, Any]:
    """Settle the table, then its sizes, the plans and the read latencies at this size."""
    conn = await asyncpg.connect(**srv.dsn)
    try:
        await settle(conn, "signals")
        size = await sizes(conn)
        plans = await explain(conn, companies[len(companies) // 2], caps[len(caps) // 2])
    finally:
        await conn.close()
    timings = await latencies(
        db, companies, caps, count, server_cpu=srv.server_cpu_seconds, busy=busy
    )
    reads = timings.pop("reads")
    return {**size, "explain": plans, "latency": reads, "load": timings}
