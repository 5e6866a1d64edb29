"""The comparison run: seed the database, time every operation for every peer, report.

Method (see ``bench/README.md``): for each operation every contender warms up (on each of
its pooled connections for read rows, with the same parameters, so every connection
makes the same generic-or-custom plan choice), then the timed runs go in rounds, each
round running every contender once in an order rotated by one from the last.  A
contender's ratio to raw asyncpg is the median over the rounds of its run divided by raw
asyncpg's run of the same round.  Write operations start from the same table state every
run (reset, ``VACUUM`` and ``CHECKPOINT`` outside the timing).  After the timings, each
cell is run once more under ``tracemalloc`` (memory), the round trips per unit of the
read and unit-of-work rows are counted on the wire (:mod:`bench.roundtrips`), and the
100,000-row read is measured raw and streamed (:mod:`bench.memory_row`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import asyncpg

from bench import data, memory_row, report
from bench.measure import Cell, RunResult, memory_run, timed
from bench.ops import MEMORY, OPS, RANKING, UNIT_OF_WORK, Op
from bench.peer_base import CONCURRENT_TASKS, UOW_DAY
from bench.peers import PEERS, Peer
from bench.roundtrips import CountingProxy
from bench.server import BenchServer

__all__ = ["RESULTS", "Harness", "compare", "profile", "run_compare"]

RESULTS = report.RESULTS
SEED_COMPANIES = 2_000
SCORE_WEEKS = 50  # 2,000 companies x 50 weekly scores = 100,000 scores
QUICK_SCORE_WEEKS = 10  # --quick: 20,000 scores
OTHER_LOAD_LIMIT = 0.25  # cores used by unrelated processes before a run is re-done
RETRIES = 1  # re-runs at most per timed run; the last one is kept whatever the load
MEMORY_UNITS_CAP = 2_000  # memory runs use the quick count, at most this many units
PROBED = ("1", "2", "5", "6", UNIT_OF_WORK)  # rows whose round trips are counted
PROBE_UNITS = 40

LATEST_WEEK = "WHERE score_date = (SELECT max(score_date) FROM ma_scores)"
CORRECTLY_RANKED = (
    "SELECT count(*) FROM ma_scores JOIN (SELECT id, percent_rank() OVER (PARTITION BY "
    "score_date ORDER BY total_score)::numeric(5, 4) AS rank FROM ma_scores) AS ranked "
    "USING (id) WHERE percentile_rank = ranked.rank"
)
Work = Callable[[], Awaitable[int]]


class Harness:
    """Seeds the database, runs the operations and collects :class:`Cell` results."""

    def __init__(
        self,
        server: BenchServer,
        *,
        quick: bool,
        repeats: int,
        only: Sequence[str] | None = None,
        peers: Sequence[str] | None = None,
    ) -> None:
        self.server = server
        self.quick = quick
        self.repeats = repeats
        self.ops = [op for op in OPS if not only or op.key in only]
        self.memory_row = not only or MEMORY in only
        self.peers: list[Peer] = [cls() for cls in PEERS if not peers or cls.key in peers]
        self.cells: dict[tuple[str, str], Cell] = {}
        self.notes: list[str] = []
        self.weeks = QUICK_SCORE_WEEKS if quick else SCORE_WEEKS
        # --quick keeps its time bound: no re-runs for outside load (still reported).
        self.retries = 0 if quick else RETRIES
        self.memory: dict[str, object] | None = None

    # -- setup ----------------------------------------------------------------------

    async def admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(**self.server.dsn)

    async def seed(self) -> None:
        started = time.perf_counter()
        conn = await self.admin()
        try:
            rows = data.seed_companies(SEED_COMPANIES)
            records = [tuple(r[c] for c in data.COMPANY_COLUMNS) for r in rows]
            await conn.copy_records_to_table(
                "companies", records=records, columns=data.COMPANY_COLUMNS
            )
            id_rows = await conn.fetch("SELECT id, ticker FROM companies ORDER BY id")
            self.company_ids = [r["id"] for r in id_rows]
            tickers = [r["ticker"] for r in id_rows]
            size = self.count(next(op for op in OPS if op.key == "3"))
            self.signal_rows = [
                row for batch in data.signals(self.company_ids, 100_000) for row in batch
            ]
            await conn.copy_records_to_table(
                "signals",
                records=[data.signal_record(r) for r in self.signal_rows],
                columns=data.SIGNAL_COLUMNS,
            )
            self.signal_rows = self.signal_rows[:size]
            await conn.copy_records_to_table(
                "ma_scores",
                records=data.scores(self.company_ids, self.weeks),
                columns=data.SCORE_COLUMNS,
            )
            await conn.execute("VACUUM ANALYZE")
            caps = await conn.fetch(
                "SELECT market_cap_usd FROM companies WHERE 'oncology' = ANY(therapeutic_areas) "
                "AND deleted_at IS NULL ORDER BY market_cap_usd DESC"
            )
            active = await conn.fetch(
                "SELECT c.ticker, c.id FROM companies c WHERE EXISTS (SELECT FROM signals s "
                "WHERE s.company_id = c.id AND s.event_date >= $1) ORDER BY c.id",
                data.SINCE_90_DAYS,
            )
            # Every table into the server's buffers before anything is timed.
            for table in ("companies", "signals", "ma_scores"):
                await conn.fetchval(f"SELECT count(*) FROM (SELECT * FROM {table}) AS t")
        finally:
            await conn.close()
        self.seeded = data.Seeded(
            company_ids=self.company_ids,
            tickers=tickers,
            oncology_caps=[r[0] for r in caps],
            signal_company_ids=[r["id"] for r in active],
            signal_tickers=[r["ticker"] for r in active],
        )
        upsert = next(op for op in OPS if op.key == "4")
        count = self.count(upsert)
        self.upsert_rows = data.upsert_companies(count, count // 5, SEED_COMPANIES)
        # The seeded data lives for the whole run: out of the cyclic GC's way, so that a
        # full collection during a timed run does not walk 100,000 signal dicts.
        gc.collect()
        gc.freeze()
        print(
            f"seeded {SEED_COMPANIES:,} companies, 100,000 signals, "
            f"{SEED_COMPANIES * self.weeks:,} scores in {time.perf_counter() - started:.1f}s"
        )

    def count(self, op: Op) -> int:
        return op.quick if self.quick else op.full

    def rounds(self, op: Op) -> int:
        return self.repeats if self.quick else max(self.repeats, op.min_repeats)

    async def reset(self, op: Op) -> None:
        if op.reset is None:
            return
        conn = await self.admin()
        try:
            if op.reset == "signals":
                await conn.execute("TRUNCATE signals")
            elif op.reset == "companies":
                await conn.execute("DELETE FROM companies WHERE ticker LIKE 'N%'")
                await conn.execute("VACUUM companies")
            elif op.reset == "uow":
                await conn.execute("DELETE FROM ma_scores WHERE score_date = $1", UOW_DAY)
                await conn.execute("TRUNCATE audit_log")
                await conn.execute("VACUUM ma_scores")
            elif op.reset in {"new week", "all ranks"}:
                # Scores arrive weekly: the latest week has no ranks yet and the older
                # weeks' ranks are current ("new week"), or no score has a rank yet.
                stale = "" if op.reset == "all ranks" else LATEST_WEEK
                await conn.execute(f"UPDATE ma_scores SET percentile_rank = NULL {stale}")
                await conn.execute("VACUUM ma_scores")
            await conn.execute("CHECKPOINT")
        finally:
            await conn.close()

    # -- workloads -------------------------------------------------------------------

    def workload(self, op: Op, peer: Peer, label: str, count: int) -> Work:
        seeded = self.seeded
        if op.key == "1":
            tickers = data.point_tickers(seeded, count, label)
            return lambda: peer.point_reads(tickers)
        if op.key in {"2", "2t"}:
            caps = data.page_thresholds(seeded, count, label)
            if op.key == "2t":
                return lambda: peer.tracked_pages(caps)
            return lambda: peer.filtered_pages(caps)
        if op.key == "3":
            rows = self.signal_rows[:count]
            return lambda: peer.bulk_insert(rows)
        if op.key == "4":
            return lambda: peer.upsert(self.upsert_rows)
        if op.key == "5":
            tickers = data.point_tickers(seeded, count, label)
            return lambda: peer.concurrent_reads(tickers)
        if op.key == "6":
            ids = data.company_picks(seeded, count, label)
            return lambda: peer.by_company(ids)
        if op.key == "7a":
            return lambda: peer.top_scores(count)
        if op.key == UNIT_OF_WORK:
            tickers = data.uow_tickers(seeded, count, label)
            return lambda: peer.units_of_work(tickers)
        if op.key in RANKING:
            return peer.percentile_ranks
        raise ValueError(op.key)

    def units(self, op: Op, count: int) -> int:
        if op.key == "4":
            return len(self.upsert_rows)
        if op.key in RANKING:
            return SEED_COMPANIES * self.weeks
        return count

    async def correctly_ranked(self) -> int:
        """How many scores hold the rank ``percent_rank()`` gives them now."""
        conn = await self.admin()
        try:
            return int(await conn.fetchval(CORRECTLY_RANKED))
        finally:
            await conn.close()

    # -- running ----------------------------------------------------------------------

    async def timed(self, op: Op, peer: Peer, label: str, count: int) -> RunResult:
        await self.reset(op)
        work = self.workload(op, peer, label, count)
        peer.enter()
        result = await timed(self.server, work, self.units(op, count))
        if op.key in RANKING:
            # Contenders write different numbers of rows; what must agree is the result.
            result.check = await self.correctly_ranked()
        return result

    async def warm(self, op: Op, peer: Peer) -> RunResult:
        """One warm-up run; for read rows also one on each pooled connection at once.

        Every copy reads the same parameters in the same order, so each connection's
        prepared statements see the same first executions and PostgreSQL makes the same
        generic-or-custom plan choice on all of them (and for every contender).
        """
        count = self.count(op)
        whole = op.key in {"4", "7a", UNIT_OF_WORK} | RANKING
        result = await self.timed(op, peer, "warmup", count if whole else max(1, count // 10))
        if op.reads and peer.pooled:
            works = [self.workload(op, peer, "warmup", max(1, count // 10))]
            works *= CONCURRENT_TASKS
            await asyncio.gather(*(work() for work in works))
        return result

    async def run(self) -> None:
        for peer in self.peers:
            await peer.start(self.server.url, self.server.dsn)
        try:
            for op in self.ops:
                await self.run_op(op)
        finally:
            for peer in self.peers:
                peer.enter()
                await peer.close()
        await self.probe_round_trips()
        if self.memory_row:
            self.memory = await memory_row.measure(
                self, [p for p in self.peers if p.key in {"asyncpg", "lib"}]
            )

    async def run_op(self, op: Op) -> None:
        count = self.count(op)
        started = time.perf_counter()
        for peer in self.peers:
            cell = self.cells.setdefault((op.key, peer.key), Cell(op.key, peer.key))
            cell.warmup = await self.warm(op, peer)
        for rep in range(self.rounds(op)):
            # Rotated order: no contender always runs first, or right after another.
            turn = rep % len(self.peers)
            for peer in self.peers[turn:] + self.peers[:turn]:
                cell = self.cells[(op.key, peer.key)]
                result = await self.timed(op, peer, f"run{rep}", count)
                for _ in range(self.retries):
                    if result.other_cores <= OTHER_LOAD_LIMIT:
                        break
                    cell.discarded += 1
                    result = await self.timed(op, peer, f"run{rep}", count)
                if result.other_cores > OTHER_LOAD_LIMIT:
                    cell.loaded += 1
                cell.runs.append(result)
        for peer in self.peers:
            await self.reset(op)
            units = min(op.quick, MEMORY_UNITS_CAP) if op.key not in {"4"} | RANKING else count
            work = self.workload(op, peer, "memory", units)
            peer.enter()
            self.cells[(op.key, peer.key)].memory = await memory_run(work, self.units(op, units))
        if op.key == UNIT_OF_WORK:
            await self.reset(op)
        checks = {p.key: self.cells[(op.key, p.key)].runs[-1].check for p in self.peers}
        if len(set(checks.values())) > 1:
            self.notes.append(f"op {op.key}: peers saw different row counts {checks}")
        line = "  ".join(f"{p.label} {self.cells[(op.key, p.key)].rate:,.0f}" for p in self.peers)
        took = time.perf_counter() - started
        print(f"  op {op.key:<3} {op.title} [{op.unit}/s]: {line}  ({took:.0f}s)")

    async def probe_round_trips(self) -> None:
        """Round trips and syncs per unit of the probed rows, counted on the wire."""
        ops = [op for op in self.ops if op.key in PROBED]
        if not ops:
            return
        dsn = self.server.dsn
        socket = f"{dsn['host']}/.s.PGSQL.{dsn['port']}"
        async with CountingProxy(socket) as proxy:
            url = f"postgresql+asyncpg://{dsn['user']}@127.0.0.1:{proxy.port}/{dsn['database']}"
            proxied = {**dsn, "host": "127.0.0.1", "port": proxy.port}
            for cls in (type(p) for p in self.peers):
                peer = cls()
                await peer.start(url, proxied)
                try:
                    for op in ops:
                        count = PROBE_UNITS * (2 if op.key == "5" else 1)
                        await self.reset(op)
                        peer.enter()
                        await self.workload(op, peer, "probe-warm", count)()
                        await self.reset(op)
                        peer.enter()
                        proxy.reset()
                        await self.workload(op, peer, "probe", count)()
                        self.cells[(op.key, peer.key)].round_trips = {
                            "round_trips": proxy.round_trips / count,
                            "syncs": proxy.syncs / count,
                        }
                finally:
                    peer.enter()
                    await peer.close()
            for op in ops:
                await self.reset(op)


async def compare(
    server: BenchServer,
    *,
    quick: bool,
    repeats: int,
    only: Sequence[str] | None,
    peers: Sequence[str] | None,
) -> Path:
    started = time.perf_counter()
    _quiet_slow_query_log()
    harness = Harness(server, quick=quick, repeats=repeats, only=only, peers=peers)
    await harness.seed()
    await harness.run()
    summary = report.summary(harness)
    env = report.environment(
        server, quick=quick, repeats=repeats, total_s=time.perf_counter() - started
    )
    history = report.history(summary, env)
    text = report.render(summary, env, harness.peers, history)
    print()
    print(text)
    path = report.save(summary, env, text, history)
    print(f"\nresults written to {path}")
    return path


def run_compare(server: BenchServer, **kwargs: object) -> Path:
    return asyncio.run(compare(server, **kwargs))  # type: ignore[arg-type]


def _quiet_slow_query_log() -> None:
    """The library logs statements over ``DB_SLOW_QUERY_MS`` (the 100k-row UPDATE is one);
    the hook stays on, as configured by default, but its lines would clutter the table."""
    logging.getLogger("biotech_ma_db.slow_query").addHandler(logging.NullHandler())
    logging.getLogger("biotech_ma_db.slow_query").propagate = False


async def profile(server: BenchServer, *, op_key: str, peer_key: str, quick: bool) -> None:
    """Run one operation for one peer under pyinstrument and print the call tree."""
    from pyinstrument import Profiler  # noqa: PLC0415 — a dev tool, only for this mode

    harness = Harness(server, quick=quick, repeats=1, only=[op_key], peers=[peer_key])
    await harness.seed()
    peer = harness.peers[0]
    await peer.start(server.url, server.dsn)
    op = harness.ops[0]
    try:
        await harness.warm(op, peer)
        await harness.reset(op)
        work = harness.workload(op, peer, "profile", harness.count(op))
        peer.enter()
        profiler = Profiler(interval=0.0002, async_mode="enabled")
        with profiler:
            await work()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    finally:
        peer.enter()
        await peer.close()
