"""The scale run's ingest: COPY batch after batch, timing each, and the client's memory.

Each batch goes through :meth:`SignalRepository.bulk_ingest` in its own session (validate
every row, COPY in a savepoint, commit).  Its time is kept apart from the generator's, so
the "COPY ingest rate" is rows over the time spent in ``bulk_ingest`` and does not depend
on how fast the synthetic data is made; the wall rate (generation included) is kept too.

After each batch the server's cumulative counters are read: buffer reads and writes of
client backends (``pg_stat_io``: pages the COPY had to fetch into, or evict dirty from,
``shared_buffers``) and WAL bytes (``pg_stat_wal``), so each window also says where its
time went.  Backends publish these counters when they go idle (at most once a second), so a
batch's counts may land on the next one; over a window of batches that evens out.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from biotech_ma_db import Database, SignalRepository

SHARE = 0.1  # the first and the last 10 % of the rows give the start and end rates
_COUNTERS_SQL = """
SELECT (SELECT coalesce(sum(reads), 0) FROM pg_stat_io
        WHERE backend_type = 'client backend' AND object = 'relation')::bigint,
       (SELECT coalesce(sum(writes), 0) FROM pg_stat_io
        WHERE backend_type = 'client backend' AND object = 'relation')::bigint,
       (SELECT wal_bytes FROM pg_stat_wal)::bigint
"""
LOG_EVERY_S = 60.0  # progress lines when stdout is not a terminal (a nohup log)
MB = 2**20


def _status_kb(key: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``); 0 off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes() -> int:
    """This process's resident set size now."""
    return _status_kb("VmRSS") * 1024


def peak_rss() -> dict[str, float]:
    """This process's peak RSS so far, in MB: the kernel's ``VmHWM`` and ``ru_maxrss``."""
    return {
        "vmhwm_mb": _status_kb("VmHWM") / 1024,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


class MemoryWatch:
    """Samples this process's RSS every 50 ms in the background (and after each batch)."""

    def __init__(self) -> None:
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        self.peak = max(self.peak, rss_bytes())

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> int:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()
        return self.peak


@dataclass
class IngestLog:
    """Rows and seconds of every batch, in ingest order (all phases of one run)."""

    rows: list[int] = field(default_factory=list)
    copy_s: list[float] = field(default_factory=list)  # in bulk_ingest: validate, COPY, commit
    wall_s: list[float] = field(default_factory=list)  # the same plus making the batch
    # Per batch: (buffer reads, buffer writes, WAL bytes) of the server since the last one.
    server_io: list[tuple[int, int, int]] = field(default_factory=list)

    def add(self, rows: int, copy_s: float, wall_s: float, io: tuple[int, int, int]) -> None:
        self.rows.append(rows)
        self.copy_s.append(copy_s)
        self.wall_s.append(wall_s)
        self.server_io.append(io)

    def window(self, *, last: bool) -> dict[str, Any]:
        """Rates over the first (or the last) ``SHARE`` of the rows, whole batches."""
        total = sum(self.rows)
        order = range(len(self.rows) - 1, -1, -1) if last else range(len(self.rows))
        picked: list[int] = []
        rows = 0
        for i in order:
            if rows >= total * SHARE:
                break
            picked.append(i)
            rows += self.rows[i]
        picked.sort()
        before = sum(self.rows[: picked[0]])
        reads, writes, wal = (sum(self.server_io[i][k] for i in picked) for k in range(3))
        return {
            "from_row": before,
            "to_row": before + rows,
            "batches": len(picked),
            "copy_rows_per_s": rows / sum(self.copy_s[i] for i in picked),
            "wall_rows_per_s": rows / sum(self.wall_s[i] for i in picked),
            "buffer_reads_per_row": reads / rows,
            "buffer_writes_per_row": writes / rows,
            "wal_bytes_per_row": wal / rows,
        }

    def summary(self) -> dict[str, Any]:
        first, last = self.window(last=False), self.window(last=True)
        return {
            "rows": sum(self.rows),
            "first": first,
            "last": last,
            "end_to_start": last["copy_rows_per_s"] / first["copy_rows_per_s"],
            "copy_rows_per_s": sum(self.rows) / sum(self.copy_s),
            "wall_rows_per_s": sum(self.rows) / sum(self.wall_s),
            "copy_s": sum(self.copy_s),
            "wall_s": sum(self.wall_s),
        }


class _Reporter:
    """A rich progress bar on a terminal; a plain line a minute in a log file."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total = label, total
        self.tty = sys.stdout.isatty()
        self.progress: Progress | None = None
        self.last_line = time.perf_counter()

    def __enter__(self) -> _Reporter:
        if self.tty:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} rows/s  RSS {task.fields[rss]} MB"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                refresh_per_second=4,
            )
            self.progress.__enter__()
            self.task = self.progress.add_task(self.label, total=self.total, rate="-", rss="-")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)

    def update(self, done: int, rate: float) -> None:
        rss = f"{rss_bytes() / MB:,.0f}"
        if self.progress is not None:
            self.progress.update(self.task, completed=done, rate=f"{rate:,.0f}", rss=rss)
        elif time.perf_counter() - self.last_line >= LOG_EVERY_S or done == self.total:
            self.last_line = time.perf_counter()
            print(
                f"{self.label}: {done:,}/{self.total:,} rows, {rate:,.0f} rows/s (copy), "
                f"RSS {rss} MB",
                flush=True,
            )


async def _counters(stats: asyncpg.Connection) -> tuple[int, int, int]:
    row = await stats.fetchrow(_COUNTERS_SQL)
    return (row[0], row[1], row[2])


async def ingest(
    db: Database,
    batches: Iterator[list[dict[str, Any]]],
    total: int,
    label: str,
    *,
    dsn: dict[str, object],
    watch: MemoryWatch,
    log: IngestLog,
) -> None:
    """COPY every batch through ``SignalRepository.bulk_ingest``, recording each in ``log``.

    ``dsn`` (``asyncpg.connect`` arguments) is for a connection of its own that reads the
    server's counters.
    """
    stats = await asyncpg.connect(**dsn)
    try:
        await _batches(db, batches, _Reporter(label, total), stats=stats, watch=watch, log=log)
    finally:
        await stats.close()


async def _batches(
    db: Database,
    batches: Iterator[list[dict[str, Any]]],
    reporter: _Reporter,
    *,
    stats: asyncpg.Connection,
    watch: MemoryWatch,
    log: IngestLog,
) -> None:
    done = 0
    copy_s = 0.0
    last = await _counters(stats)
    with reporter:
        made = time.perf_counter()
        for batch in batches:
            started = time.perf_counter()
            async with db.session() as session:
                rows = await SignalRepository(session).bulk_ingest(batch)
            ended = time.perf_counter()
            del batch
            now = await _counters(stats)
            log.add(
                rows,
                ended - started,
                ended - made,
                (now[0] - last[0], now[1] - last[1], now[2] - last[2]),
            )
            last = now
            done += rows
            copy_s += ended - started
            watch.sample()
            reporter.update(done, done / copy_s)
            made = time.perf_counter()
