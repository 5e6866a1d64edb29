"""``SignalRepository``: polymorphic create, per-company queries, counts, COPY ingest."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db import (
    Database,
    ForeignKeyViolationError,
    Severity,
    Signal,
    SignalRepository,
    SignalType,
    UnitOfWork,
    ValidationError,
)
from biotech_ma_db.models import FdaApprovalSignal, NewsSignal, SecFilingSignal
from biotech_ma_db.testing.factories import make_company, make_signal

UTC = dt.UTC


async def _signal_count(session: AsyncSession, company_id: int | None = None) -> int:
    stmt = select(func.count()).select_from(Signal)
    if company_id is not None:
        stmt = stmt.where(Signal.company_id == company_id)
    return int(await session.scalar(stmt) or 0)


class TestCreate:
    """``create`` returns the subclass of the signal's type."""

    async def test_subclass_per_type(self, db_session: AsyncSession) -> None:
        repo = SignalRepository(db_session)
        company = await make_company(db_session)
        filing = await repo.create(
            company_id=company.id,
            signal_type="sec_filing",
            event_date=dt.datetime(2025, 3, 1, 12, tzinfo=UTC),
            title="8-K",
            severity="high",
            signal_data={"filing_type": "8-K", "url": "https://sec.example/1"},
        )
        assert isinstance(filing, SecFilingSignal)
        assert filing.filing_type == "8-K"
        assert filing.severity is Severity.HIGH
        approval = await repo.create(
            company_id=company.id,
            signal_type=SignalType.FDA_APPROVAL,
            event_date=dt.datetime(2025, 3, 2, tzinfo=UTC),
            title="Approved",
        )
        assert isinstance(approval, FdaApprovalSignal)
        assert approval.severity is Severity.MEDIUM
        assert approval.signal_data == {}
        db_session.expunge_all()
        reread = await repo.get_or_raise(filing.id)
        assert isinstance(reread, SecFilingSignal)

    async def test_naive_event_date_is_utc(self, db_session: AsyncSession) -> None:
        company = await make_company(db_session)
        signal = await SignalRepository(db_session).create(
            company_id=company.id,
            signal_type="news",
            event_date=dt.datetime(2025, 5, 1, 8, 30),  # noqa: DTZ001 — the seed passes naive UTC
            title="Naive",
        )
        assert signal.event_date == dt.datetime(2025, 5, 1, 8, 30, tzinfo=UTC)

    async def test_unknown_type_is_refused(self, db_session: AsyncSession) -> None:
        company = await make_company(db_session)
        with pytest.raises(ValidationError) as caught:
            await SignalRepository(db_session).create(
                company_id=company.id,
                signal_type="rumour",
                event_date=dt.datetime.now(UTC),
                title="x",
            )
        assert caught.value.field == "signal_type"


class TestQueries:
    """``get_by_company`` filters and orders newest first; counts group by type."""

    async def test_get_by_company(self, db_session: AsyncSession) -> None:
        repo = SignalRepository(db_session)
        company = await make_company(db_session)
        other = await make_company(db_session)
        day = dt.datetime(2025, 1, 1, tzinfo=UTC)
        made = {}
        for offset, (kind, severity) in enumerate(
            [
                ("news", "low"),
                ("sec_filing", "high"),
                ("fda_approval", "critical"),
                ("sec_filing", "medium"),
                ("patent", "high"),
            ]
        ):
            made[offset] = await make_signal(
                db_session,
                company_id=company.id,
                signal_type=kind,
                severity=severity,
                event_date=day + dt.timedelta(days=offset * 10),
            )
        await make_signal(db_session, company_id=other.id)

        everything = await repo.get_by_company(company.id)
        assert [s.id for s in everything] == [made[i].id for i in (4, 3, 2, 1, 0)]
        typed = await repo.get_by_company(company.id, signal_types=["sec_filing", "fda_approval"])
        assert [s.id for s in typed] == [made[3].id, made[2].id, made[1].id]
        ranged = await repo.get_by_company(
            company.id,
            start_date=dt.datetime(2025, 1, 11),  # noqa: DTZ001 — naive means UTC
            end_date=dt.date(2025, 1, 31),
        )
        assert [s.id for s in ranged] == [made[3].id, made[2].id, made[1].id]
        severe = await repo.get_by_company(company.id, min_severity="high")
        assert {s.id for s in severe} == {made[1].id, made[2].id, made[4].id}
        assert len(await repo.get_by_company(company.id, limit=2)) == 2
        assert await repo.get_by_company(other.id, signal_types=["patent"]) == []

    async def test_counts_by_type(self, db_session: AsyncSession) -> None:
        repo = SignalRepository(db_session)
        company = await make_company(db_session)
        for kind in ["news", "news", "patent"]:
            await make_signal(db_session, company_id=company.id, signal_type=kind)
        assert await repo.get_count_by_type(company_id=company.id) == {"news": 2, "patent": 1}
        empty = await make_company(db_session)
        assert await repo.get_count_by_type(company_id=empty.id) == {}
        overall = await repo.get_count_by_type()
        assert overall["news"] >= 2


def _rows(company_ids: list[int], count: int) -> list[dict[str, object]]:
    kinds = list(SignalType)
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    return [
        {
            "company_id": company_ids[i % len(company_ids)],
            "signal_type": kinds[i % len(kinds)],
            "event_date": start + dt.timedelta(minutes=i),
            "severity": "high" if i % 7 == 0 else "low",
            "title": f"Event {i}",
            "signal_data": {"n": i, "tags": ["a", "b"], "nested": {"ok": True}},
            "ma_impact_score": Decimal(i % 200 - 100),
        }
        for i in range(count)
    ]


class TestBulkIngest:
    """``bulk_ingest`` COPYs every row or none."""

    @pytest.mark.slow
    async def test_hundred_thousand_rows(self, uow: UnitOfWork) -> None:
        companies = [await make_company(uow) for _ in range(20)]
        ids = [c.id for c in companies]
        rows = _rows(ids, 100_000)
        started = time.perf_counter()
        written = await uow.signals.bulk_ingest(rows)
        elapsed = time.perf_counter() - started
        assert written == 100_000
        counted = await uow.session.scalar(
            select(func.count()).select_from(Signal).where(Signal.company_id.in_(ids))
        )
        assert counted == 100_000
        sample = await uow.signals.get_by_company(ids[3], limit=1)
        assert sample[0].signal_data["nested"] == {"ok": True}
        assert sample[0].created_by == "pytest"
        assert isinstance(sample[0], Signal)
        assert elapsed < 60

    async def test_one_bad_row_writes_nothing(self, db_session: AsyncSession) -> None:
        company = await make_company(db_session)
        rows = _rows([company.id], 1000)
        rows[637]["severity"] = "apocalyptic"
        with pytest.raises(ValidationError) as caught:
            await SignalRepository(db_session).bulk_ingest(rows)
        assert (caught.value.row, caught.value.field) == (637, "severity")
        assert await _signal_count(db_session, company.id) == 0

    async def test_server_side_failure_writes_nothing(self, db_session: AsyncSession) -> None:
        company = await make_company(db_session)
        rows = _rows([company.id], 500)
        rows[499]["company_id"] = 987654321
        with pytest.raises(ForeignKeyViolationError):
            await SignalRepository(db_session).bulk_ingest(rows)
        assert await _signal_count(db_session, company.id) == 0
        # The session is still usable: the COPY ran in its own savepoint.
        assert await SignalRepository(db_session).bulk_ingest(rows[:499]) == 499

    async def test_empty_and_odd_input(self, db_session: AsyncSession) -> None:
        repo = SignalRepository(db_session)
        assert await repo.bulk_ingest([]) == 0
        with pytest.raises(ValidationError):
            await repo.bulk_ingest(["not a mapping"])  # type: ignore[list-item]

    async def test_committed_through_a_real_unit_of_work(self, fresh_database: Database) -> None:
        async with fresh_database.unit_of_work(actor="loader", reason="backfill") as uow:
            company = await uow.companies.create(ticker="COPY", name="Copy Bio")
            assert await uow.signals.bulk_ingest(_rows([company.id], 50)) == 50
            await uow.commit()
        async with fresh_database.unit_of_work() as uow:
            signals = await uow.signals.get_by_company(company.id, limit=500)
            assert len(signals) == 50
            assert {(s.created_by, s.change_reason) for s in signals} == {("loader", "backfill")}
            assert all(isinstance(s, Signal) for s in signals)
            assert any(isinstance(s, NewsSignal) for s in signals)
