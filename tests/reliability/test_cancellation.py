"""Cancellation: asyncio ``task.cancel()``, anyio cancel scopes, cancels at awkward moments.

T-CAN-1..3 of RELIABILITY.md §5.3.  Every test here also runs under the suite's
``filterwarnings = error``: a connection garbage-collected while checked out (SQLAlchemy's
"non-checked-in connection" warning) fails it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from collections.abc import Awaitable, Callable

import anyio
import pytest
from sqlalchemy import event, text

from biotech_ma_db import Database
from biotech_ma_db.errors import DatabaseError

from .harness import (
    Admin,
    FaultProxy,
    MakeDb,
    Report,
    elapsed,
    wait_pool_idle,
    write_once,
)

RNG = random.Random(20260101)  # noqa: S311 — reproducible delays, not cryptography
ROUNDS, PER_ROUND = 10, 5  # 50 cancellations per test


async def _sleeper(db: Database, seconds: float = 5.0) -> None:
    async with db.unit_of_work(read_only=True) as uow:
        await uow.session.execute(text(f"SELECT pg_sleep({seconds})"))


async def _sleeping_backends(admin: Admin, db: Database) -> int:
    rows = await admin.backends(application_prefix=db.settings.application_name)
    return sum(1 for b in rows if b.state == "active" and "pg_sleep" in b.query)


async def _until_no_sleepers(admin: Admin, db: Database, within: float) -> float | None:
    """Seconds until no backend of ``db`` still runs ``pg_sleep`` (None: still after ``within``)."""
    started = time.monotonic()
    while True:
        if await _sleeping_backends(admin, db) == 0:
            return elapsed(started)
        if time.monotonic() - started > within:
            return None
        await asyncio.sleep(0.05)


def _count_connects(db: Database) -> list[int]:
    made = [0]

    def on_connect(*_: object) -> None:
        made[0] += 1

    event.listen(db.engine.sync_engine, "connect", on_connect)
    return made


async def _anyio_cancel_after(delay: float, work: Callable[[], Awaitable[None]]) -> None:
    """Run ``work`` in an anyio task group and cancel the group's scope after ``delay``."""

    async def run() -> None:
        await work()

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        await anyio.sleep(delay)
        group.cancel_scope.cancel()


class TestAsyncioCancel:
    """T-CAN-1: ``task.cancel()`` mid-query leaves no leak and no orphaned server query."""

    async def test_cancel_mid_query(self, make_db: MakeDb, admin: Admin, report: Report) -> None:
        db = make_db(pool_size=PER_ROUND)
        connects = _count_connects(db)
        cancelled = 0
        peak = 0
        for _ in range(ROUNDS):
            tasks = [asyncio.create_task(_sleeper(db)) for _ in range(PER_ROUND)]
            loop = asyncio.get_running_loop()
            for task in tasks:
                loop.call_later(RNG.uniform(0.01, 0.2), task.cancel)
            results = await asyncio.gather(*tasks, return_exceptions=True)
            cancelled += sum(isinstance(r, asyncio.CancelledError) for r in results)
            peak = max(peak, await _sleeping_backends(admin, db))
        gc.collect()
        leaks = await wait_pool_idle([db], within=1.0)
        orphans_gone_after = await _until_no_sleepers(admin, db, within=1.0)
        backends = len(await admin.backends(application_prefix=db.settings.application_name))
        async with db.unit_of_work(read_only=True) as uow:
            assert await uow.companies.count() == 0
        assert cancelled == ROUNDS * PER_ROUND
        assert not leaks
        assert orphans_gone_after is not None
        assert backends <= PER_ROUND
        report(
            "T-CAN-1",
            f"{cancelled} cancels, 0 leaks, peak {peak} orphans, 0 after "
            f"{orphans_gone_after:.2f} s, {connects[0]} connections opened for pool size "
            f"{PER_ROUND}",
            cancels=cancelled,
            peak_orphans=peak,
            orphans_gone_s=orphans_gone_after,
            connections_opened=connects[0],
            backends_after=backends,
        )


class TestAnyioCancelScope:
    """T-CAN-2: anyio cancel scopes; client_connection_check_interval reaps the orphans."""

    @pytest.mark.slow
    async def test_cancel_scope_mid_query(
        self, make_db: MakeDb, admin: Admin, report: Report
    ) -> None:
        db = make_db(pool_size=PER_ROUND)  # library default client_connection_check_interval
        assert db.settings.client_connection_check_interval_ms is not None
        cancels = 0
        peak = 0
        for _ in range(ROUNDS):
            await asyncio.gather(
                *(
                    _anyio_cancel_after(RNG.uniform(0.01, 0.2), lambda: _sleeper(db))
                    for _ in range(PER_ROUND)
                )
            )
            cancels += PER_ROUND
            peak = max(peak, await _sleeping_backends(admin, db))
        gc.collect()
        leaks = await wait_pool_idle([db], within=1.0)
        gone_after = await _until_no_sleepers(admin, db, within=2.0)
        async with db.unit_of_work(read_only=True) as uow:
            assert await uow.companies.count() == 0

        # Baseline: the same without the check interval leaves the server queries running.
        baseline_db = make_db(pool_size=PER_ROUND, client_connection_check_interval_ms=None)
        for _ in range(2):
            await asyncio.gather(
                *(
                    _anyio_cancel_after(RNG.uniform(0.01, 0.2), lambda: _sleeper(baseline_db, 3.0))
                    for _ in range(PER_ROUND)
                )
            )
        await asyncio.sleep(1.0)
        baseline_after_1s = await _sleeping_backends(admin, baseline_db)
        await admin.terminate(
            b.pid
            for b in await admin.backends(application_prefix=baseline_db.settings.application_name)
            if b.state == "active"
        )

        assert not leaks
        assert gone_after is not None
        assert gone_after <= 1.5, gone_after
        report(
            "T-CAN-2",
            f"{cancels} anyio cancels, 0 leaks, peak {peak} orphans, 0 orphans after "
            f"{gone_after:.2f} s (client_connection_check_interval "
            f"{db.settings.client_connection_check_interval_ms} ms); baseline without it: "
            f"{baseline_after_1s} of {2 * PER_ROUND} still running after 1 s",
            cancels=cancels,
            peak_orphans=peak,
            orphans_gone_s=gone_after,
            baseline_orphans_after_1s=baseline_after_1s,
        )


class TestCancelAtAwkwardMoments:
    """T-CAN-3: cancelled during COMMIT and during pre-ping, under asyncio and anyio."""

    @pytest.mark.slow
    async def test_cancel_during_commit_and_pre_ping(
        self, make_db: MakeDb, proxy: FaultProxy, report: Report
    ) -> None:
        db = make_db(pool_size=3, command_timeout_s=5)
        cancels = {"commit": 0, "pre-ping": 0}
        sequence = 0

        async def in_commit() -> None:
            nonlocal sequence
            sequence += 1
            async with db.unit_of_work() as uow:
                await write_once(uow, f"K{sequence:05d}")
                proxy.set_mode("blackhole")
                await uow.commit()

        async def in_pre_ping() -> None:
            async with db.unit_of_work(read_only=True) as uow:
                await uow.companies.count()

        async def warm() -> None:
            async with db.unit_of_work(read_only=True) as uow:
                await uow.companies.count()

        for flavour in ("asyncio", "anyio"):
            for moment, work in (("commit", in_commit), ("pre-ping", in_pre_ping)):
                for _ in range(5):
                    await warm()
                    if moment == "pre-ping":
                        proxy.set_mode("blackhole")
                    # The network comes back shortly after the cancel, as it usually does.
                    asyncio.get_running_loop().call_later(0.15, proxy.set_mode, "pass")
                    if flavour == "asyncio":
                        task = asyncio.create_task(work())
                        await asyncio.sleep(0.05)
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, DatabaseError):
                            await task
                    else:
                        with contextlib.suppress(DatabaseError):
                            await _anyio_cancel_after(0.05, work)
                    proxy.set_mode("pass")
                    cancels[moment] += 1
        gc.collect()
        leaks = await wait_pool_idle([db], within=2.0)
        async with db.unit_of_work(read_only=True) as uow:
            await uow.companies.count()
        assert not leaks
        report(
            "T-CAN-3",
            f"{cancels['commit']} cancels in COMMIT + {cancels['pre-ping']} in pre-ping "
            "(asyncio and anyio): 0 checked-out leaks after gc, 0 SAWarnings, pool usable",
            cancels=cancels,
            leaks=len(leaks),
        )
