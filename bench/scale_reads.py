"""The scale run's timed reads, in rounds that are re-done when the machine was busy.

The reads go through the library, in one session: ``SignalRepository.get_by_company`` for
a company's 90-day window (both ends given, newest first, up to the default 100) and the
filtered page, ``CompanyRepository.search(therapeutic_areas=["oncology"],
min_market_cap=X, limit=50)``, with ``session.expunge_all()`` after each read (as the
comparison run does).

The calls are split into rounds.  As in the comparison run, a round during which
unrelated processes used more than 0.25 CPU cores (``/proc/stat``, minus this process and
the servers) is re-done with the same picks: twice at once, then (the machine is shared,
and its neighbours' bursts last minutes) after a pause of 5 s each time, while the call's
waiting budget lasts (3 minutes for 1,000 calls per read, less for fewer).  The report
says how many rounds were re-done, how long was waited and how many kept rounds still
had such load.  Picks depend only on the seed and the round, so every call of
:func:`latencies` (100k, N, replica, primary) times the same reads.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from bench import data
from bench.harness import OTHER_LOAD_LIMIT
from bench.scale_data import WINDOW_END, WINDOW_START
from biotech_ma_db import CompanyRepository, Database, SignalRepository

ROUNDS = 5
PAGE = 50
RETRIES = 2  # re-runs of a loaded round at once, before pausing
PAUSE_S = 5.0  # before each re-run past the first RETRIES
WAIT_BUDGET_S = 180.0  # pauses per latencies() call of 1,000 calls per read, at most

Read = Callable[[Any], Awaitable[int]]


# How the server planned the timed statements in this session: a custom plan per call
# (partitions pruned while planning, paid on every call) or the cached generic plan
# (pruned at run time).  asyncpg prepares each statement, so they are listed here.
_PLANS_SQL = text(
    "SELECT CASE WHEN statement LIKE '%FROM signals%' THEN 'signals' ELSE 'companies' END,"
    " sum(generic_plans)::int, sum(custom_plans)::int FROM pg_prepared_statements"
    " WHERE (statement LIKE '%FROM signals%' OR statement LIKE '%FROM companies%')"
    " AND statement NOT LIKE '%pg_prepared_statements%' GROUP BY 1"
)


def _busy_seconds() -> float:
    """CPU seconds all processes of the machine have used (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class _Round:
    times: dict[str, list[float]] = field(default_factory=dict)
    rows: dict[str, list[int]] = field(default_factory=dict)
    other_cores: float = 0.0


def _reads(session: AsyncSession) -> dict[str, Read]:
    signals, companies = SignalRepository(session), CompanyRepository(session)

    async def by_company(company: int) -> int:
        found = await signals.get_by_company(company, start_date=WINDOW_START, end_date=WINDOW_END)
        return len(found)

    async def filtered(cap: Decimal) -> int:
        found = await companies.search(
            therapeutic_areas=["oncology"], min_market_cap=cap, limit=PAGE
        )
        return len(found)

    return {
        "get_by_company": by_company,
        "filtered_page": filtered,
        "get_by_company_busy": by_company,
    }


def _picks(
    number: int, size: int, companies: Sequence[int], caps: Sequence[Decimal], busy: Sequence[int]
) -> list[tuple[str, Any]]:
    # One stream per read, so the extra busy read does not shift the others' picks.
    by_company, page, bulk = (data.rng("scale-latency", number, read) for read in range(3))
    picks: list[tuple[str, Any]] = []
    for _ in range(size):
        picks += [
            ("get_by_company", by_company.choice(companies)),
            ("filtered_page", page.choice(caps)),
        ]
        if busy:
            picks.append(("get_by_company_busy", bulk.choice(busy)))
    return picks


async def _round(
    session: AsyncSession,
    reads: dict[str, Read],
    picks: list[tuple[str, Any]],
    server_cpu: Callable[[], float],
) -> _Round:
    result = _Round()
    busy0, cpu0, server0 = _busy_seconds(), time.process_time(), server_cpu()
    wall0 = time.perf_counter()
    for name, arg in picks:
        started = time.perf_counter()
        found = await reads[name](arg)
        result.times.setdefault(name, []).append(time.perf_counter() - started)
        result.rows.setdefault(name, []).append(found)
        session.expunge_all()
    wall = time.perf_counter() - wall0
    own = time.process_time() - cpu0 + server_cpu() - server0
    result.other_cores = max(0.0, _busy_seconds() - busy0 - own) / wall
    return result


def _stats(rounds: list[_Round], name: str) -> dict[str, float]:
    values = [t for r in rounds for t in r.times[name]]
    rows = [n for r in rounds for n in r.rows[name]]
    return {
        "median_ms": statistics.median(values) * 1000,
        "p95_ms": statistics.quantiles(values, n=20)[-1] * 1000,
        "rows_mean": statistics.fmean(rows),
    }


async def latencies(
    db: Database,
    companies: Sequence[int],
    caps: Sequence[Decimal],
    count: int,
    *,
    server_cpu: Callable[[], float],
    read_only: bool = False,
    busy: Sequence[int] = (),
) -> dict[str, Any]:
    """Median, p95 (ms) and mean rows of each read over ``count`` calls, after warm-up.

    Args:
        db: Where to read.
        companies: Companies for ``get_by_company``.
        caps: Market-cap floors for the filtered page.
        count: Calls per read (``ROUNDS`` rounds), after ``count // 10`` warm-up calls.
        server_cpu: CPU seconds the servers have used so far (subtracted from the load).
        read_only: Read in ``db.session(read_only=True)`` (a replica, when configured).
        busy: Companies for an extra ``get_by_company_busy`` read, if any.
    """
    size = max(1, count // ROUNDS)
    kept: list[_Round] = []
    redone = loaded = 0
    waited = 0.0
    budget = WAIT_BUDGET_S * min(1.0, count / 1_000)  # --quick waits less
    async with db.session(read_only=read_only) as session:
        standby = bool(await session.scalar(text("SELECT pg_is_in_recovery()")))
        reads = _reads(session)
        await _round(session, reads, _picks(-1, count // 10, companies, caps, busy), server_cpu)
        for number in range(ROUNDS):
            picks = _picks(number, size, companies, caps, busy)
            result = await _round(session, reads, picks, server_cpu)
            tries = 0
            while result.other_cores > OTHER_LOAD_LIMIT:
                if tries >= RETRIES:
                    if waited + PAUSE_S > budget:
                        break
                    await asyncio.sleep(PAUSE_S)  # let a neighbour's burst pass
                    waited += PAUSE_S
                tries += 1
                redone += 1
                result = await _round(session, reads, picks, server_cpu)
            loaded += result.other_cores > OTHER_LOAD_LIMIT
            kept.append(result)
        plans = (await session.execute(_PLANS_SQL)).all()
    return {
        "plans": {
            table: {"generic": generic, "custom": custom} for table, generic, custom in plans
        },
        "on_standby": standby,
        "rounds": ROUNDS,
        "rounds_redone": redone,
        "waited_s": waited,
        "rounds_loaded": loaded,
        "other_cores_mean": statistics.fmean(r.other_cores for r in kept),
        "reads": {name: _stats(kept, name) for name in kept[0].times},
    }
