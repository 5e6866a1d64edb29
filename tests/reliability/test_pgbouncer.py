"""pgbouncer in transaction mode: the library's ``pgbouncer=True`` preset (T-PGB-1)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from biotech_ma_db import Database
from biotech_ma_db.database import server_settings
from biotech_ma_db.errors import DatabaseError
from biotech_ma_db.unit_of_work import UnitOfWork

from .harness import Admin, PgBouncer, Report, bouncer_url, error_class, fast_commits

TASKS, UNITS = 10, 20


async def _unit(uow: UnitOfWork, key: str) -> None:
    await uow.companies.upsert_many([{"ticker": key, "name": f"Pooled {key}"}])
    company = await uow.companies.get_by_ticker(key)
    assert company is not None
    await uow.companies.count()
    await uow.commit()


async def _load(db: Database, prefix: str) -> Counter[str]:
    failures: Counter[str] = Counter()

    async def task(number: int) -> None:
        for unit in range(UNITS):
            try:
                async with db.unit_of_work() as uow:
                    await _unit(uow, f"{prefix}{number}{unit:03d}")
            except (DatabaseError, Exception) as exc:  # noqa: BLE001 — counted
                failures[error_class(exc)] += 1

    await asyncio.gather(*(task(n) for n in range(TASKS)))
    return failures


class TestTransactionPooling:
    """T-PGB-1: 200 units of work through pgbouncer, with and without the preset."""

    @pytest.mark.slow
    async def test_preset_has_no_prepared_statement_failures(
        self, fault_db: str, admin: Admin, pgbouncer: PgBouncer, report: Report
    ) -> None:
        await fast_commits(admin, fault_db)
        url = bouncer_url(pgbouncer, fault_db)
        preset = Database.from_url(url, pgbouncer=True, pool_size=10, max_overflow=0)
        # The plain configuration, minus the startup GUCs pgbouncer would refuse outright.
        plain = Database.from_url(
            url,
            pool_size=10,
            max_overflow=0,
            statement_timeout_ms=None,
            lock_timeout_ms=None,
            idle_in_transaction_timeout_ms=None,
            client_connection_check_interval_ms=None,
        )
        defaults = Database.from_url(url, pool_size=2, max_overflow=0)
        try:
            assert set(server_settings(preset.settings)) == {"application_name"}
            with_preset = await _load(preset, "P")
            without = await _load(plain, "D")
            refused = 0
            try:
                async with defaults.unit_of_work() as uow:
                    await uow.companies.count()
            except DatabaseError:
                refused = 1
        finally:
            for db in (preset, plain, defaults):
                await db.dispose()
            await pgbouncer.kill(fault_db)
        assert sum(with_preset.values()) == 0, with_preset
        assert sum(without.values()) > 0, "expected the plain configuration to break"
        report(
            "T-PGB-1",
            f"{TASKS}x{UNITS} units through pgbouncer (transaction mode, pool 2): "
            f"{sum(with_preset.values())} failures with pgbouncer=True, "
            f"{sum(without.values())}/200 without it "
            f"({', '.join(sorted(without))}); startup GUCs refused: {bool(refused)}",
            failures_with_preset=sum(with_preset.values()),
            failures_without=dict(without),
            startup_guc_refused=bool(refused),
        )
