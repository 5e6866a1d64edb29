"""Bad input raises ``ValidationError`` naming the field, before any SQL, and harms nothing."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db import (
    Company,
    CompanyRepository,
    Database,
    ScoreRepository,
    Severity,
    Signal,
    SignalRepository,
    SignalType,
    ValidationError,
)
from biotech_ma_db.models.company import TICKER_PATTERN
from biotech_ma_db.testing.factories import make_company
from tests.sent_statements import SentStatements, driver_of

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

_COMPANY_FIELDS = set(Company.__mapper__.column_attrs.keys())
_ENUM_VALUES = {str(v) for v in (*SignalType, *Severity)}

nul_text = st.text(max_size=20).map(lambda s: s + "\x00" + s)
long_text = st.integers(10_001, 10_100).map(lambda n: "x" * n)
not_a_number = st.one_of(st.text(max_size=5), st.booleans(), st.lists(st.integers(), max_size=2))
negative_money = st.one_of(
    st.decimals(max_value=Decimal("-0.01"), min_value=Decimal("-1e15"), places=2),
    st.integers(max_value=-1, min_value=-(10**15)),
    st.floats(max_value=-0.01, min_value=-1e15),
)
non_finite = st.sampled_from([float("nan"), float("inf"), float("-inf"), Decimal("NaN")])
too_big_money = st.decimals(min_value=Decimal("1e18"), max_value=Decimal("1e30"), places=2)


def bad_company_field() -> st.SearchStrategy[tuple[str, object]]:
    """One (field, bad value) pair for a company."""
    money = st.sampled_from(
        ["market_cap_usd", "cash_position_usd", "quarterly_burn_usd", "revenue_ttm_usd"]
    )
    return st.one_of(
        st.tuples(
            st.just("ticker"),
            st.one_of(
                st.text(max_size=14).filter(lambda s: re.search(TICKER_PATTERN, s) is None),
                st.integers(),
                st.none(),
            ),
        ),
        st.tuples(st.sampled_from(["name", "exchange"]), st.one_of(nul_text, long_text)),
        st.tuples(money, st.one_of(negative_money, non_finite, not_a_number, too_big_money)),
        st.tuples(
            st.just("employee_count"),
            st.one_of(
                st.integers(max_value=-1),
                st.integers(min_value=2**31),
                st.floats(),
                st.text(max_size=3),
            ),
        ),
        st.tuples(
            st.just("therapeutic_areas"),
            st.one_of(
                st.text(max_size=5),
                st.integers(),
                st.lists(st.integers(), min_size=1, max_size=3),
                st.lists(nul_text, min_size=1, max_size=2),
                st.lists(st.none(), min_size=1, max_size=2),
            ),
        ),
        st.tuples(
            st.text(min_size=1, max_size=30).filter(lambda s: s not in _COMPANY_FIELDS),
            st.integers(),
        ),
        st.tuples(st.sampled_from(["id", "cash_constrained", "version", "deleted_at"]), st.just(1)),
    )


def bad_score_field() -> st.SearchStrategy[tuple[str, object]]:
    """One (field, bad value) pair for a score."""
    out_of_range = st.one_of(
        st.decimals(min_value=Decimal("100.01"), max_value=Decimal("1e6"), places=2),
        st.floats(max_value=-0.01, min_value=-1e9),
        st.floats(min_value=100.01, max_value=1e9),
        non_finite,
    )
    return st.one_of(
        st.tuples(st.sampled_from(["total_score", "pipeline_score", "signal_score"]), out_of_range),
        st.tuples(
            st.just("percentile_rank"),
            st.one_of(st.floats(min_value=1.0001, max_value=1e6), st.floats(max_value=-0.0001)),
        ),
        st.tuples(
            st.just("key_drivers"), st.one_of(st.text(max_size=3), st.lists(nul_text, min_size=1))
        ),
        st.tuples(st.just("score_date"), st.one_of(st.text(max_size=10), st.datetimes())),
    )


def bad_signal_field() -> st.SearchStrategy[tuple[str, object]]:
    """One (field, bad value) pair for a signal row."""
    return st.one_of(
        st.tuples(
            st.just("ma_impact_score"),
            st.one_of(
                st.decimals(min_value=Decimal("100.01"), max_value=Decimal("1e4"), places=2),
                st.integers(max_value=-101),
                non_finite,
            ),
        ),
        st.tuples(
            st.sampled_from(["signal_type", "severity"]),
            st.one_of(
                st.text(max_size=12).filter(lambda s: s not in _ENUM_VALUES),
                st.integers(),
            ),
        ),
        st.tuples(
            st.just("signal_data"),
            st.one_of(
                st.just({"x": float("nan")}),
                nul_text.map(lambda s: {"k": s}),
                nul_text.map(lambda s: {"nested": [{"deep": s}]}),
                st.just({"s": {1, 2}}),
                st.just({"b": b"bytes"}),
                st.just({"d": Decimal(1)}),
                st.lists(st.integers(), max_size=2),
            ),
        ),
        st.tuples(
            st.sampled_from(["title", "description", "source_url"]),
            st.one_of(nul_text, long_text.map(lambda s: s * 11)),
        ),
        st.tuples(
            st.just("event_date"), st.one_of(st.dates(), st.text(max_size=10), st.integers())
        ),
        st.tuples(st.just("company_id"), st.one_of(st.integers(max_value=0), st.text(max_size=3))),
    )


async def _companies(session: AsyncSession) -> int:
    stmt = select(func.count()).select_from(Company).execution_options(include_deleted=True)
    return int(await session.scalar(stmt) or 0)


async def _signals(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Signal)) or 0)


def _valid_signal(company_id: int, n: int) -> dict[str, object]:
    return {
        "company_id": company_id,
        "signal_type": "news",
        "event_date": dt.datetime(2025, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=n),
        "title": f"ok {n}",
        "signal_data": {"n": n},
    }


class TestCompanies:
    """Company writes refuse bad values before SQL."""

    @FUZZ
    @given(case=bad_company_field())
    async def test_create(self, db_session: AsyncSession, case: tuple[str, object]) -> None:
        field, value = case
        repo = CompanyRepository(db_session)
        before = await _companies(db_session)
        values: dict[str, Any] = {"ticker": "VALID", "name": "Valid", field: value}
        with pytest.raises(ValidationError) as caught:
            await repo.create(**values)
        assert caught.value.field == field[:64]
        assert await _companies(db_session) == before

    @FUZZ
    @given(case=bad_company_field())
    async def test_update(self, db_session: AsyncSession, case: tuple[str, object]) -> None:
        field, value = case
        repo = CompanyRepository(db_session)
        company = await repo.get_by_ticker("HYPUPD") or await make_company(
            db_session, ticker="HYPUPD", name="Unchanged"
        )
        with pytest.raises(ValidationError) as caught:
            changes: dict[str, Any] = {field: value}
            await repo.update(company.id, **changes)
        assert caught.value.field == field[:64]
        await db_session.refresh(company)
        assert (company.name, company.version) == ("Unchanged", 1)

    @FUZZ
    @given(case=bad_company_field(), position=st.integers(0, 4))
    async def test_upsert(
        self, db_session: AsyncSession, case: tuple[str, object], position: int
    ) -> None:
        field, value = case
        before = await _companies(db_session)
        rows: list[dict[str, object]] = [{"ticker": f"UPS{i}", "name": f"n{i}"} for i in range(5)]
        rows[position][field] = value
        with pytest.raises(ValidationError) as caught:
            await CompanyRepository(db_session).upsert_many(rows)
        assert (caught.value.row, caught.value.field) == (position, field[:64])
        assert await _companies(db_session) == before


class TestScores:
    """Score ranges are checked before SQL."""

    @FUZZ
    @given(case=bad_score_field())
    async def test_create(self, db_session: AsyncSession, case: tuple[str, object]) -> None:
        field, value = case
        values: dict[str, Any] = {"total_score": 50, field: value}
        with pytest.raises(ValidationError) as caught:
            await ScoreRepository(db_session).create(company_id=1, **values)
        assert caught.value.field == field


class TestSignals:
    """Signal creates and COPY ingests refuse bad rows before SQL."""

    @FUZZ
    @given(case=bad_signal_field())
    async def test_create(self, db_session: AsyncSession, case: tuple[str, object]) -> None:
        field, value = case
        values: dict[str, Any] = _valid_signal(1, 0) | {field: value}
        with pytest.raises(ValidationError) as caught:
            await SignalRepository(db_session).create(**values)
        assert caught.value.field == field

    @FUZZ
    @given(case=bad_signal_field(), position=st.integers(0, 9))
    async def test_bulk_ingest(
        self, db_session: AsyncSession, case: tuple[str, object], position: int
    ) -> None:
        field, value = case
        rows = [_valid_signal(1, n) for n in range(10)]
        rows[position][field] = value
        before = await _signals(db_session)
        with pytest.raises(ValidationError) as caught:
            await SignalRepository(db_session).bulk_ingest(rows)
        assert (caught.value.row, caught.value.field) == (position, field)
        assert await _signals(db_session) == before


class TestNothingIsSent:
    """A refused write sends no statement and leaves the transaction usable."""

    async def test_no_sql_and_still_usable(
        self, database: Database, db_session: AsyncSession
    ) -> None:
        repo = CompanyRepository(db_session)
        await repo.count()
        held = await driver_of(db_session)
        async with SentStatements(database.engine, connections=(held,)) as recorder:
            with pytest.raises(ValidationError):
                await repo.create(ticker="OK", name="bad\x00name")
            with pytest.raises(ValidationError):
                await SignalRepository(db_session).bulk_ingest([{"title": 1}])
            await recorder.settle()
            assert recorder.sent == []
            await repo.count()  # the recorder does see statements
        assert len(recorder.sent) == 1
        company = await repo.create(ticker="AFTER", name="Still usable")
        assert company.id > 0

    async def test_messages_name_the_field(self, db_session: AsyncSession) -> None:
        with pytest.raises(ValidationError) as caught:
            await CompanyRepository(db_session).create(ticker="lower", name="x")
        assert str(caught.value).startswith("invalid ticker:")
        assert isinstance(caught.value, ValueError)
