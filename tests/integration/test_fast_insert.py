"""The fast insert gives what the ORM flush gives: the object, the audit row, the errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, inspect, select, text
from sqlalchemy.orm import Session

from biotech_ma_db import (
    ConflictError,
    Database,
    MAScore,
    ReadOnlyViolationError,
    ScoreRepository,
    ValidationError,
)
from biotech_ma_db.models import AuditLogEntry
from biotech_ma_db.repositories import _session
from biotech_ma_db.testing.factories import make_company
from biotech_ma_db.unit_of_work import UnitOfWork
from tests.sent_statements import Sent, SentStatements, driver_of

DAY = dt.date(2025, 6, 30)
_VOLATILE = frozenset({"id", "created_at", "updated_at", "company_id", "score_date"})


async def _decline(*_: object) -> None:
    """Stands in for the fast insert to turn it off: ``create`` then flushes via the ORM."""
    return


def _columns(obj: Any) -> dict[str, object]:
    return {attr.key: getattr(obj, attr.key) for attr in inspect(type(obj)).column_attrs}


async def _create_and_read_back(
    db: Database, day: dt.date, **values: object
) -> tuple[dict[str, object], dict[str, object], list[Sent]]:
    """Create a score in a unit with actor and reason; its columns, its audit row, the SQL."""
    async with db.unit_of_work(actor="analyst-7", reason="weekly run") as uow:
        company = await make_company(uow)
        await uow.commit()
    async with db.unit_of_work(actor="analyst-7", reason="weekly run") as uow:
        async with SentStatements(db.engine) as recorder:
            score = await uow.scores.create(
                company_id=company.id, total_score=Decimal("61.5"), score_date=day, **values
            )
        sent = recorder.sent
        created = _columns(score)
        assert inspect(score).persistent
        assert score in uow.session
        await uow.commit()
    async with db.session() as session:
        entry = (
            await session.scalars(
                select(AuditLogEntry).where(
                    AuditLogEntry.table_name == "ma_scores", AuditLogEntry.row_id == score.id
                )
            )
        ).one()
        stored = _columns(await session.get_one(MAScore, score.id))
    assert created == stored  # the object holds what the row holds
    audit = {
        key: getattr(entry, key) for key in ("actor", "reason", "table_name", "action", "changes")
    }
    return created, audit, sent


class TestSameAsOrm:
    async def test_object_and_audit_row(
        self, fresh_database: Database, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fast = await _create_and_read_back(
            fresh_database, DAY, pipeline_score=Decimal("12.25"), key_drivers=["phase 3 data"]
        )
        monkeypatch.setattr(_session, "insert_object", _decline)
        orm = await _create_and_read_back(
            fresh_database, DAY, pipeline_score=Decimal("12.25"), key_drivers=["phase 3 data"]
        )
        fast_row, fast_audit, fast_sql = fast
        orm_row, orm_audit, orm_sql = orm
        keep = [key for key in fast_row if key not in _VOLATILE]
        assert {k: fast_row[k] for k in keep} == {k: orm_row[k] for k in keep}
        assert fast_row["created_by"] == fast_row["updated_by"] == "analyst-7"
        assert fast_row["change_reason"] == "weekly run"
        for row, audit in ((fast_row, fast_audit), (orm_row, orm_audit)):
            assert audit["changes"].pop("company_id") == [None, row["company_id"]]
        assert fast_audit == orm_audit
        # Server defaults the ORM fetched back appear in both: risk_factors was not given.
        assert fast_audit["changes"]["risk_factors"] == [None, []]
        assert fast_audit["changes"]["total_score"] == [None, "61.5"]
        inserts = [s for s in fast_sql if s.sql.lstrip().upper().startswith(("INSERT", "WITH"))]
        assert len(inserts) == 1, fast_sql  # the row and its audit entry in one statement
        assert inserts[0].via == "driver"  # compiled once, sent to asyncpg directly
        orm_inserts = [s for s in orm_sql if s.sql.lstrip().upper().startswith("INSERT")]
        assert [s.via for s in orm_inserts] == ["cursor", "cursor"]

    async def test_without_audit_context_no_audit_row(self, fresh_database: Database) -> None:
        async with fresh_database.session() as session:
            company = await make_company(session)
            score = await ScoreRepository(session).create(
                company_id=company.id, total_score=50, score_date=DAY
            )
            assert score.id is not None
            assert score.key_drivers == []
            assert score.total_score == Decimal("50.00")
            await session.commit()
        async with fresh_database.session() as session:
            count = await session.scalar(
                text("SELECT count(*) FROM audit_log WHERE table_name = 'ma_scores'")
            )
        assert count == 0

    async def test_behind_pgbouncer_the_same_statement_goes_through_sqlalchemy(
        self, fresh_database: Database
    ) -> None:
        url = fresh_database.engine.url.render_as_string(hide_password=False)
        async with Database.from_url(url, pgbouncer=True, pool_size=1) as db:
            async with db.unit_of_work(actor="analyst-7") as uow:
                company = await make_company(uow)
                await uow.commit()
            async with db.unit_of_work(actor="analyst-7") as uow:
                async with SentStatements(db.engine) as recorder:
                    score = await uow.scores.create(
                        company_id=company.id, total_score=Decimal("61.5"), score_date=DAY
                    )
                await uow.commit()
            async with db.session() as session:
                stored = _columns(await session.get_one(MAScore, score.id))
                audits = await session.scalar(
                    text(
                        "SELECT count(*) FROM audit_log WHERE table_name = 'ma_scores' "
                        f"AND row_id = {score.id}"
                    )
                )
        assert stored == _columns(score)
        assert audits == 1
        (insert,) = [s for s in recorder.sent if s.sql.lstrip().upper().startswith("WITH")]
        assert insert.via == "cursor"  # named prepared statements do not survive the pooler


class TestErrors:
    async def test_conflict_is_typed_and_nothing_is_written(self, fresh_database: Database) -> None:
        async with fresh_database.unit_of_work(actor="a") as uow:
            company = await make_company(uow)
            await uow.scores.create(company_id=company.id, total_score=50, score_date=DAY)
            await uow.commit()
        with pytest.raises(ConflictError):
            async with fresh_database.unit_of_work(actor="a") as uow:
                await uow.scores.create(company_id=company.id, total_score=51, score_date=DAY)
        async with fresh_database.session() as session:
            scores = await session.scalar(
                select(MAScore.total_score).where(MAScore.company_id == company.id)
            )
            audits = await session.scalar(
                text("SELECT count(*) FROM audit_log WHERE table_name = 'ma_scores'")
            )
        assert scores == Decimal("50.00")
        assert audits == 1

    async def test_bad_value_before_any_sql(self, fresh_database: Database) -> None:
        async with fresh_database.unit_of_work() as uow:
            company = await make_company(uow)
            held = await driver_of(uow.session)
            async with SentStatements(fresh_database.engine, connections=(held,)) as recorder:
                with pytest.raises(ValidationError):
                    await uow.scores.create(company_id=company.id, total_score=101)
                await uow.session.execute(select(1))  # ... which the recorder would see
        assert recorder.sql == ["SELECT 1"]

    async def test_read_only_refuses_before_any_sql(self, database: Database) -> None:
        async with database.unit_of_work(read_only=True) as uow:
            held = await driver_of(uow.session)
            async with SentStatements(database.engine, connections=(held,)) as recorder:
                with pytest.raises(ReadOnlyViolationError):
                    await uow.scores.create(company_id=1, total_score=50, score_date=DAY)
        assert not [s for s in recorder.sql if "INSERT" in s.upper()]


class TestDeclines:
    """Where a flush would do more, the ORM flushes, and everything it does still happens."""

    async def test_pending_changes_are_flushed_with_it(self, uow: UnitOfWork) -> None:
        company = await make_company(uow)
        company.name = "Renamed Therapeutics"  # pending: the flush must write it first
        score = await uow.scores.create(company_id=company.id, total_score=50, score_date=DAY)
        assert score.id is not None
        assert not uow.session.dirty
        name = await uow.session.scalar(
            text("SELECT name FROM companies WHERE id = :id"), {"id": company.id}
        )
        assert name == "Renamed Therapeutics"

    async def test_an_insert_hook_still_runs(self, uow: UnitOfWork) -> None:
        seen: list[int] = []

        def after_insert(_mapper: Any, _conn: Any, target: MAScore) -> None:
            seen.append(target.company_id)

        company_id = await _create_while_listening(uow, MAScore, "after_insert", after_insert)
        assert seen == [company_id]

    async def test_a_flush_listener_still_runs(self, uow: UnitOfWork) -> None:
        flushed: list[int] = []

        def before_flush(session: Session, *_: Any) -> None:
            flushed.append(len(session.new))

        await _create_while_listening(uow, Session, "before_flush", before_flush)
        assert flushed[-1] == 1


async def _create_while_listening(uow: UnitOfWork, target: Any, name: str, fn: Any) -> int:
    """Create a company and a score of it with ``fn`` listening; the company's id."""
    event.listen(target, name, fn)
    try:
        company = await make_company(uow)
        await uow.scores.create(company_id=company.id, total_score=50, score_date=DAY)
    finally:
        event.remove(target, name, fn)
    return company.id
