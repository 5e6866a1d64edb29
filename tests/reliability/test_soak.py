"""T-SOAK: mixed load with random faults for a bounded time (capped at 60 s)."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import time
from collections import Counter

import pytest

from biotech_ma_db.errors import DatabaseError
from biotech_ma_db.unit_of_work import RetryEvent, UnitOfWork

from .harness import (
    FaultProxy,
    FaultServer,
    MakeDb,
    Report,
    error_class,
    rss_bytes,
    write_once,
    written,
)

RNG = random.Random(20260102)  # noqa: S311 — reproducible fault schedule
SOAK_SECONDS = min(60.0, float(os.environ.get("RELIABILITY_SOAK_SECONDS", "40")))
WRITERS, READERS = 6, 2


class TestSoak:
    """Eight workers of mixed units of work while resets, kills, black holes and a crash hit."""

    @pytest.mark.slow
    async def test_soak(
        self,
        make_db: MakeDb,
        proxy: FaultProxy,
        fault_server: FaultServer,
        fault_db: str,
        report: Report,
    ) -> None:
        admin = fault_server.admin()
        pool_size = 8
        db = make_db(
            pool_size=pool_size, pool_timeout=10.0, connect_timeout_s=2, command_timeout_s=3
        )
        name = db.settings.application_name
        stop = asyncio.Event()
        acked: list[str] = []
        attempted: list[str] = []
        reads = 0
        surfaced: Counter[str] = Counter()
        retried: Counter[str] = Counter()
        faults: Counter[str] = Counter()
        options = {"attempts": 30, "deadline": 20.0, "max_delay": 1.0}

        def on_retry(event: RetryEvent) -> None:
            retried[error_class(event.error)] += 1

        async def writer(number: int) -> None:
            sequence = 0
            while not stop.is_set():
                key = f"S{number}{sequence:05d}"
                sequence += 1
                attempted.append(key)
                try:
                    await db.run_in_transaction(
                        lambda uow, key=key: write_once(uow, key),
                        idempotent=True,
                        on_retry=on_retry,
                        **options,  # type: ignore[arg-type]
                    )
                except DatabaseError as exc:
                    surfaced[error_class(exc)] += 1
                else:
                    acked.append(key)

        async def read(uow: UnitOfWork) -> int:
            await uow.companies.list(limit=20, order_by="-created_at")
            return await uow.signals.count()

        async def reader() -> None:
            nonlocal reads
            while not stop.is_set():
                try:
                    await db.run_in_transaction(
                        read,
                        read_only=True,
                        idempotent=True,
                        on_retry=on_retry,
                        **options,  # type: ignore[arg-type]
                    )
                except DatabaseError as exc:
                    surfaced[error_class(exc)] += 1
                else:
                    reads += 1

        async def inject(kind: str) -> None:
            faults[kind] += 1
            if kind == "reset":
                proxy.reset_all()
            elif kind == "terminate":
                pids = [b.pid for b in await admin.backends(application_prefix=name)]
                await admin.terminate(pids)
            elif kind == "blackhole":
                proxy.set_mode("blackhole")
                await asyncio.sleep(1.0)
                proxy.set_mode("pass")
            elif kind == "crash":
                await asyncio.to_thread(fault_server.cluster.restart, "immediate")

        workers = [asyncio.create_task(writer(n)) for n in range(WRITERS)]
        workers += [asyncio.create_task(reader()) for _ in range(READERS)]
        started = time.monotonic()
        await asyncio.sleep(3.0)
        gc.collect()
        rss_start = rss_bytes()
        crash_at = started + SOAK_SECONDS / 2
        while time.monotonic() - started < SOAK_SECONDS - 5:
            await asyncio.sleep(RNG.uniform(2.0, 5.0))
            if faults["crash"] == 0 and time.monotonic() >= crash_at:
                await inject("crash")
            else:
                await inject(RNG.choice(["reset", "terminate", "blackhole"]))
        await asyncio.sleep(max(0.0, SOAK_SECONDS - (time.monotonic() - started)))
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), 60)
        duration = time.monotonic() - started
        gc.collect()
        rss_growth_mb = (rss_bytes() - rss_start) / 2**20

        counts = await written(admin, fault_db, attempted)
        lost = [key for key in acked if counts[key] == 0]
        dupes = [key for key, n in counts.items() if n > 1]
        backends_end = len(await admin.backends(application_prefix=name))
        assert not lost
        assert not dupes
        assert sum(surfaced.values()) == 0, surfaced
        assert rss_growth_mb < 10, rss_growth_mb
        assert backends_end <= pool_size
        throughput = (len(acked) + reads) / duration
        report(
            "T-SOAK",
            f"{duration:.0f} s, {sum(faults.values())} faults ({dict(faults)}), "
            f"{throughput:.0f} units/s, {len(acked)} writes acked, {len(lost)} lost, "
            f"{len(dupes)} dupes, {sum(retried.values())} retries, "
            f"{sum(surfaced.values())} surfaced, RSS +{rss_growth_mb:.1f} MB, "
            f"{backends_end} backends at the end (pool {pool_size})",
            seconds=round(duration, 1),
            faults=dict(faults),
            ops_acked=len(acked),
            reads=reads,
            ops_lost=len(lost),
            dupes=len(dupes),
            retries=dict(retried),
            errors_by_class=dict(surfaced),
            rss_growth_mb=round(rss_growth_mb, 2),
            backends_end=backends_end,
        )
