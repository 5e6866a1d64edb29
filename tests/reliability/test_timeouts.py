"""Server-side timeouts: statement, lock, idle in transaction (T-TMO-1..3)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import asyncpg
import pytest
from sqlalchemy import text

from biotech_ma_db.errors import (
    DatabaseError,
    DatabaseUnavailableError,
    LockTimeoutError,
    QueryTimeoutError,
)
from biotech_ma_db.unit_of_work import UnitOfWork

from .harness import LOOPBACK, FaultServer, MakeDb, Report, elapsed, error_class


async def _pid(uow: UnitOfWork) -> int:
    return int((await uow.session.execute(text("SELECT pg_backend_pid()"))).scalar_one())


def _names(exc: BaseException) -> set[str]:
    names: set[str] = set()
    current: BaseException | None = exc
    while current is not None:
        names.update(cls.__name__ for cls in type(current).__mro__)
        current = current.__cause__ or current.__context__
    return names


class TestTimeoutSettings:
    """Every timeout setting reaches the server session (sent in the startup packet)."""

    async def test_server_side_timeouts_are_in_effect(self, make_db: MakeDb) -> None:
        db = make_db(
            pool_size=1,
            statement_timeout_ms=1500,
            lock_timeout_ms=700,
            idle_in_transaction_timeout_ms=9000,
            client_connection_check_interval_ms=250,
        )
        names = (
            "statement_timeout",
            "lock_timeout",
            "idle_in_transaction_session_timeout",
            "client_connection_check_interval",
            "application_name",
        )
        async with db.unit_of_work(read_only=True) as uow:
            values = [
                (await uow.session.execute(text(f"SELECT current_setting('{name}')"))).scalar()
                for name in names
            ]
        assert values == ["1500ms", "700ms", "9s", "250ms", db.settings.application_name]


class TestStatementTimeout:
    """T-TMO-1: statement_timeout cancels the statement; the connection is kept."""

    async def test_statement_timeout_is_typed_and_keeps_the_connection(
        self, make_db: MakeDb, report: Report
    ) -> None:
        db = make_db(pool_size=2, statement_timeout_ms=1000)
        async with db.unit_of_work(read_only=True) as uow:
            pid_before = await _pid(uow)
            assert (
                await uow.session.execute(text("SELECT current_setting('statement_timeout')"))
            ).scalar_one() == "1s"
        size_before = db.pool_status()
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError) as caught:
            async with db.unit_of_work(read_only=True) as uow:
                await uow.session.execute(text("SELECT pg_sleep(10)"))
        took = elapsed(started)
        async with db.unit_of_work(read_only=True) as uow:
            pid_after = await _pid(uow)
        assert caught.value.sqlstate == "57014"
        assert 0.9 <= took <= 2.0
        assert pid_after == pid_before, "the connection was replaced, not reused"
        assert db.pool_status().checked_in == size_before.checked_in
        report(
            "T-TMO-1",
            f"QueryTimeoutError[57014] after {took:.2f} s (statement_timeout 1 s), "
            "connection reused, pool size unchanged",
            elapsed_s=took,
            reused=pid_after == pid_before,
        )


class TestLockTimeout:
    """T-TMO-2: lock_timeout turns a blocked row lock into LockTimeoutError."""

    async def test_lock_timeout_is_typed(
        self, make_db: MakeDb, fault_db: str, fault_server: FaultServer, report: Report
    ) -> None:
        db = make_db(pool_size=2, lock_timeout_ms=500)
        async with db.unit_of_work() as uow:
            company = await uow.companies.create(ticker="LOCKD", name="Locked Inc")
            await uow.commit()
        holder = await asyncpg.connect(
            host=LOOPBACK, port=fault_server.port, user="postgres", database=fault_db
        )
        try:
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("SELECT * FROM companies WHERE id = $1 FOR UPDATE", company.id)
            started = time.monotonic()
            with pytest.raises(LockTimeoutError) as caught:
                async with db.unit_of_work() as uow:
                    await uow.companies.update(company.id, name="Blocked Inc")
                    await uow.commit()
            took = elapsed(started)
            await transaction.rollback()
        finally:
            await holder.close()
        assert caught.value.sqlstate == "55P03"
        assert 0.45 <= took <= 1.5
        report(
            "T-TMO-2",
            f"LockTimeoutError[55P03] after {took:.2f} s (lock_timeout 0.5 s)",
            elapsed_s=took,
        )


class TestIdleInTransactionTimeout:
    """T-TMO-3: the server killing idle transactions yields typed errors, no broken pool."""

    @pytest.mark.slow
    async def test_killed_idle_transactions(self, make_db: MakeDb, report: Report) -> None:
        db = make_db(pool_size=5, idle_in_transaction_timeout_ms=300)
        errors: Counter[str] = Counter()
        untyped: list[str] = []
        internal_client_errors = 0

        async def idle_too_long() -> None:
            nonlocal internal_client_errors
            try:
                async with db.unit_of_work() as uow:
                    await uow.companies.count()
                    await asyncio.sleep(0.5)
                    await uow.companies.count()
                    await uow.commit()
            except DatabaseError as exc:
                errors[error_class(exc)] += 1
                if "InternalClientError" in _names(exc):
                    internal_client_errors += 1
            except Exception as exc:  # noqa: BLE001 — counted: nothing untyped may escape
                untyped.append(repr(exc))
                if "InternalClientError" in _names(exc):
                    internal_client_errors += 1

        for _ in range(6):
            await asyncio.gather(*(idle_too_long() for _ in range(5)))
        recovered = 0
        for _ in range(20):
            async with db.unit_of_work() as uow:
                await uow.companies.count()
                await uow.commit()
            recovered += 1
        typed = sum(errors.values())
        assert typed == 30, (errors, untyped)
        assert not untyped
        assert internal_client_errors == 0
        assert recovered == 20
        assert set(errors) <= {
            error_class(DatabaseUnavailableError("x", sqlstate="25P03")),
            "DatabaseUnavailableError",
            "DatabaseUnavailableError[08003]",
        }, errors
        report(
            "T-TMO-3",
            f"{typed}/30 typed ({', '.join(sorted(errors))}), {recovered}/20 recovered, "
            f"{internal_client_errors} InternalClientError",
            errors_by_class=dict(errors),
            recovered=recovered,
            internal_client_errors=internal_client_errors,
        )
