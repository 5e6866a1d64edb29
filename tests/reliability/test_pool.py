"""The pool: exhaustion, the leak detector, external DDL, and lifecycle (T-POOL-1..3, T-LIFE-1)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

from sqlalchemy import text

from biotech_ma_db import Database
from biotech_ma_db.errors import DatabaseError, PoolExhaustedError
from biotech_ma_db.unit_of_work import RetryEvent, UnitOfWork

from .harness import (
    Admin,
    FaultServer,
    MakeDb,
    Report,
    elapsed,
    error_class,
    orphan_backends,
    pool_leaks,
    wait_pool_idle,
)

SECRET = "s3cr3t-Pa55"


class TestPoolExhaustion:
    """T-POOL-1: a full pool answers PoolExhaustedError after pool_timeout, without the DSN."""

    async def test_third_unit_waits_pool_timeout_then_fails(
        self, fault_server: FaultServer, fault_db: str, report: Report
    ) -> None:
        # Same server and database, with a password in the URL (trust auth ignores it).
        url = fault_server.cluster.url(fault_db).replace("postgres@", f"postgres:{SECRET}@")
        db = Database.from_url(url, pool_size=2, max_overflow=0, pool_timeout=1.0)
        release = asyncio.Event()
        held = asyncio.Barrier(3)

        async def hold() -> None:
            async with db.unit_of_work(read_only=True) as uow:
                await uow.companies.count()
                await held.wait()
                await release.wait()

        holders = [asyncio.create_task(hold()) for _ in range(2)]
        await held.wait()
        started = time.monotonic()
        try:
            async with db.unit_of_work(read_only=True) as uow:
                await uow.companies.count()
        except PoolExhaustedError as exc:
            waited = elapsed(started)
            message = str(exc)
        else:
            raise AssertionError("the third unit of work got a connection")
        finally:
            release.set()
            await asyncio.gather(*holders)
            await db.dispose()
        assert 0.8 <= waited <= 1.2
        for secret in (SECRET, "postgres:", f":{fault_server.port}", "127.0.0.1"):
            assert secret not in message
        report(
            "T-POOL-1",
            f"3rd unit of work: PoolExhaustedError after {waited:.2f} s (pool_timeout 1 s), "
            "message carries no DSN",
            waited_s=waited,
            message=message,
        )


class TestLeakDetector:
    """T-POOL-2: the detectors the fixtures run after every test do catch a leak."""

    async def test_detector_reports_a_leaked_session(
        self, make_db: MakeDb, admin: Admin, report: Report
    ) -> None:
        db = make_db(pool_size=2)
        name = db.settings.application_name
        assert pool_leaks([db]) == []

        leaked = db.sessionmaker()  # a session used and never closed: the classic leak
        await leaked.execute(text("SELECT 1"))
        try:
            found = await wait_pool_idle([db], within=0.2)
            orphans = await orphan_backends(admin, application_prefix=name, within=0.2)
        finally:
            await leaked.close()
        assert len(found) == 1
        assert "1 connection(s) still checked out" in found[0]
        assert len(orphans) == 1

        # Once closed and disposed, both detectors are quiet again.
        await db.dispose()
        assert await wait_pool_idle([db]) == []
        assert await orphan_backends(admin, application_prefix=name) == []
        report(
            "T-POOL-2",
            "leaked session caught: pool detector 1 checked out, backend detector 1 "
            "server backend; 0 and 0 once closed",
            pool_detector=found,
            backend_detector=len(orphans),
        )


class TestExternalDdl:
    """T-POOL-3: DDL from another process invalidates cached statements; reads are retried."""

    async def test_invalidated_statements_are_retried_not_surfaced(
        self, make_db: MakeDb, admin: Admin, fault_db: str, report: Report
    ) -> None:
        pool_size = 5
        db = make_db(pool_size=pool_size)
        async with db.unit_of_work() as uow:
            await uow.companies.create(ticker="DDL", name="Schema Change Co", employee_count=7)
            await uow.commit()
        barrier = asyncio.Barrier(pool_size)

        async def read(uow: UnitOfWork) -> list[object]:
            rows = await uow.companies.list(limit=5)
            return [row.employee_count for row in rows]

        async def read_on_own_connection() -> list[object]:
            async def hold(uow: UnitOfWork) -> list[object]:
                result = await read(uow)
                await barrier.wait()
                return result

            return await db.run_in_transaction(hold, read_only=True, idempotent=True)

        await asyncio.gather(*(read_on_own_connection() for _ in range(pool_size)))
        await admin.execute(
            "ALTER TABLE companies ALTER COLUMN employee_count TYPE bigint", database=fault_db
        )

        retried: Counter[str] = Counter()
        surfaced: Counter[str] = Counter()

        def on_retry(event: RetryEvent) -> None:
            retried[error_class(event.error)] += 1

        async def read_after() -> list[object]:
            try:
                return await db.run_in_transaction(
                    read, read_only=True, idempotent=True, on_retry=on_retry
                )
            except DatabaseError as exc:
                surfaced[error_class(exc)] += 1
                return []

        results = await asyncio.gather(*(read_after() for _ in range(20)))
        assert sum(surfaced.values()) == 0, surfaced
        assert all(r == [7] for r in results)
        assert 0 < sum(retried.values()) <= pool_size
        report(
            "T-POOL-3",
            f"{sum(retried.values())} retried, 0 surfaced (ALTER COLUMN TYPE under a pool of "
            f"{pool_size} with cached statements)",
            retries=dict(retried),
            surfaced=dict(surfaced),
        )


class TestLifecycle:
    """T-LIFE-1: start and stop a Database 20 times, each in a fresh event loop."""

    async def test_twenty_event_loops(
        self, fault_server: FaultServer, fault_db: str, admin: Admin, report: Report
    ) -> None:
        url = fault_server.cluster.url(fault_db)
        name = f"rel-life-{fault_db}"
        problems: list[BaseException] = []

        async def one_life() -> None:
            async with Database.from_url(url, application_name=name, pool_size=2) as db:
                async with db.unit_of_work(read_only=True) as uow:
                    await uow.companies.count()
                assert db.pool_status().checked_out == 0

        def lives() -> None:
            for _ in range(20):
                try:
                    asyncio.run(one_life())
                except BaseException as exc:  # noqa: BLE001 — reported to the test below
                    problems.append(exc)

        thread = threading.Thread(target=lives, name="life-1")
        started = time.monotonic()
        thread.start()
        await asyncio.to_thread(thread.join)
        took = elapsed(started)
        left = await orphan_backends(admin, application_prefix=name)
        assert not problems, problems
        assert not left
        report(
            "T-LIFE-1",
            f"20 start/stop cycles in fresh event loops in {took:.1f} s: 0 errors, "
            "0 loop warnings, 0 server backends after aclose()",
            cycles=20,
            seconds=took,
            backends_after=len(left),
        )
