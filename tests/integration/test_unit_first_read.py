"""A fresh unit of work's first fast read is its own ping, and survives a dead connection."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sqlalchemy import event, text

from biotech_ma_db import Database
from biotech_ma_db.testing.factories import make_company


def _logging_queries(db: Database, sent: list[str]) -> None:
    def log_queries(dbapi_connection: Any, _record: Any) -> None:
        driver = dbapi_connection.driver_connection
        driver.add_query_logger(lambda logged: sent.append(logged.query))

    event.listen(db.engine.sync_engine, "connect", log_queries)


async def _backend_pid(db: Database) -> int:
    async with db.unit_of_work(read_only=True) as uow:
        return int((await uow.session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _kill(admin: Database, pid: int) -> None:
    async with admin.session() as session:
        await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        async with admin.session() as session:
            alive = await session.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            )
        if alive == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"backend {pid} survived pg_terminate_backend")


class TestFirstReadOfAUnit:
    async def test_no_ping_before_it(self, fresh_database: Database) -> None:
        async with fresh_database.session() as session:
            company = await make_company(session)
        url = fresh_database.engine.url.render_as_string(hide_password=False)
        sent: list[str] = []
        async with Database.from_url(url, pool_size=1) as db:
            _logging_queries(db, sent)
            for _ in range(3):
                async with db.unit_of_work() as uow:
                    found = await uow.companies.get_by_ticker(company.ticker)
                    assert found is not None
                    again = await uow.companies.get_by_ticker(company.ticker)
                    assert again is found
                    await uow.commit()
        # Loggers run as loop callbacks: the round trips above have let them all run.
        assert ";" not in sent, sent
        # Two reads per unit, nothing else: no ping, and no BEGIN/COMMIT for a unit that
        # only read (its reads run before the transaction's lazy BEGIN).
        assert len(sent) == 6, sent
        assert all("FROM companies" in query for query in sent), sent
        read_only: list[str] = []
        async with Database.from_url(url, pool_size=1) as db:
            _logging_queries(db, read_only)
            for _ in range(2):
                async with db.unit_of_work(read_only=True) as uow:
                    assert await uow.companies.get_by_ticker(company.ticker) is not None
        # A unit with per-transaction settings sends them at BEGIN: the checkout of the
        # pooled connection (the second unit's) is pinged.
        assert read_only.count(";") == 1, read_only

    async def test_dead_connection_is_replaced(self, fresh_database: Database) -> None:
        async with fresh_database.session() as session:
            company = await make_company(session)
        url = fresh_database.engine.url.render_as_string(hide_password=False)
        async with (
            Database.from_url(url, pool_size=1, max_overflow=0) as db,
            Database.from_url(url, pool_size=1) as admin,
        ):
            for _ in range(3):
                await _kill(admin, await _backend_pid(db))
                async with db.unit_of_work(actor="t", reason="dead connection") as uow:
                    found = await uow.companies.get_by_ticker(company.ticker)
                    assert found is not None
                    assert found.id == company.id
                    await uow.companies.update(found.id, name="Renamed after a dead connection")
                    await uow.commit()
                assert db.pool_status().checked_out == 0
        async with fresh_database.session() as session:
            assert (await session.get(type(company), company.id)) is not None
