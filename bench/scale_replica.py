"""The scale run's replica row: the same reads on a hot standby and on the primary.

After the full ingest, :func:`biotech_ma_db.testing.replica.start_replica` copies the
benchmark cluster with ``pg_basebackup`` and starts a streaming hot standby of it; the run
waits until the standby has replayed the primary's current WAL position, writes the
copy's dirty pages back (``sync``), and pins the standby's processes to the server's CPUs
like the primary's.  Then one ``Database`` with ``read_replica_urls`` (what
``DB_READ_REPLICA_URLS`` sets) times the reads in a ``session(read_only=True)`` (routed to
the standby, checked with ``pg_is_in_recovery()``) and right after in a plain session on
the primary, so both see the same machine at the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from bench.scale_reads import latencies
from bench.server import DATABASE, BenchServer
from biotech_ma_db import Database, embedded
from biotech_ma_db.testing.replica import ReplicaServer, start_replica, wait_replayed

REPLAY_WITHIN_S = 1800.0  # a fresh copy of many gigabytes may trail for a while


def _family(pid: int) -> list[int]:
    """``pid`` and its child processes."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                pids.append(int(entry.name))
    return pids


def _cpu_seconds(pids: list[int]) -> float:
    """User+system CPU time of ``pids`` so far (those still running)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def _pin(replica: ReplicaServer, srv: BenchServer) -> None:
    """Put the standby on the server's CPUs; backends it forks later inherit that."""
    running = embedded.status(replica.data_dir)
    if srv.placement.mode != "split" or running is None:
        return
    cpus = ",".join(str(c) for c in srv.placement.server_cpus)
    for pid in _family(running.pid):
        subprocess.run(  # noqa: S603 — fixed argv, the standby's own pids
            ["taskset", "-a", "-p", "-c", cpus, str(pid)],  # noqa: S607
            check=False,
            capture_output=True,
        )


async def replica_row(
    srv: BenchServer, companies: Sequence[int], caps: Sequence[Decimal], count: int
) -> dict[str, Any]:
    """Start a standby, wait for it to catch up, time the reads there and on the primary."""
    started = time.perf_counter()
    replica = await asyncio.to_thread(start_replica, srv.server)
    try:
        copied = time.perf_counter() - started
        _pin(replica, srv)
        conn = await asyncpg.connect(**srv.dsn)
        try:
            lsn = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
        finally:
            await conn.close()
        user = make_url(srv.url).username or "postgres"
        url = replica.url(DATABASE, user=user)
        await wait_replayed(url, lsn, within_s=REPLAY_WITHIN_S)
        os.sync()
        caught_up = time.perf_counter() - started
        standby = embedded.status(replica.data_dir)

        def servers_cpu() -> float:
            pids = _family(standby.pid) if standby is not None else []
            return srv.server_cpu_seconds() + _cpu_seconds(pids)

        async with Database.from_url(
            srv.url, pool_size=2, max_overflow=0, read_replica_urls=url
        ) as db:
            on_replica = await latencies(
                db, companies, caps, count, server_cpu=servers_cpu, read_only=True
            )
            on_primary = await latencies(db, companies, caps, count, server_cpu=servers_cpu)
    finally:
        await asyncio.to_thread(replica.close)
    if not on_replica["on_standby"] or on_primary["on_standby"]:
        raise RuntimeError("the read-only session did not run on the standby")
    return {
        "basebackup_s": copied,
        "caught_up_s": caught_up,
        "replica": on_replica.pop("reads"),
        "primary": on_primary.pop("reads"),
        "load": {"replica": on_replica, "primary": on_primary},
    }
