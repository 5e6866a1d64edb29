"""The unit of work: one transaction, explicit commit, typed errors, audit trail."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from biotech_ma_db import (
    AuditAction,
    Company,
    ConcurrencyError,
    ConflictError,
    Database,
    PermissionDeniedError,
    UnitOfWork,
    UnitOfWorkError,
)
from biotech_ma_db.repositories import (
    CompanyRepository,
    ReadRepository,
    ScoreRepository,
    SignalRepository,
    WebhookRepository,
)
from biotech_ma_db.testing.factories import make_client, make_company


async def _company_count(db: Database, ticker: str) -> int:
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Company).where(Company.ticker == ticker)
        )
    return int(count or 0)


class TestTransactions:
    """Commit is explicit; anything else rolls back."""

    async def test_commit_persists(self, fresh_database: Database) -> None:
        async with fresh_database.unit_of_work() as uow:
            company = await uow.companies.create(ticker="KEEP", name="Kept")
            await uow.commit()
            await uow.companies.count()  # a new transaction, left without commit
        assert await _company_count(fresh_database, "KEEP") == 1
        assert company.name == "Kept"  # still readable after the block

    async def test_leaving_without_commit_rolls_back(self, fresh_database: Database) -> None:
        async with fresh_database.unit_of_work() as uow:
            await uow.companies.create(ticker="GONE", name="Not committed")
        assert await _company_count(fresh_database, "GONE") == 0

    async def test_rollback_then_continue(self, fresh_database: Database) -> None:
        async with fresh_database.unit_of_work() as uow:
            await uow.companies.create(ticker="UNDO", name="Undone")
            await uow.rollback()
            await uow.companies.create(ticker="REDO", name="Redone")
            await uow.commit()
        assert await _company_count(fresh_database, "UNDO") == 0
        assert await _company_count(fresh_database, "REDO") == 1

    async def test_error_inside_rolls_back_and_propagates(self, fresh_database: Database) -> None:
        with pytest.raises(RuntimeError, match="boom"):
            async with fresh_database.unit_of_work() as uow:
                await uow.companies.create(ticker="BOOM", name="Exploded")
                raise RuntimeError("boom")
        assert await _company_count(fresh_database, "BOOM") == 0

    async def test_driver_errors_leave_typed(self, fresh_database: Database) -> None:
        with pytest.raises(ConflictError):
            async with fresh_database.unit_of_work() as uow:
                uow.session.add_all(
                    [Company(ticker="TWIN", name="a"), Company(ticker="TWIN", name="b")]
                )
                await uow.commit()
        assert await _company_count(fresh_database, "TWIN") == 0

    async def test_failed_rollback_never_masks_the_error(
        self, fresh_database: Database, caplog: pytest.LogCaptureFixture
    ) -> None:
        admin = create_async_engine(fresh_database.engine.url)
        try:
            with pytest.raises(RuntimeError, match="original") as caught:
                async with fresh_database.unit_of_work() as uow:
                    await uow.companies.create(ticker="LOST", name="Connection dies")
                    pid = (await uow.session.execute(text("SELECT pg_backend_pid()"))).scalar()
                    async with admin.connect() as conn:
                        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                    raise RuntimeError("original")
        finally:
            await admin.dispose()
        notes = getattr(caught.value, "__notes__", [])
        assert any("rollback also failed" in note for note in notes)
        assert "rollback failed while handling RuntimeError" in caplog.text
        assert await _company_count(fresh_database, "LOST") == 0
        assert fresh_database.pool_status().checked_out == 0

    async def test_read_only_refuses_writes(self, database: Database) -> None:
        async with database.unit_of_work(read_only=True) as uow:
            assert await uow.companies.count() >= 0
            with pytest.raises(PermissionDeniedError) as caught:
                await uow.companies.create(ticker="RDON", name="Refused")
        assert caught.value.sqlstate == "25006"

    async def test_read_only_applies_after_commit_too(self, database: Database) -> None:
        async with database.unit_of_work(read_only=True) as uow:
            await uow.commit()
            mode = await uow.session.scalar(text("SHOW transaction_read_only"))
            assert mode == "on"

    async def test_client_id_is_published_per_transaction(self, database: Database) -> None:
        query = text("SELECT current_setting('app.client_id', true)")
        async with database.unit_of_work(client_id=42) as uow:
            assert await uow.session.scalar(query) == "42"
            await uow.commit()
            assert await uow.session.scalar(query) == "42"
        async with database.unit_of_work() as uow:
            assert await uow.session.scalar(query) in {None, ""}

    async def test_fixture_uow_commits_into_a_savepoint(self, uow: UnitOfWork) -> None:
        company = await uow.companies.create(ticker="FIXT", name="Fixture")
        await uow.commit()
        assert await uow.companies.get(company.id) is not None
        assert uow.actor == "pytest"


class TestOneTask:
    """A unit of work is used inside ``async with`` by one task at a time (T-ORM-2)."""

    async def test_use_before_enter(self, database: Database) -> None:
        uow = database.unit_of_work()
        with pytest.raises(UnitOfWorkError):
            _ = uow.companies
        with pytest.raises(UnitOfWorkError):
            await uow.commit()

    async def test_second_concurrent_task_is_refused(self, database: Database) -> None:
        async with database.unit_of_work() as uow:
            await uow.companies.count()

            async def intruder() -> None:
                await uow.companies.count()

            with pytest.raises(UnitOfWorkError):
                await asyncio.create_task(intruder())
            with pytest.raises(UnitOfWorkError):
                await asyncio.create_task(uow.commit())
            assert await uow.companies.count() >= 0

    async def test_reentering_is_refused(self, database: Database) -> None:
        uow = database.unit_of_work()
        async with uow:
            with pytest.raises(UnitOfWorkError):
                await uow.__aenter__()

    async def test_every_repository_shares_the_session(self, uow: UnitOfWork) -> None:
        repositories: list[ReadRepository[Any]] = [
            uow.companies,
            uow.drug_candidates,
            uow.signals,
            uow.scores,
            uow.acquirer_matches,
            uow.reports,
            uow.alerts,
            uow.webhooks,
            uow.clients,
            uow.audit_log,
        ]
        assert all(repo.session is uow.session for repo in repositories)
        assert uow.companies is uow.companies
        assert isinstance(uow.signals, SignalRepository)
        assert isinstance(uow.scores, ScoreRepository)
        assert isinstance(uow.webhooks, WebhookRepository)


class TestAudit:
    """Actor and reason reach the audit columns and ``audit_log`` on flush."""

    async def test_insert_update_soft_delete_restore_delete(self, database: Database) -> None:
        async with database.unit_of_work(actor="alice", reason="ticket-7") as uow:
            company = await uow.companies.create(
                ticker="AUDT", name="Audited", market_cap_usd=Decimal("10.50")
            )
            assert (company.created_by, company.updated_by) == ("alice", "alice")
            assert company.change_reason == "ticket-7"
            await uow.companies.update(company.id, market_cap_usd=Decimal("12.25"))
            await uow.companies.delete(company.id)
            await uow.companies.restore(company.id)
            await uow.companies.delete(company.id, hard=True)

            entries = await uow.audit_log.for_row("companies", company.id)
            assert [e.action for e in entries] == [
                AuditAction.INSERT,
                AuditAction.UPDATE,
                AuditAction.SOFT_DELETE,
                AuditAction.RESTORE,
                AuditAction.DELETE,
            ]
            assert {(e.actor, e.reason) for e in entries} == {("alice", "ticket-7")}
            inserted, updated, soft_deleted, restored, deleted = entries
            assert inserted.changes["ticker"] == [None, "AUDT"]
            assert inserted.changes["market_cap_usd"] == [None, "10.50"]
            assert updated.changes == {"market_cap_usd": ["10.50", "12.25"]}
            old, new = soft_deleted.changes["deleted_at"]
            assert old is None
            assert isinstance(new, str)
            assert restored.changes["deleted_at"] == [new, None]
            assert deleted.changes["name"] == ["Audited", None]
            assert len({e.transaction_id for e in entries}) == 1
            transaction_id = entries[0].transaction_id
            assert transaction_id is not None
            in_transaction = await uow.audit_log.for_transaction(transaction_id, limit=500)
            assert {e.id for e in entries} <= {e.id for e in in_transaction}

    async def test_secrets_are_redacted(self, database: Database) -> None:
        async with database.unit_of_work(actor="bob") as uow:
            client, key = await uow.clients.create_with_api_key("Audited client")
            webhook = await uow.webhooks.create(
                client_id=client.id, url="https://example.com/h", secret="whsec_plain"
            )
            client_entry = (await uow.audit_log.for_row("clients", client.id))[0]
            webhook_entry = (await uow.audit_log.for_row("webhooks", webhook.id))[0]
            assert client_entry.changes["api_key_hash"] == ["[redacted]", "[redacted]"]
            assert webhook_entry.changes["secret"] == ["[redacted]", "[redacted]"]
            assert key not in str(client_entry.changes)
            assert "whsec_plain" not in str(webhook_entry.changes)

    async def test_no_audit_without_a_unit_of_work(self, database: Database) -> None:
        async with database.sessionmaker() as session:
            company = await CompanyRepository(session).create(ticker="NOAU", name="Plain")
            assert company.created_by is None
            count = await session.scalar(
                text(
                    "SELECT count(*) FROM audit_log WHERE table_name = 'companies' AND row_id = :id"
                ),
                {"id": company.id},
            )
            assert count == 0
            await session.rollback()

    async def test_new_transaction_new_transaction_id(self, uow: UnitOfWork) -> None:
        first = await make_company(uow)
        await uow.commit()
        second = await make_client(uow)
        (a,) = await uow.audit_log.for_row("companies", first.id)
        (b,) = await uow.audit_log.for_row("clients", second.id)
        assert a.actor == b.actor == "pytest"
        # Savepoints of one outer test transaction share its id; real commits would not.
        assert a.transaction_id == b.transaction_id


class TestOptimisticLocking:
    """A stale version raises ``ConcurrencyError`` and writes nothing."""

    async def test_expected_version_is_checked(self, fresh_database: Database) -> None:
        async with fresh_database.unit_of_work() as uow:
            company = await uow.companies.create(ticker="LOCK", name="v1")
            await uow.commit()
        async with fresh_database.unit_of_work() as other:
            await other.companies.update(company.id, name="v2 by other")
            await other.commit()
        async with fresh_database.unit_of_work() as uow:
            with pytest.raises(ConcurrencyError):
                await uow.companies.update(company.id, expected_version=1, name="stale")
            current = await uow.companies.get_or_raise(company.id)
            assert (current.name, current.version) == ("v2 by other", 2)

    async def test_stale_object_flush_is_a_concurrency_error(
        self, fresh_database: Database
    ) -> None:
        async with fresh_database.unit_of_work() as uow:
            company = await uow.companies.create(ticker="RACE", name="v1")
            await uow.commit()
        async with fresh_database.unit_of_work() as uow:
            mine = await uow.companies.get_or_raise(company.id)
            async with fresh_database.unit_of_work() as other:
                await other.companies.update(company.id, name="winner")
                await other.commit()
            mine.name = "loser"
            with pytest.raises(ConcurrencyError):
                await uow.commit()
        async with fresh_database.unit_of_work() as uow:
            assert (await uow.companies.get_or_raise(company.id)).name == "winner"

    async def test_update_after_a_concurrent_commit(self, fresh_database: Database) -> None:
        async with fresh_database.unit_of_work() as uow:
            company = await uow.companies.create(ticker="RMW", name="v1", employee_count=0)
            await uow.commit()
        async with fresh_database.unit_of_work() as uow:
            seen = await uow.companies.get_or_raise(company.id)
            async with fresh_database.unit_of_work() as other:
                await other.companies.update(company.id, employee_count=10)
                await other.commit()
            # A read-modify-write from the stale read must not overwrite the other commit.
            with pytest.raises(ConcurrencyError):
                await uow.companies.update(
                    company.id, employee_count=(seen.employee_count or 0) + 1
                )
        async with fresh_database.unit_of_work() as uow:
            current = await uow.companies.get_or_raise(company.id)
            assert (current.employee_count, current.version) == (10, 2)

    async def test_expected_version_newer_than_the_session_copy(
        self, fresh_database: Database
    ) -> None:
        async with fresh_database.unit_of_work() as uow:
            company = await uow.companies.create(ticker="NEWR", name="v1")
            await uow.commit()
        async with fresh_database.unit_of_work() as uow:
            await uow.companies.get_or_raise(company.id)
            async with fresh_database.unit_of_work() as other:
                await other.companies.update(company.id, name="v2")
                await other.commit()
            updated = await uow.companies.update(company.id, expected_version=2, name="v3")
            assert (updated.name, updated.version) == ("v3", 3)


@pytest.fixture(autouse=True)
def _log_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="biotech_ma_db")
