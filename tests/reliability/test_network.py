"""Connection loss: killed backends, resets, black holes, refused connects, frozen backends.

T-NET-1..4 and T-HANG-1 of RELIABILITY.md §5.3.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from sqlalchemy import text

from biotech_ma_db import CompanyRepository, Database
from biotech_ma_db.errors import (
    DatabaseError,
    DatabaseUnavailableError,
    QueryTimeoutError,
)
from biotech_ma_db.unit_of_work import RetryEvent, UnitOfWork

from .harness import (
    Admin,
    FaultProxy,
    MakeDb,
    Report,
    elapsed,
    error_class,
    frozen,
    write_once,
    written,
)


async def _count(db: Database) -> int:
    async with db.unit_of_work(read_only=True) as uow:
        return await uow.companies.count()


async def _backend_pid(uow: UnitOfWork) -> int:
    return int((await uow.session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _fill_pool(db: Database, size: int) -> list[int]:
    """Check out ``size`` connections at once (so the pool holds that many); their pids."""
    barrier = asyncio.Barrier(size)

    async def hold() -> int:
        async with db.unit_of_work(read_only=True) as uow:
            pid = await _backend_pid(uow)
            await barrier.wait()
            return pid

    return list(await asyncio.gather(*(hold() for _ in range(size))))


async def _wait_gone(admin: Admin, pids: list[int]) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alive = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
        )
        if alive == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"backends {pids} survived pg_terminate_backend")


class TestStalePool:
    """T-NET-1: pooled connections whose backends were killed are replaced by pre-ping."""

    async def test_killed_backends_cost_no_caller_an_error(
        self, make_db: MakeDb, admin: Admin, report: Report
    ) -> None:
        failed: dict[bool, int] = {}
        for pre_ping in (True, False):
            db = make_db(pool_pre_ping=pre_ping, pool_size=5)
            pids = await _fill_pool(db, 5)
            assert len(set(pids)) == 5
            assert await admin.terminate(pids) == 5
            await _wait_gone(admin, pids)
            failed[pre_ping] = 0
            for _ in range(20):
                try:
                    await _count(db)
                except DatabaseError:
                    failed[pre_ping] += 1
        assert failed[True] == 0
        report(
            "T-NET-1",
            f"5 backends killed, {failed[True]}/20 failed with pre_ping "
            f"(baseline without pre_ping: {failed[False]}/20)",
            killed=5,
            ops=20,
            failed=failed[True],
            failed_without_pre_ping=failed[False],
        )


class TestStalePoolBorrowedReads:
    """T-NET-1 for the fast read path: no ping on checkout, one retry on a dead connection."""

    async def test_killed_backends_cost_no_reader_an_error(
        self, make_db: MakeDb, admin: Admin, report: Report
    ) -> None:
        db = make_db(pool_size=5)
        async with db.unit_of_work() as uow:
            company = await uow.companies.create(ticker="STALE", name="Stale Pool Bio")
            await uow.commit()
        pids = await _fill_pool(db, 5)
        assert await admin.terminate(pids) == 5
        await _wait_gone(admin, pids)
        failed = 0
        for _ in range(20):
            try:
                async with db.session() as session:
                    found = await CompanyRepository(session).get_by_ticker("STALE")
                    assert found is not None
                    assert found.id == company.id
            except DatabaseError:
                failed += 1
        assert failed == 0
        assert db.pool_status().checked_out == 0
        report(
            "T-NET-1",
            f"fast reads: 5 backends killed, {failed}/20 reads failed (ping deferred to the read)",
            killed=5,
            ops=20,
            failed=failed,
        )


class TestResetsUnderLoad:
    """T-NET-2: connection resets under load are retried; every acknowledged write lands once."""

    @pytest.mark.slow
    async def test_resets_lose_and_duplicate_nothing(
        self,
        make_db: MakeDb,
        proxy: FaultProxy,
        admin: Admin,
        fault_db: str,
        report: Report,
    ) -> None:
        db = make_db(pool_size=5, connect_timeout_s=2, command_timeout_s=5)
        stop = asyncio.Event()
        acked: list[str] = []
        attempted: list[str] = []
        surfaced: Counter[str] = Counter()
        retried: Counter[str] = Counter()

        def on_retry(event: RetryEvent) -> None:
            retried[error_class(event.error)] += 1

        async def worker(number: int) -> None:
            sequence = 0
            while not stop.is_set():
                key = f"N{number}{sequence:05d}"
                sequence += 1
                attempted.append(key)
                try:
                    await db.run_in_transaction(
                        lambda uow, key=key: write_once(uow, key),
                        idempotent=True,
                        attempts=10,  # a reset every 250 ms can hit 4 attempts in a row
                        deadline=10,
                        on_retry=on_retry,
                    )
                except DatabaseError as exc:
                    surfaced[error_class(exc)] += 1
                else:
                    acked.append(key)

        started = time.monotonic()
        workers = [asyncio.create_task(worker(n)) for n in range(5)]
        resets = 0
        for _ in range(20):
            await asyncio.sleep(0.25)
            resets += 1
            proxy.reset_all()
        await asyncio.sleep(0.25)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), 30)
        duration = elapsed(started)

        counts = await written(admin, fault_db, attempted)
        lost = [key for key in acked if counts[key] == 0]
        dupes = [key for key, n in counts.items() if n > 1]
        healthy = 0
        for _ in range(10):
            await _count(db)
            healthy += 1
        assert not lost
        assert not dupes
        assert sum(surfaced.values()) == 0, surfaced
        assert sum(retried.values()) > 0
        report(
            "T-NET-2",
            f"{resets} resets, {len(acked)} acked, {len(lost)} lost, {len(dupes)} dupes, "
            f"{sum(retried.values())} retries, {sum(surfaced.values())} surfaced",
            faults=resets,
            ops_acked=len(acked),
            ops_lost=len(lost),
            dupes=len(dupes),
            retries=dict(retried),
            errors_by_class=dict(surfaced),
            healthy_after=healthy,
            seconds=duration,
        )


class TestBlackHole:
    """T-NET-3: a black-holed connection ends every call in a typed timeout within the bound."""

    @pytest.mark.slow
    async def test_calls_fail_fast_and_the_pool_recovers(
        self, make_db: MakeDb, proxy: FaultProxy, report: Report
    ) -> None:
        command_timeout, connect_timeout = 1.0, 2.0
        bound = command_timeout + connect_timeout + 0.5
        db = make_db(
            pool_size=5, command_timeout_s=command_timeout, connect_timeout_s=connect_timeout
        )
        await _fill_pool(db, 4)  # 4 pooled connections: 2 busy + 2 idle when the hole opens

        outcomes: list[tuple[str, str, float]] = []

        async def call(kind: str, sql: str) -> None:
            started = time.monotonic()
            try:
                async with db.unit_of_work(read_only=True) as uow:
                    await uow.session.execute(text(sql))
            except (QueryTimeoutError, DatabaseUnavailableError) as exc:
                outcomes.append((kind, error_class(exc), elapsed(started)))
            else:
                outcomes.append((kind, "ok", elapsed(started)))

        started = time.monotonic()
        mid_query = [
            asyncio.create_task(call("mid-query", "SELECT pg_sleep(0.3)")) for _ in range(2)
        ]
        await asyncio.sleep(0.1)
        proxy.set_mode("blackhole")
        # 2 idle pooled connections (pre-ping hangs) and 1 new connection (connect hangs).
        checkout = [asyncio.create_task(call("checkout", "SELECT 1")) for _ in range(3)]
        await asyncio.wait_for(asyncio.gather(*mid_query, *checkout), bound + 2)
        all_done = elapsed(started)
        await asyncio.sleep(max(0.0, 5.0 - (time.monotonic() - started)))
        proxy.set_mode("pass")

        recovered = 0
        for _ in range(10):
            await _count(db)
            recovered += 1

        await _fill_pool(db, 3)
        proxy.set_mode("blackhole")
        dispose_started = time.monotonic()
        await db.dispose()
        dispose_seconds = elapsed(dispose_started)
        proxy.set_mode("pass")

        stalls = [seconds for _, _, seconds in outcomes]
        assert all(result != "ok" for _, result, _ in outcomes), outcomes
        assert max(stalls) <= bound, outcomes
        assert recovered == 10
        assert dispose_seconds < 5
        report(
            "T-NET-3",
            f"max stall {max(stalls):.1f} s (bound {bound:.1f} s), 0 hung tasks, "
            f"{recovered}/10 ok after heal, dispose while black-holed {dispose_seconds:.1f} s",
            max_stall_s=max(stalls),
            bound_s=bound,
            outcomes=outcomes,
            all_done_s=all_done,
            recovered=recovered,
            dispose_s=dispose_seconds,
        )


class TestRefusedConnects:
    """T-NET-4: refused connects are transient; they surface only when the deadline passes."""

    async def test_refusal_is_retried_until_the_deadline(
        self, make_db: MakeDb, proxy: FaultProxy, report: Report
    ) -> None:
        db = make_db(pool_size=2)
        await _count(db)
        await db.dispose()  # no pooled connection left: every attempt must connect
        waits: list[float] = []

        def on_retry(event: RetryEvent) -> None:
            assert isinstance(event.error, DatabaseUnavailableError)
            waits.append(event.delay)

        async def read(uow: UnitOfWork) -> int:
            return await uow.companies.count()

        proxy.set_mode("refuse")
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError) as caught:
            await db.run_in_transaction(read, attempts=1000, deadline=1.0, on_retry=on_retry)
        gave_up_after = elapsed(started)
        attempts_until_deadline = len(waits) + 1
        assert isinstance(caught.value.__cause__, ConnectionRefusedError | DatabaseUnavailableError)
        assert 0.8 <= gave_up_after <= 1.5

        waits.clear()
        proxy.set_mode("refuse")
        loop = asyncio.get_running_loop()
        loop.call_later(2.0, proxy.set_mode, "pass")
        started = time.monotonic()
        assert await db.run_in_transaction(read, attempts=50, deadline=10, on_retry=on_retry) == 0
        total_wait = elapsed(started)
        assert 2.0 <= total_wait < 6.0
        report(
            "T-NET-4",
            f"refused for 2 s: {len(waits) + 1} attempts, {total_wait:.1f} s total wait, then ok; "
            f"with a 1 s deadline: DatabaseUnavailableError after {gave_up_after:.1f} s "
            f"({attempts_until_deadline} attempts)",
            attempts=len(waits) + 1,
            total_wait_s=total_wait,
            deadline_attempts=attempts_until_deadline,
            deadline_gave_up_s=gave_up_after,
        )


class TestFrozenBackend:
    """T-HANG-1: a SIGSTOPped backend ends in QueryTimeoutError; later checkouts are fine."""

    async def test_frozen_idle_and_busy_backends(
        self, make_db: MakeDb, admin: Admin, report: Report
    ) -> None:
        command_timeout = 1.0
        db = make_db(pool_size=2, command_timeout_s=command_timeout)
        stalls: dict[str, float] = {}
        errors: dict[str, str] = {}

        # (a) the backend of an idle pooled connection: pre-ping hangs.
        async with db.unit_of_work(read_only=True) as uow:
            idle_pid = await _backend_pid(uow)
        with frozen(idle_pid):
            started = time.monotonic()
            with pytest.raises(QueryTimeoutError) as caught:
                await _count(db)
            stalls["idle"] = elapsed(started)
            errors["idle"] = error_class(caught.value)
            # The hung connection was thrown away: a new one works while it is still frozen.
            async with db.unit_of_work(read_only=True) as uow:
                assert await _backend_pid(uow) != idle_pid

        # (b) the backend of a connection in the middle of a query.
        busy_pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def busy() -> None:
            async with db.unit_of_work(read_only=True) as uow:
                busy_pid.set_result(await _backend_pid(uow))
                await uow.session.execute(text("SELECT pg_sleep(0.5)"))

        task = asyncio.create_task(busy())
        pid = await busy_pid
        await asyncio.sleep(0.05)
        with frozen(pid):
            started = time.monotonic()
            with pytest.raises(QueryTimeoutError) as caught_busy:
                await task
            stalls["busy"] = elapsed(started)
            errors["busy"] = error_class(caught_busy.value)
            later = 0
            for _ in range(5):
                async with db.unit_of_work(read_only=True) as uow:
                    # handle_error marked the timed-out connection as a disconnect: the pool
                    # replaced it instead of handing the frozen backend out again.
                    assert await _backend_pid(uow) != pid
                    await uow.companies.count()
                later += 1

        assert max(stalls.values()) <= command_timeout * 2 + 0.5
        assert later == 5
        report(
            "T-HANG-1",
            f"stall idle {stalls['idle']:.1f} s / mid-query {stalls['busy']:.1f} s "
            f"(bound {command_timeout * 2:.1f} s), 1 error each, then {later}/5 ok",
            stalls_s=stalls,
            errors_by_class=errors,
            ok_after=later,
        )
