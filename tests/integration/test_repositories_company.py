"""``CompanyRepository``: ticker lookup, search and native upsert."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db import Company, CompanyRepository, ValidationError
from biotech_ma_db.testing.factories import make_company


class TestGetByTicker:
    """``get_by_ticker`` finds the live company holding a ticker."""

    async def test_found_missing_and_deleted(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        company = await make_company(db_session, ticker="TICK")
        assert await repo.get_by_ticker("TICK") is company
        assert await repo.get_by_ticker("tick") is None
        assert await repo.get_by_ticker("NOPE") is None
        await repo.delete(company.id)
        assert await repo.get_by_ticker("TICK") is None
        assert await repo.get_by_ticker("TICK", include_deleted=True) is company

    async def test_ticker_reused_after_soft_delete(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        old = await repo.create(ticker="REUS", name="Old")
        await repo.delete(old.id)
        new = await repo.create(ticker="REUS", name="New")
        assert await repo.get_by_ticker("REUS") is new

    async def test_bad_input(self, db_session: AsyncSession) -> None:
        with pytest.raises(ValidationError):
            await CompanyRepository(db_session).get_by_ticker("AB\x00")


class TestSearch:
    """``search`` combines area overlap, market-cap range, cash flag and text."""

    async def test_criteria(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        onc = await make_company(
            db_session,
            name="Oncora Bio",
            therapeutic_areas=["oncology", "rare_disease"],
            market_cap_usd=Decimal("2e9"),
            cash_position_usd=Decimal(10),
            quarterly_burn_usd=Decimal(10),
            headquarters_country="SE",
        )
        neuro = await make_company(
            db_session,
            name="Neuronix",
            therapeutic_areas=["neurology"],
            market_cap_usd=Decimal("5e8"),
            headquarters_country="SE",
        )
        both = await make_company(
            db_session,
            name="Broad Pharma",
            therapeutic_areas=["neurology", "oncology"],
            market_cap_usd=Decimal("9e9"),
            headquarters_country="SE",
        )
        mine = {onc.id, neuro.id, both.id}

        async def ids(**criteria: object) -> list[int]:
            found = await repo.search(**criteria, limit=500)  # type: ignore[arg-type]
            return [c.id for c in found if c.id in mine]

        assert await ids(therapeutic_areas=["oncology"]) == [both.id, onc.id]
        assert await ids(therapeutic_areas=["oncology"], min_market_cap=1_000_000_000) == [
            both.id,
            onc.id,
        ]
        assert await ids(max_market_cap=Decimal("1e9")) == [neuro.id]
        assert await ids(cash_constrained=True) == [onc.id]
        assert await ids(query="NEURO") == [neuro.id]
        assert await ids(query=neuro.ticker.lower()) == [neuro.id]
        assert await ids(therapeutic_areas=["dermatology"]) == []
        ordered = await repo.search(query="o", order_by="name", limit=500)
        names = [c.name for c in ordered if c.id in mine]
        assert names == sorted(names)

    async def test_soft_deleted_are_left_out(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        company = await make_company(db_session, name="Vanishing Bio")
        await repo.delete(company.id)
        assert await repo.search(query="Vanishing") == []

    async def test_bad_criteria(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        with pytest.raises(ValidationError):
            await repo.search(min_market_cap=-5)
        with pytest.raises(ValidationError):
            await repo.search(therapeutic_areas="oncology")
        with pytest.raises(ValidationError):
            await repo.search(query="x" * 201)


class TestUpdate:
    """``update(company_id, **values)`` validates and changes columns."""

    async def test_update(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        company = await make_company(db_session, cash_position_usd=Decimal(100))
        updated = await repo.update(company.id, cash_position_usd=300_000_000)
        assert updated.cash_position_usd == Decimal(300_000_000)
        assert updated.cash_runway_months == Decimal("30.00")
        with pytest.raises(ValidationError):
            await repo.update(company.id, cash_constrained=True)


class TestUpsertMany:
    """``upsert_many`` inserts new tickers and updates live ones in one statement."""

    async def test_twenty_percent_existing(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        existing = [await make_company(db_session, ticker=f"UP{i:03d}") for i in range(20)]
        rows: list[dict[str, object]] = [
            {"ticker": f"UP{i:03d}", "name": f"Upserted {i}", "market_cap_usd": i * 1000}
            for i in range(100)
        ]
        assert await repo.upsert_many(rows) == 100
        db_session.expunge_all()
        stored = {c.ticker: c for c in await repo.list(Company.ticker.like("UP%"), limit=500)}
        assert len(stored) == 100
        assert stored["UP005"].name == "Upserted 5"
        assert stored["UP005"].market_cap_usd == Decimal(5000)
        assert stored["UP005"].id == existing[5].id
        assert stored["UP005"].version == 2
        assert stored["UP050"].version == 1
        assert stored["UP005"].exchange == "NASDAQ"  # columns not given are kept

    async def test_soft_deleted_ticker_gets_a_new_row(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        old = await make_company(db_session, ticker="UPDL")
        await repo.delete(old.id)
        assert await repo.upsert_many([{"ticker": "UPDL", "name": "Fresh"}]) == 1
        assert await repo.count(Company.ticker == "UPDL") == 1
        assert await repo.count(Company.ticker == "UPDL", include_deleted=True) == 2

    async def test_mixed_shapes(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        rows: list[dict[str, object]] = [
            {"ticker": "SHPA", "name": "A"},
            {"ticker": "SHPB", "name": "B", "employee_count": 3},
        ]
        assert await repo.upsert_many(rows) == 2

    async def test_bad_rows_write_nothing(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        rows: list[dict[str, object]] = [
            {"ticker": "BADA", "name": "A"},
            {"ticker": "BADA", "name": "again"},
        ]
        with pytest.raises(ValidationError) as caught:
            await repo.upsert_many(rows)
        assert (caught.value.row, caught.value.field) == (1, "ticker")
        with pytest.raises(ValidationError) as caught:
            await repo.upsert_many([{"ticker": "BADB", "name": "B", "market_cap_usd": -1}])
        assert caught.value.field == "market_cap_usd"
        assert await repo.count(Company.ticker.in_(["BADA", "BADB"])) == 0
        assert await repo.upsert_many([]) == 0

    async def test_errors_name_the_row_as_given_across_shapes(
        self, db_session: AsyncSession
    ) -> None:
        """Rows are grouped by shape to be sent; an error still names the caller's index."""
        repo = CompanyRepository(db_session)
        rows: list[dict[str, object]] = [
            {"ticker": "SHXA", "name": "A"},
            {"ticker": "SHXB", "name": "B", "employee_count": 3},
            {"ticker": "SHXC", "name": "C"},
            {"ticker": "SHXD", "name": "D", "employee_count": -4},
        ]
        with pytest.raises(ValidationError) as caught:
            await repo.upsert_many(rows)
        assert (caught.value.row, caught.value.field) == (3, "employee_count")
        rows[3] = {"ticker": "SHXA", "name": "again", "employee_count": 1}
        with pytest.raises(ValidationError) as caught:
            await repo.upsert_many(rows)
        assert (caught.value.row, caught.value.field) == (3, "ticker")
        assert "row 0" in caught.value.problem
        with pytest.raises(ValidationError) as caught:
            await repo.upsert_many([*rows[:2], {"ticker": "SHXE", "name": "E", "id": 9}])
        assert (caught.value.row, caught.value.field, caught.value.problem) == (
            2,
            "id",
            "is read-only",
        )
        with pytest.raises(ValidationError) as caught:
            await repo.upsert_many([rows[0], ["SHXF", "F"]])  # type: ignore[list-item]
        assert (caught.value.row, caught.value.field) == (1, "rows")
        assert await repo.count(Company.ticker.like("SHX%")) == 0

    async def test_pending_objects_are_flushed_first(self, db_session: AsyncSession) -> None:
        """The upsert sees a company added but not yet flushed, and updates it."""
        repo = CompanyRepository(db_session)
        pending = Company(ticker="PEND", name="Pending")
        db_session.add(pending)
        assert await repo.upsert_many([{"ticker": "PEND", "name": "Upserted"}]) == 1
        await db_session.refresh(pending)
        assert (pending.name, pending.version) == ("Upserted", 2)
        assert await repo.count(Company.ticker == "PEND") == 1

    async def test_areas_and_money_as_given_types(self, db_session: AsyncSession) -> None:
        """Tuples, floats and ints are converted as ``create`` would, column path or not."""
        repo = CompanyRepository(db_session)
        rows: list[dict[str, object]] = [
            {"ticker": "ARA", "name": "A", "therapeutic_areas": ["oncology"]},
            {"ticker": "ARB", "name": "B", "therapeutic_areas": ("neurology",)},
        ]
        assert await repo.upsert_many(rows) == 2
        rows = [
            {"ticker": "ARC", "name": "C", "market_cap_usd": Decimal("10.50")},
            {"ticker": "ARD", "name": "D", "market_cap_usd": 2.25},
        ]
        assert await repo.upsert_many(rows) == 2
        db_session.expunge_all()
        stored = {c.ticker: c for c in await repo.list(Company.ticker.like("AR%"))}
        assert stored["ARB"].therapeutic_areas == ["neurology"]
        assert stored["ARD"].market_cap_usd == Decimal("2.25")
