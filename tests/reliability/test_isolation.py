"""Concurrency anomalies through the repositories: lost updates, write skew, deadlocks.

T-ISO-1..3 of RELIABILITY.md §5.3.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text

from biotech_ma_db import Database
from biotech_ma_db.errors import ConcurrencyError, DatabaseError
from biotech_ma_db.models import Alert
from biotech_ma_db.unit_of_work import RetryEvent, UnitOfWork

from .harness import Admin, MakeDb, Report, error_class, fast_commits, percentile

TASKS, INCREMENTS = 20, 25


async def _setup(db: Database) -> tuple[int, int, int]:
    """A client, one of its alerts, and a company with ``employee_count = 0``."""
    async with db.unit_of_work(actor="setup") as uow:
        client, _ = await uow.clients.create_with_api_key("Isolation Client")
        alert = await uow.alerts.create(client_id=client.id, name="hot", alert_type="signal")
        company = await uow.companies.create(ticker="HOT", name="Hot Row", employee_count=0)
        await uow.commit()
    return client.id, alert.id, company.id


async def _hammer(
    db: Database,
    increment: Callable[[UnitOfWork], Awaitable[object]],
    **options: object,
) -> tuple[int, Counter[str], Counter[str], list[float]]:
    """TASKS x INCREMENTS units of work; returns (committed, retries, surfaced, latencies)."""
    retries: Counter[str] = Counter()
    surfaced: Counter[str] = Counter()
    latencies: list[float] = []
    committed = 0

    def on_retry(event: RetryEvent) -> None:
        retries[error_class(event.error)] += 1

    async def task() -> None:
        nonlocal committed
        for _ in range(INCREMENTS):
            started = time.monotonic()
            try:
                await db.run_in_transaction(increment, on_retry=on_retry, **options)  # type: ignore[arg-type]
            except DatabaseError as exc:
                surfaced[error_class(exc)] += 1
            else:
                committed += 1
                latencies.append(time.monotonic() - started)

    await asyncio.gather(*(task() for _ in range(TASKS)))
    return committed, retries, surfaced, latencies


class TestLostUpdate:
    """T-ISO-1: 500 concurrent increments of one row lose nothing with any library strategy."""

    @pytest.mark.slow
    async def test_no_lost_increments(
        self, make_db: MakeDb, admin: Admin, fault_db: str, report: Report
    ) -> None:
        await fast_commits(admin, fault_db)
        db = make_db(pool_size=5, pool_timeout=30.0)
        _, alert_id, company_id = await _setup(db)
        figures: dict[str, dict[str, object]] = {}

        # 1. Atomic UPDATE ... SET n = n + 1 (AlertRepository.mark_triggered).
        async def atomic(uow: UnitOfWork) -> object:
            return await uow.alerts.mark_triggered(alert_id)

        # 2. Read-modify-write through the repository, SERIALIZABLE, retried on 40001.
        async def read_modify_write(uow: UnitOfWork) -> object:
            company = await uow.companies.get_or_raise(company_id)
            return await uow.companies.update(
                company_id, employee_count=(company.employee_count or 0) + 1
            )

        strategies: list[tuple[str, Callable[[UnitOfWork], Awaitable[object]], dict[str, object]]]
        strategies = [
            ("atomic", atomic, {}),
            (
                "serializable+retry",
                read_modify_write,
                {"isolation_level": "SERIALIZABLE", "attempts": 1000, "deadline": 120.0},
            ),
            (
                "version+retry",
                read_modify_write,
                {"retry_on": (ConcurrencyError,), "attempts": 1000, "deadline": 120.0},
            ),
        ]
        for name, increment, options in strategies:
            async with db.unit_of_work() as uow:
                await uow.session.execute(
                    text("UPDATE companies SET employee_count = 0 WHERE id = :id"),
                    {"id": company_id},
                )
                await uow.commit()
            started = time.monotonic()
            committed, retries, surfaced, latencies = await _hammer(db, increment, **options)
            async with db.unit_of_work(read_only=True) as uow:
                if name == "atomic":
                    final = (await uow.alerts.get_or_raise(alert_id)).trigger_count
                else:
                    final = (await uow.companies.get_or_raise(company_id)).employee_count or 0
            figures[name] = {
                "committed": committed,
                "final": final,
                "lost": committed - final,
                "retries": dict(retries),
                "surfaced": dict(surfaced),
                "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
                "seconds": round(time.monotonic() - started, 2),
            }
            assert committed == TASKS * INCREMENTS, figures[name]
            assert final == committed, figures[name]

        # Known-bad baseline: read, then write the computed value, under READ COMMITTED
        # (raw SQL: the ORM's version check would turn it into the third strategy).
        async def blind_write(uow: UnitOfWork) -> object:
            current = (
                await uow.session.execute(
                    text("SELECT employee_count FROM companies WHERE id = :id"), {"id": company_id}
                )
            ).scalar_one()
            await uow.session.execute(
                text("UPDATE companies SET employee_count = :v WHERE id = :id"),
                {"v": current + 1, "id": company_id},
            )
            return None

        async with db.unit_of_work() as uow:
            await uow.session.execute(
                text("UPDATE companies SET employee_count = 0 WHERE id = :id"), {"id": company_id}
            )
            await uow.commit()
        committed, _, _, _ = await _hammer(db, blind_write)
        async with db.unit_of_work(read_only=True) as uow:
            baseline_final = (await uow.companies.get_or_raise(company_id)).employee_count or 0

        parts = [
            f"{name}: {f['committed']} increments, {f['lost']} lost, "
            f"{sum(f['retries'].values())} retries, p99 {f['p99_ms']} ms"  # type: ignore[union-attr]
            for name, f in figures.items()
        ]
        report(
            "T-ISO-1",
            "; ".join(parts) + f" (baseline RC read-then-write: {committed - baseline_final} "
            f"of {committed} lost)",
            strategies=figures,
            baseline_lost=committed - baseline_final,
        )


class TestWriteSkew:
    """T-ISO-2: "at most one active alert per deal" holds under SERIALIZABLE + retry."""

    @pytest.mark.slow
    async def test_check_then_insert_races(
        self, make_db: MakeDb, admin: Admin, fault_db: str, report: Report
    ) -> None:
        await fast_commits(admin, fault_db)
        db = make_db(pool_size=4)
        client_id, _, _ = await _setup(db)

        async def race(deal: str, isolation: str | None) -> Counter[str]:
            barrier = asyncio.Barrier(2)
            retries: Counter[str] = Counter()

            def on_retry(event: RetryEvent) -> None:
                retries[error_class(event.error)] += 1

            async def add_if_none(uow: UnitOfWork, first: list[bool]) -> None:
                active = await uow.alerts.count(Alert.name == deal, Alert.is_active.is_(True))
                if first[0]:
                    first[0] = False
                    await barrier.wait()  # both have read before either writes
                if active < 1:
                    await uow.alerts.create(client_id=client_id, name=deal, alert_type="signal")

            await asyncio.gather(
                *(
                    db.run_in_transaction(
                        lambda uow, first=[True]: add_if_none(uow, first),
                        isolation_level=isolation,  # type: ignore[arg-type]
                        attempts=10,
                        on_retry=on_retry,
                    )
                    for _ in range(2)
                )
            )
            return retries

        async def violations(prefix: str) -> int:
            async with db.unit_of_work(read_only=True) as uow:
                rows = await uow.session.execute(
                    text(
                        "SELECT count(*) FROM (SELECT name FROM alerts WHERE name LIKE :p "
                        "AND is_active GROUP BY name HAVING count(*) > 1) AS dup"
                    ),
                    {"p": prefix + "%"},
                )
                return int(rows.scalar_one())

        runs = 200
        retries: Counter[str] = Counter()
        for number in range(runs):
            retries += await race(f"deal-s-{number}", "SERIALIZABLE")
        serializable_violations = await violations("deal-s-")

        baseline_runs = 30
        for number in range(baseline_runs):
            await race(f"deal-rc-{number}", None)
        baseline_violations = await violations("deal-rc-")

        assert serializable_violations == 0
        report(
            "T-ISO-2",
            f"{runs} races, {serializable_violations} violations under SERIALIZABLE+retry "
            f"({sum(retries.values())} retries); baseline READ COMMITTED: "
            f"{baseline_violations} of {baseline_runs} races violated",
            races=runs,
            violations=serializable_violations,
            retries=dict(retries),
            baseline_races=baseline_runs,
            baseline_violations=baseline_violations,
        )


class TestDeadlock:
    """T-ISO-3: a deadlock aborts one unit (40P01); it is retried and both effects land once."""

    @pytest.mark.slow
    async def test_opposite_lock_order(self, make_db: MakeDb, report: Report) -> None:
        db = make_db(pool_size=2)
        async with db.unit_of_work() as uow:
            first = await uow.companies.create(ticker="DLA", name="A", employee_count=0)
            second = await uow.companies.create(ticker="DLB", name="B", employee_count=0)
            await uow.commit()
        rounds = 2
        retries: Counter[str] = Counter()
        waits: list[float] = []

        def on_retry(event: RetryEvent) -> None:
            retries[error_class(event.error)] += 1
            waits.append(time.monotonic() - round_started)

        async def bump(uow: UnitOfWork, order: tuple[int, int], first_try: list[bool]) -> None:
            for position, company_id in enumerate(order):
                company = await uow.companies.get_or_raise(company_id)
                await uow.companies.update(
                    company_id, employee_count=(company.employee_count or 0) + 1
                )
                if position == 0 and first_try[0]:
                    first_try[0] = False
                    await barrier.wait()

        for _ in range(rounds):
            barrier = asyncio.Barrier(2)
            round_started = time.monotonic()
            await asyncio.gather(
                db.run_in_transaction(
                    lambda uow, f=[True]: bump(uow, (first.id, second.id), f),
                    on_retry=on_retry,
                ),
                db.run_in_transaction(
                    lambda uow, f=[True]: bump(uow, (second.id, first.id), f),
                    on_retry=on_retry,
                ),
            )
        async with db.unit_of_work(read_only=True) as uow:
            counts = [
                (await uow.companies.get_or_raise(c.id)).employee_count for c in (first, second)
            ]
        assert counts == [2 * rounds, 2 * rounds]
        assert retries == Counter({"DeadlockDetectedError[40P01]": rounds})
        assert all(0.9 <= wait <= 2.5 for wait in waits), waits
        report(
            "T-ISO-3",
            f"{rounds} deadlocks: {rounds} x 40P01 after {max(waits):.1f} s "
            "(deadlock_timeout 1 s), retried; every effect present exactly once",
            deadlocks=rounds,
            retries=dict(retries),
            detection_s=[round(w, 2) for w in waits],
            final_counts=counts,
        )
