"""Server crashes and a connection cut exactly at COMMIT (T-CRASH-1, T-CRASH-2)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from biotech_ma_db.errors import CommitOutcomeUnknownError, DatabaseError
from biotech_ma_db.unit_of_work import RetryEvent

from .harness import (
    Admin,
    FaultProxy,
    FaultServer,
    MakeDb,
    Report,
    elapsed,
    error_class,
    write_once,
    write_signal,
    written,
)


class TestCrashRestart:
    """T-CRASH-1: immediate restarts under 5 writers lose no acknowledged commit."""

    @pytest.mark.slow
    async def test_acknowledged_writes_survive_crashes(
        self,
        make_db: MakeDb,
        fault_server: FaultServer,
        fault_db: str,
        admin: Admin,
        report: Report,
    ) -> None:
        assert await admin.fetchval("SHOW synchronous_commit") == "on"
        assert await admin.fetchval("SHOW fsync") == "on"
        db = make_db(via_proxy=False, pool_size=5, connect_timeout_s=2, command_timeout_s=10)
        stop = asyncio.Event()
        acked: list[str] = []
        attempted: list[str] = []
        ack_times: list[float] = []
        surfaced: Counter[str] = Counter()
        retried: Counter[str] = Counter()

        def on_retry(event: RetryEvent) -> None:
            retried[error_class(event.error)] += 1

        async def writer(number: int) -> None:
            sequence = 0
            while not stop.is_set():
                key = f"C{number}{sequence:05d}"
                sequence += 1
                attempted.append(key)
                try:
                    await db.run_in_transaction(
                        lambda uow, key=key: write_once(uow, key),
                        idempotent=True,
                        attempts=40,
                        deadline=20,
                        on_retry=on_retry,
                    )
                except DatabaseError as exc:
                    surfaced[error_class(exc)] += 1
                else:
                    acked.append(key)
                    ack_times.append(time.monotonic())

        crashes = 3
        started = time.monotonic()
        writers = [asyncio.create_task(writer(n)) for n in range(5)]
        ready_at: list[float] = []
        for _ in range(crashes):
            await asyncio.sleep(1.0)
            await asyncio.to_thread(fault_server.cluster.restart, "immediate")
            ready_at.append(time.monotonic())
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*writers), 60)
        duration = elapsed(started)

        recoveries = [
            min((t for t in ack_times if t >= ready), default=float("inf")) - ready
            for ready in ready_at
        ]
        counts = await written(admin, fault_db, attempted)
        lost = [key for key in acked if counts[key] == 0]
        dupes = [key for key, n in counts.items() if n > 1]
        assert not lost
        assert not dupes
        assert sum(surfaced.values()) == 0, surfaced
        assert max(recoveries) < 2.0, recoveries
        report(
            "T-CRASH-1",
            f"{crashes} crashes survived, {len(acked)} acked, {len(lost)} lost, "
            f"{len(dupes)} dupes, {sum(retried.values())} retries, "
            f"max recovery {max(recoveries):.2f} s",
            faults=crashes,
            ops_acked=len(acked),
            ops_lost=len(lost),
            dupes=len(dupes),
            retries=dict(retried),
            errors_by_class=dict(surfaced),
            max_recovery_s=round(max(recoveries), 3),
            seconds=duration,
        )

    @pytest.mark.slow
    async def test_negative_control_asynchronous_commit_loses_acked_writes(
        self,
        make_db: MakeDb,
        fault_server: FaultServer,
        fault_db: str,
        admin: Admin,
        report: Report,
    ) -> None:
        """With ``synchronous_commit=off`` a crash may drop commits the client saw succeed."""
        await admin.set_system(synchronous_commit="off")
        try:
            db = make_db(via_proxy=False, pool_size=5, command_timeout_s=10)
            stop = asyncio.Event()
            acked: list[str] = []

            async def writer(number: int) -> None:
                sequence = 0
                while not stop.is_set():
                    key = f"A{number}{sequence:05d}"
                    sequence += 1
                    try:
                        async with db.unit_of_work() as uow:
                            await write_once(uow, key)
                            await uow.commit()
                    except DatabaseError:
                        return
                    acked.append(key)

            writers = [asyncio.create_task(writer(n)) for n in range(5)]
            await asyncio.sleep(1.5)
            fault_server.cluster.stop("immediate")  # blocks the loop: no ack after the crash
            stop.set()
            await asyncio.wait_for(asyncio.gather(*writers), 30)
        finally:
            if not fault_server.cluster.running():
                fault_server.cluster.start()
            await admin.wait_ready()
            await admin.set_system(synchronous_commit=None)
        await db.dispose()
        counts = await written(admin, fault_db, acked)
        lost = [key for key in acked if counts[key] == 0]
        report(
            "T-CRASH-1b",
            f"negative control, synchronous_commit=off: {len(lost)} of {len(acked)} acked "
            "writes lost in one crash",
            ops_acked=len(acked),
            ops_lost=len(lost),
        )


class TestCommitCut:
    """T-CRASH-2: a connection lost while COMMIT is in flight is reported as such."""

    @pytest.mark.slow
    async def test_commit_outcome_unknown_and_idempotent_retry(
        self,
        make_db: MakeDb,
        proxy: FaultProxy,
        admin: Admin,
        fault_db: str,
        report: Report,
    ) -> None:
        db = make_db(pool_size=2)
        unknown = 0
        landed = 0
        keys: list[str] = []
        retried: Counter[str] = Counter()

        def on_retry(event: RetryEvent) -> None:
            retried[error_class(event.error)] += 1

        for number in range(10):
            # Not idempotent: the library must not guess; the caller learns "unknown".
            key = f"U{number:05d}"
            keys.append(key)
            proxy.cut_commits(1, wait_for_reply=number % 2 == 0)
            with pytest.raises(CommitOutcomeUnknownError) as caught:
                await db.run_in_transaction(lambda uow, key=key: write_signal(uow, key))
            assert caught.value.__cause__ is not None
            unknown += 1
            landed += (await written(admin, fault_db, [key]))[key]
            # The caller resolves it by re-running the idempotent version with the same key.
            await db.run_in_transaction(lambda uow, key=key: write_once(uow, key), idempotent=True)

        for number in range(10):
            # Idempotent: re-run automatically after the cut.
            key = f"I{number:05d}"
            keys.append(key)
            proxy.cut_commits(1, wait_for_reply=number % 2 == 0)
            await db.run_in_transaction(
                lambda uow, key=key: write_once(uow, key), idempotent=True, on_retry=on_retry
            )

        counts = await written(admin, fault_db, keys)
        lost = [key for key, n in counts.items() if n == 0]
        dupes = [key for key, n in counts.items() if n > 1]
        assert proxy.commit_cuts == 20
        assert unknown == 10
        assert sum(n for k, n in retried.items() if k.startswith("CommitOutcomeUnknown")) == 10
        assert not lost
        assert not dupes
        report(
            "T-CRASH-2",
            f"{proxy.commit_cuts} commit-time cuts: {unknown}/10 CommitOutcomeUnknownError "
            f"({landed} had landed), 10/10 idempotent units re-run, "
            f"{len(dupes)} dupes, {len(lost)} lost",
            faults=proxy.commit_cuts,
            outcome_unknown=unknown,
            landed_before_cut=landed,
            retries=dict(retried),
            dupes=len(dupes),
            ops_lost=len(lost),
        )
