"""The fast read path returns exactly what the ORM path returns, tracked the same way."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from biotech_ma_db import (
    Company,
    CompanyRepository,
    Database,
    ScoreRepository,
    Signal,
    SignalRepository,
)
from biotech_ma_db.models import Severity, SignalType
from biotech_ma_db.repositories import _fast
from biotech_ma_db.testing.factories import make_company, make_score, make_signal

UTC = dt.UTC


@pytest.fixture(name="fast_calls")
def fixture_fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the rows loaded by the fast path (to prove it ran, or did not)."""
    calls: list[int] = []
    original = _fast._load

    def counting(session: Session, query: Any, compiled: Any, rows: Sequence[Any]) -> Any:
        calls.append(len(rows))
        return original(session, query, compiled, rows)

    monkeypatch.setattr(_fast, "_load", counting)
    return calls


def _columns(obj: Any) -> dict[str, object]:
    mapper = inspect(type(obj))
    return {attr.key: getattr(obj, attr.key) for attr in mapper.column_attrs}


async def _orm(session: AsyncSession, stmt: Any) -> list[Any]:
    """The same rows through the plain ORM, as fresh objects."""
    session.expunge_all()
    rows = list((await session.scalars(stmt)).all())
    snapshot = [(type(row), _columns(row)) for row in rows]
    session.expunge_all()
    return snapshot


async def _areas_companies(session: AsyncSession) -> list[Company]:
    companies = []
    for index, cap in enumerate((5, 7, None, 7, 3, 9)):
        companies.append(
            await make_company(
                session,
                market_cap_usd=None if cap is None else Decimal(cap) * 10**9,
                therapeutic_areas=["oncology", "fastpath"] if index % 2 == 0 else ["fastpath"],
                cash_position_usd=Decimal(100_000_000 + index),
                quarterly_burn_usd=Decimal(30_000_000),
            )
        )
    return companies


class TestSameDataAsOrm:
    """Each fast read returns the ORM path's objects, column for column."""

    async def test_get_by_ticker(self, db_session: AsyncSession, fast_calls: list[int]) -> None:
        company = await make_company(
            db_session, therapeutic_areas=["oncology"], market_cap_usd=Decimal("123.45")
        )
        expected = await _orm(db_session, select(Company).where(Company.id == company.id))
        found = await CompanyRepository(db_session).get_by_ticker(company.ticker)
        assert fast_calls == [1]
        assert found is not None
        assert [(type(found), _columns(found))] == expected
        assert await CompanyRepository(db_session).get_by_ticker("NOPE9") is None

    async def test_search(self, db_session: AsyncSession, fast_calls: list[int]) -> None:
        await _areas_companies(db_session)
        repo = CompanyRepository(db_session)
        for kwargs in (
            {"therapeutic_areas": ["fastpath"]},
            {"therapeutic_areas": ["fastpath", "oncology"], "min_market_cap": 5 * 10**9},
            {"therapeutic_areas": ["fastpath"], "max_market_cap": 7 * 10**9, "limit": 2},
            {"therapeutic_areas": ["fastpath"], "order_by": "name", "offset": 1},
            {"therapeutic_areas": ["fastpath"], "cash_constrained": False},
        ):
            order = kwargs.pop("order_by", "-market_cap_usd")
            found = await repo.search(order_by=order, **kwargs)  # type: ignore[arg-type]
            db_session.expunge_all()
            fast = [(type(row), _columns(row)) for row in found]
            criteria = [Company.therapeutic_areas.overlap(kwargs["therapeutic_areas"])]
            if "min_market_cap" in kwargs:
                criteria.append(Company.market_cap_usd >= kwargs["min_market_cap"])
            if "max_market_cap" in kwargs:
                criteria.append(Company.market_cap_usd <= kwargs["max_market_cap"])
            if "cash_constrained" in kwargs:
                criteria.append(Company.cash_constrained.is_(kwargs["cash_constrained"]))
            orm = await repo.list(
                *criteria,
                order_by=order,
                limit=int(kwargs.get("limit", 50)),  # type: ignore[call-overload]
                offset=int(kwargs.get("offset", 0)),  # type: ignore[call-overload]
            )
            assert fast == [(type(row), _columns(row)) for row in orm], kwargs
            db_session.expunge_all()
        assert len(fast_calls) == 5

    async def test_get_by_company_is_polymorphic(
        self, db_session: AsyncSession, fast_calls: list[int]
    ) -> None:
        company = await make_company(db_session)
        base = dt.datetime(2025, 3, 1, tzinfo=UTC)
        kinds = [SignalType.NEWS, SignalType.SEC_FILING, SignalType.FDA_APPROVAL]
        for index in range(9):
            await make_signal(
                db_session,
                company_id=company.id,
                signal_type=kinds[index % 3],
                severity=list(Severity)[index % 4],
                event_date=base + dt.timedelta(days=index),
                signal_data={"filing_type": "8-K", "n": index, "nested": {"a": [1, 2]}},
                ma_impact_score=Decimal(index) - Decimal("4.5"),
            )
        repo = SignalRepository(db_session)
        for kwargs in (
            {},
            {"start_date": base + dt.timedelta(days=3)},
            {"end_date": (base + dt.timedelta(days=4)).date()},
            {"end_date": base + dt.timedelta(days=4)},
            {"signal_types": ["news", "sec_filing"], "min_severity": "high"},
            {"limit": 3, "offset": 2},
        ):
            db_session.expunge_all()
            found = await repo.get_by_company(company.id, **kwargs)  # type: ignore[arg-type]
            fast = [(type(row), _columns(row)) for row in found]
            db_session.expunge_all()
            window = repo._window(
                kwargs.get("signal_types"),  # type: ignore[arg-type]
                kwargs.get("start_date"),  # type: ignore[arg-type]
                kwargs.get("end_date"),  # type: ignore[arg-type]
                kwargs.get("min_severity"),  # type: ignore[arg-type]
            )
            stmt = (
                select(Signal)
                .where(Signal.company_id == company.id, *window.criteria())
                .order_by(Signal.event_date.desc(), Signal.id.desc())
                .limit(int(kwargs.get("limit", 50)))  # type: ignore[call-overload]
                .offset(int(kwargs.get("offset", 0)))  # type: ignore[call-overload]
            )
            assert fast == await _orm(db_session, stmt), kwargs
        assert len(fast_calls) == 6
        assert {kind for kind, _ in fast} <= {
            type(s) for s in (await repo.get_by_company(company.id))
        }

    async def test_get_top_scores_with_companies(
        self, db_session: AsyncSession, fast_calls: list[int]
    ) -> None:
        today = dt.datetime.now(UTC).date()
        companies = [await make_company(db_session) for _ in range(4)]
        for index, company in enumerate(companies):
            for weeks in range(3):
                await make_score(
                    db_session,
                    company_id=company.id,
                    score_date=today - dt.timedelta(weeks=weeks),
                    total_score=Decimal(90 - index * 7 - weeks),
                    key_drivers=["pipeline", f"n{index}"],
                )
        await CompanyRepository(db_session).delete(companies[3].id)
        repo = ScoreRepository(db_session)
        for kwargs in ({}, {"score_date": today - dt.timedelta(weeks=1)}, {"limit": 2}):
            db_session.expunge_all()
            found = await repo.get_top_scores(**kwargs)  # type: ignore[arg-type]
            fast = [(_columns(s), _columns(s.company)) for s in found]
            assert fast_calls
            assert fast_calls[-1] == len(found)
            db_session.expunge_all()
            calls = len(fast_calls)
            held = await make_company(db_session)  # a non-empty identity map
            orm = await repo.get_top_scores(**kwargs)  # type: ignore[arg-type]
            assert held in db_session
            assert len(fast_calls) == calls  # the ORM path ran
            assert fast == [(_columns(s), _columns(s.company)) for s in orm], kwargs
            assert all(s.company.deleted_at is None for s in orm)
        assert len(found) == 2


class TestTrackedLikeOrm:
    """Fast-loaded objects are persistent members of the session's identity map."""

    async def test_identity_map_and_updates(
        self, db_session: AsyncSession, fast_calls: list[int]
    ) -> None:
        company = await make_company(db_session)
        company_id, ticker = company.id, company.ticker
        db_session.expunge_all()
        repo = CompanyRepository(db_session)
        found = await repo.get_by_ticker(ticker)
        assert found is not None
        state = inspect(found)
        assert state.persistent
        assert not db_session.is_modified(found)
        assert await repo.get(company_id) is found
        assert await repo.get_by_ticker(ticker) is found
        version = found.version
        updated = await repo.update(company_id, name="Renamed by the fast path test")
        assert updated is found
        assert found.version == version + 1
        assert fast_calls

    async def test_loaded_object_wins_over_the_row(
        self, db_session: AsyncSession, fast_calls: list[int]
    ) -> None:
        company = await make_company(db_session)
        company.name = "Changed, not flushed"
        db_session.sync_session.autoflush = False
        try:
            found = await CompanyRepository(db_session).get_by_ticker(company.ticker)
        finally:
            db_session.sync_session.autoflush = True
        assert found is company
        assert found.name == "Changed, not flushed"
        assert fast_calls == [1]

    async def test_pending_changes_take_the_orm_path(
        self, db_session: AsyncSession, fast_calls: list[int]
    ) -> None:
        company = await make_company(db_session)
        company.name = "Pending rename"
        found = await CompanyRepository(db_session).get_by_ticker(company.ticker)
        assert found is company
        assert fast_calls == []  # autoflush needed: the ORM statement ran instead
        assert not db_session.dirty

    async def test_expired_objects_take_the_orm_path(
        self, db_session: AsyncSession, fast_calls: list[int]
    ) -> None:
        company = await make_company(db_session, name="Before expiry")
        ticker = company.ticker
        db_session.expire(company)
        found = await CompanyRepository(db_session).get_by_ticker(ticker)
        assert found is company
        assert found.name == "Before expiry"
        assert len(fast_calls) == 1  # the fast path declined; the ORM refreshed the object

    async def test_soft_deleted_rows_stay_hidden(
        self, db_session: AsyncSession, fast_calls: list[int]
    ) -> None:
        repo = CompanyRepository(db_session)
        company = await make_company(db_session, therapeutic_areas=["softdeleted"])
        await repo.delete(company.id)
        db_session.expunge_all()
        assert await repo.get_by_ticker(company.ticker) is None
        assert await repo.search(therapeutic_areas=["softdeleted"]) == []
        found = await repo.get_by_ticker(company.ticker, include_deleted=True)
        assert found is not None
        assert found.deleted_at is not None
        assert len(fast_calls) == 3


class TestPlainSessions:
    """``Database.session()``: a one-read session borrows a connection and begins nothing."""

    async def test_one_read_session(self, fresh_database: Database, fast_calls: list[int]) -> None:
        db = fresh_database
        async with db.session() as session:
            company = await make_company(session)
        async with db.session() as session:
            repo = CompanyRepository(session)
            found = await repo.get_by_ticker(company.ticker)
            assert found is not None
            assert found.id == company.id
            assert not session.in_transaction()
            assert db.pool_status().checked_out == 0
            again = await repo.get_by_ticker(company.ticker)
            assert again is found
            assert session.in_transaction()
            assert db.pool_status().checked_out == 1
        assert db.pool_status().checked_out == 0
        assert fast_calls == [1, 1]

    async def test_slow_fast_reads_are_logged(
        self, fresh_database: Database, caplog: pytest.LogCaptureFixture
    ) -> None:
        url = fresh_database.engine.url.render_as_string(hide_password=False)
        async with Database.from_url(url, slow_query_ms=0, pool_size=1) as db:
            with caplog.at_level(logging.WARNING, logger="biotech_ma_db.slow_query"):
                async with db.session() as session:
                    await CompanyRepository(session).get_by_ticker("SLOW")
        assert any("slow query" in r.message and "companies" in r.message for r in caplog.records)
        assert all("SLOW" not in r.message for r in caplog.records)

    async def test_unit_of_work_reads_inside_its_transaction(
        self, fresh_database: Database, fast_calls: list[int]
    ) -> None:
        db = fresh_database
        async with db.session() as session:
            company = await make_company(session)
        async with db.unit_of_work(read_only=True) as uow:
            found = await uow.companies.get_by_ticker(company.ticker)
            assert found is not None
            connection = await uow.session.connection()
            raw = await connection.get_raw_connection()
            assert raw.driver_connection is not None
            assert raw.driver_connection.is_in_transaction()
        assert fast_calls == [1]

    async def test_one_round_trip_ping(self, fresh_database: Database) -> None:
        dialect = fresh_database.engine.sync_engine.dialect
        assert dialect.do_ping.__name__ == "_ping_one_round_trip"
        for _ in range(3):
            async with fresh_database.session() as session:
                assert await CompanyRepository(session).get_by_ticker("NONE") is None

    async def test_borrowed_read_is_its_own_ping(self, fresh_database: Database) -> None:
        """A borrowed read sends one statement; a checkout for the ORM path is pinged."""
        async with fresh_database.session() as session:
            company = await make_company(session)
        url = fresh_database.engine.url.render_as_string(hide_password=False)
        sent: list[str] = []
        async with Database.from_url(url, pool_size=1) as db:

            def log_queries(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.driver_connection.add_query_logger(
                    lambda logged: sent.append(logged.query)
                )

            event.listen(db.engine.sync_engine, "connect", log_queries)
            for _ in range(3):
                async with db.session() as session:
                    found = await CompanyRepository(session).get_by_ticker(company.ticker)
                    assert found is not None
            async with db.session() as session:
                assert await CompanyRepository(session).count() >= 1
        # Loggers run as loop callbacks: the round trips above have let them all run.
        reads, orm = sent[:3], sent[3:]
        assert all("FROM companies" in query for query in reads), sent
        assert orm[0] == ";", sent  # the ORM path's checkout still pings

    async def test_pgbouncer_preset_keeps_the_orm_path(
        self, fresh_database: Database, fast_calls: list[int]
    ) -> None:
        url = fresh_database.engine.url.render_as_string(hide_password=False)
        async with Database.from_url(url, pgbouncer=True, pool_size=1) as db:
            assert db.engine.sync_engine.dialect.do_ping.__name__ != "_ping_one_round_trip"
            async with db.session() as session:
                company = await make_company(session)
            async with db.session() as session:
                found = await CompanyRepository(session).get_by_ticker(company.ticker)
                assert found is not None
        assert fast_calls == []  # named prepared statements do not survive the pooler
