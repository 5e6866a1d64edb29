"""``CompanyRepository.search_rows``: the companies ``search`` returns, as untracked rows."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NamedTuple

import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db import Company, CompanyRepository, CompanyRow, Database, models
from biotech_ma_db.errors import InvalidQueryError, ValidationError
from biotech_ma_db.repositories import _fast
from biotech_ma_db.repositories.company import _SHAPES
from biotech_ma_db.testing.factories import make_company

SEARCHES: tuple[Mapping[str, Any], ...] = (
    {"therapeutic_areas": ["rowpath"]},
    {"therapeutic_areas": ["rowpath", "oncology"], "min_market_cap": 5 * 10**9},
    {"therapeutic_areas": ["rowpath"], "max_market_cap": Decimal(7 * 10**9), "limit": 2},
    {"therapeutic_areas": ["rowpath"], "order_by": "name", "offset": 1},
    {"therapeutic_areas": ["rowpath"], "order_by": ("founded_year", "desc")},
    {"therapeutic_areas": ["rowpath"], "cash_constrained": True},
    {"therapeutic_areas": ["rowpath"], "query": "ROWPATH", "order_by": "ticker"},
    {"query": "%"},  # a literal percent sign: matches nothing
)


@pytest.fixture(name="driver_reads")
def fixture_driver_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts statements sent by the fast path (to prove it ran, or did not)."""
    calls: list[int] = []
    original = _fast._fetch

    async def counting(*args: Any) -> Any:
        ran = await original(*args)
        calls.append(-1 if ran is None else len(ran[1]))
        return ran

    monkeypatch.setattr(_fast, "_fetch", counting)
    return calls


async def _companies(session: AsyncSession) -> list[Company]:
    made = []
    for index, cap in enumerate((5, 7, None, 7, 3, 9, 2)):
        made.append(
            await make_company(
                session,
                name=f"Rowpath {index} Bio",
                market_cap_usd=None if cap is None else Decimal(cap) * 10**9 + Decimal("0.25"),
                therapeutic_areas=["oncology", "rowpath"] if index % 2 == 0 else ["rowpath"],
                cash_position_usd=Decimal(10_000_000 * (index + 1)),
                quarterly_burn_usd=Decimal(30_000_000),
                founded_year=None if index == 4 else 2000 + index,
                exchange=None if index == 1 else "NASDAQ",
            )
        )
    gone = await make_company(session, name="Rowpath gone", therapeutic_areas=["rowpath"])
    await CompanyRepository(session).delete(gone.id)
    await session.flush()
    return made


def _as_row(company: Company) -> CompanyRow:
    return CompanyRow(**{field: getattr(company, field) for field in CompanyRow._fields})


def _typed(row: tuple[object, ...]) -> list[tuple[type, object]]:
    return [(type(value), value) for value in row]


class TestSameCompaniesAsSearch:
    async def test_every_shape_returns_searchs_companies_column_for_column(
        self, db_session: AsyncSession, driver_reads: list[int]
    ) -> None:
        await _companies(db_session)
        db_session.expunge_all()
        repo = CompanyRepository(db_session)
        for kwargs in SEARCHES:
            rows = await repo.search_rows(**kwargs)
            assert len(db_session.sync_session.identity_map) == 0, kwargs
            tracked = await repo.search(**kwargs)
            expected = [_as_row(company) for company in tracked]
            assert [_typed(row) for row in rows] == [_typed(row) for row in expected], kwargs
            assert all(type(row) is CompanyRow for row in rows)
            db_session.expunge_all()
        # The fast path answered all but the two text searches (ORM), for both methods.
        assert len([n for n in driver_reads if n >= 0]) == 2 * (len(SEARCHES) - 2)
        assert len(await repo.search_rows(**SEARCHES[0])) == 7

    async def test_soft_deleted_companies_are_left_out(self, db_session: AsyncSession) -> None:
        made = await _companies(db_session)
        rows = await CompanyRepository(db_session).search_rows(therapeutic_areas=["rowpath"])
        assert {row.id for row in rows} == {company.id for company in made}
        assert all(row.deleted_at is None for row in rows)

    async def test_a_borrowed_connection_gives_the_same_rows(
        self, fresh_database: Database, driver_reads: list[int]
    ) -> None:
        async with fresh_database.session() as session:
            await _companies(session)
        async with fresh_database.session() as session:
            rows = await CompanyRepository(session).search_rows(therapeutic_areas=["rowpath"])
            assert not session.in_transaction()
            tracked = await CompanyRepository(session).search(therapeutic_areas=["rowpath"])
        assert rows == [_as_row(company) for company in tracked]
        assert driver_reads == [7, 7]


class TestUntracked:
    async def test_pending_changes_are_flushed_first_and_objects_are_left_alone(
        self, db_session: AsyncSession, driver_reads: list[int]
    ) -> None:
        made = await _companies(db_session)
        target = made[0]
        target.market_cap_usd = Decimal(10**12)  # pending: autoflush must write it first
        rows = await CompanyRepository(db_session).search_rows(therapeutic_areas=["rowpath"])
        assert driver_reads == []  # the ORM path ran, after flushing
        assert rows[0].id == target.id
        assert rows[0].market_cap_usd == Decimal(10**12)
        assert rows[0].version == target.version
        assert target in db_session
        assert target not in db_session.dirty

    async def test_rows_are_snapshots(self, db_session: AsyncSession) -> None:
        made = await _companies(db_session)
        db_session.expunge_all()
        repo = CompanyRepository(db_session)
        row = (await repo.search_rows(therapeutic_areas=["rowpath"], limit=1))[0]
        with pytest.raises(AttributeError):
            row.name = "changed"  # type: ignore[misc]
        assert row._asdict()["ticker"] == row.ticker
        assert row.ticker in {company.ticker for company in made}
        assert len(db_session.sync_session.identity_map) == 0


class TestRefusedBeforeSql:
    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            ({"limit": 0}, InvalidQueryError),
            ({"limit": 501}, InvalidQueryError),
            ({"offset": -1}, InvalidQueryError),
            ({"order_by": "password"}, InvalidQueryError),
            ({"order_by": "name; DROP TABLE companies"}, InvalidQueryError),
            ({"min_market_cap": "lots"}, ValidationError),
            ({"therapeutic_areas": "oncology"}, ValidationError),
            ({"cash_constrained": "yes"}, ValidationError),
            ({"query": "x" * 201}, ValidationError),
        ],
    )
    async def test_bad_arguments(
        self,
        db_session: AsyncSession,
        driver_reads: list[int],
        kwargs: dict[str, Any],
        error: type[Exception],
    ) -> None:
        repo = CompanyRepository(db_session)
        with pytest.raises(error):
            await repo.search_rows(**kwargs)
        with pytest.raises(error):
            await repo.search(**kwargs)
        assert driver_reads == []


class TestRowShape:
    def test_fields_are_the_models_columns_in_mapper_order_with_its_types(self) -> None:
        mapper = inspect(Company)
        assert CompanyRow._fields == tuple(attr.key for attr in mapper.column_attrs)
        row_types = typing.get_type_hints(CompanyRow)
        model_types = typing.get_type_hints(Company, localns=vars(models))
        for field in CompanyRow._fields:
            assert typing.get_args(model_types[field]) == (row_types[field],), field

    async def test_a_row_type_that_does_not_match_is_refused(
        self, db_session: AsyncSession
    ) -> None:
        class Wrong(NamedTuple):
            id: int
            ticker: str

        await CompanyRepository(db_session).search_rows(therapeutic_areas=["oncology"])
        query = next(iter(_SHAPES._queries.values()))
        with pytest.raises(TypeError, match="Wrong"):
            await _fast.fetch_rows(db_session, query, {}, Wrong)
