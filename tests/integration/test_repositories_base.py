"""The generic repository core, exercised through ``CompanyRepository``."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db import (
    Company,
    CompanyRepository,
    ConcurrencyError,
    ConflictError,
    InvalidQueryError,
    NotFoundError,
    ScoreRepository,
    ValidationError,
)
from biotech_ma_db.repositories import MAX_LIMIT, ClientRepository, WebhookRepository
from biotech_ma_db.testing.factories import make_company, make_signal


async def _companies(session: AsyncSession, count: int, **overrides: object) -> list[Company]:
    return [await make_company(session, **overrides) for _ in range(count)]


class TestGet:
    """``get``/``get_or_raise``/``get_many``/``find_one`` read by key and columns."""

    async def test_get_returns_the_row(self, db_session: AsyncSession) -> None:
        company = await make_company(db_session)
        repo = CompanyRepository(db_session)
        assert await repo.get(company.id) is company

    async def test_get_missing_is_none(self, db_session: AsyncSession) -> None:
        assert await CompanyRepository(db_session).get(987654321) is None

    async def test_get_or_raise_missing(self, db_session: AsyncSession) -> None:
        with pytest.raises(NotFoundError) as caught:
            await CompanyRepository(db_session).get_or_raise(987654321)
        assert caught.value.entity == "Company"
        assert isinstance(caught.value, LookupError)

    async def test_get_rejects_a_non_integer_id(self, db_session: AsyncSession) -> None:
        with pytest.raises(ValidationError):
            await CompanyRepository(db_session).get("1")  # type: ignore[arg-type]

    async def test_soft_deleted_rows_are_hidden(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        company = await make_company(db_session)
        await repo.delete(company.id)
        assert await repo.get(company.id) is None
        assert await repo.get(company.id, include_deleted=True) is company
        assert company.deleted_at is not None

    async def test_get_loads_relationships_on_request(self, db_session: AsyncSession) -> None:
        signal = await make_signal(db_session)
        db_session.expunge_all()
        company = await CompanyRepository(db_session).get(signal.company_id, load=["signals"])
        assert company is not None
        assert [s.id for s in company.signals] == [signal.id]

    async def test_unknown_relationship_is_refused(self, db_session: AsyncSession) -> None:
        company = await make_company(db_session)
        with pytest.raises(InvalidQueryError):
            await CompanyRepository(db_session).get(company.id, load=["__table__"])

    async def test_get_many_skips_missing_and_deleted(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        first, second, third = await _companies(db_session, 3)
        await repo.delete(second.id)
        found = await repo.get_many([third.id, first.id, second.id, 999999999])
        assert [c.id for c in found] == [first.id, third.id]
        assert await repo.get_many([]) == []

    async def test_find_one(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        company = await make_company(db_session, exchange="NYSE")
        assert await repo.find_one(ticker=company.ticker) is company
        assert await repo.find_one(ticker="NOPE") is None

    async def test_find_one_refuses_ambiguity_and_unknown_columns(
        self, db_session: AsyncSession
    ) -> None:
        repo = CompanyRepository(db_session)
        await _companies(db_session, 2, headquarters_country="CH")
        with pytest.raises(InvalidQueryError):
            await repo.find_one(headquarters_country="CH")
        with pytest.raises(InvalidQueryError):
            await repo.find_one(__table__="x")


class TestListCountExists:
    """``list``/``count``/``exists`` filter, sort and cap the page size."""

    async def test_empty_results(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        missing = Company.ticker == "ZZZZZZZZZ"
        assert await repo.list(missing) == []
        assert await repo.count(missing) == 0
        assert await repo.exists(missing) is False

    async def test_sorted_and_limited(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        caps = [5, 3, 9, 1]
        made = [
            await make_company(db_session, market_cap_usd=Decimal(c), exchange="LSE") for c in caps
        ]
        mine = Company.id.in_([c.id for c in made])
        listed = await repo.list(mine, order_by="-market_cap_usd", limit=3)
        assert [c.market_cap_usd for c in listed] == [9, 5, 3]
        listed = await repo.list(mine, order_by=("market_cap_usd", "asc"), offset=1)
        assert [c.market_cap_usd for c in listed] == [3, 5, 9]
        assert await repo.count(mine) == 4
        assert await repo.exists(mine, Company.market_cap_usd > 8)

    async def test_filters_through_the_whitelist(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        await _companies(db_session, 2, headquarters_country="DK")
        await make_company(db_session, headquarters_country="DK", market_cap_usd=Decimal(10))
        assert await repo.count(filters={"headquarters_country": "DK"}) == 3
        assert (
            await repo.count(filters={"headquarters_country": "DK", "market_cap_usd__lt": 100}) == 1
        )
        with pytest.raises(InvalidQueryError):
            await repo.count(filters={"api_key_hash": "x"})
        with pytest.raises(InvalidQueryError):
            await repo.count(filters={"name__regex": "x"})
        with pytest.raises(ValidationError):
            await repo.count(filters={"market_cap_usd": "lots"})

    @pytest.mark.parametrize(
        "spec",
        [
            "unknown",
            "-nope",
            "__table__",
            "metadata",
            "api_key_hash",
            "name; DROP TABLE companies",
            ("name", "sideways"),
            "deleted_at",
            ["name", "name"],
        ],
    )
    async def test_sorting_outside_the_whitelist_is_refused(
        self, db_session: AsyncSession, spec: object
    ) -> None:
        with pytest.raises(InvalidQueryError):
            await CompanyRepository(db_session).list(order_by=spec)  # type: ignore[arg-type]

    async def test_secrets_are_never_sortable(self, db_session: AsyncSession) -> None:
        with pytest.raises(InvalidQueryError):
            await ClientRepository(db_session).list(order_by="api_key_hash")
        with pytest.raises(InvalidQueryError):
            await WebhookRepository(db_session).list(order_by="-secret")

    @pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, True, 2.5])
    async def test_bad_limits_are_refused(self, db_session: AsyncSession, limit: object) -> None:
        with pytest.raises(InvalidQueryError):
            await CompanyRepository(db_session).list(limit=limit)  # type: ignore[arg-type]


class TestSortWhitelistProperty:
    """Arbitrary sort and filter strings are accepted only when whitelisted (T-SEC-5)."""

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(name=st.text(max_size=40))
    async def test_any_string(self, db_session: AsyncSession, name: str) -> None:
        repo = CompanyRepository(db_session)
        bare = name[1:] if name[:1] in {"+", "-"} else name
        if bare in repo.sortable:
            await repo.list(order_by=name, limit=1)
        else:
            with pytest.raises(InvalidQueryError):
                await repo.list(order_by=name, limit=1)
        field = name.partition("__")[0]
        if field not in repo.filterable:
            with pytest.raises(InvalidQueryError):
                await repo.count(filters={name: 1})

    async def test_like_metacharacters_are_literal(self, db_session: AsyncSession) -> None:
        await make_company(db_session, name="100% Bio_Pharma")
        await make_company(db_session, name="100 X BioXPharma")
        repo = CompanyRepository(db_session)
        assert [c.name for c in await repo.search(query="0% bio_")] == ["100% Bio_Pharma"]
        assert [c.name for c in await repo.search(query="%")] == ["100% Bio_Pharma"]
        assert [c.name for c in await repo.search(query="o_p")] == ["100% Bio_Pharma"]


class TestWrites:
    """``create``/``add_many``/``update``/``delete``/``restore`` flush and never commit."""

    async def test_create_fills_server_defaults(self, db_session: AsyncSession) -> None:
        company = await CompanyRepository(db_session).create(
            ticker="WRTE", name="Write Bio", cash_position_usd=300, quarterly_burn_usd=150
        )
        assert company.id > 0
        assert company.created_at is not None
        assert company.version == 1
        assert company.cash_runway_months == Decimal("6.00")
        assert company.cash_constrained is True
        assert db_session.in_transaction()

    async def test_duplicate_ticker_is_a_conflict(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        await repo.create(ticker="DUPE", name="One")
        with pytest.raises(ConflictError) as caught:
            await repo.create(ticker="DUPE", name="Two")
        assert caught.value.constraint == "ix_companies_ticker"

    async def test_add_many(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        rows = await repo.add_many(
            [Company(ticker="ADDA", name="A"), Company(ticker="ADDB", name="B")]
        )
        assert all(row.id for row in rows)
        with pytest.raises(ValidationError) as caught:
            await repo.add_many([Company(ticker="ok", name="lower-case ticker")])
        assert caught.value.field == "ticker"
        assert caught.value.row == 0

    async def test_update_changes_and_bumps_version(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        company = await make_company(db_session)
        updated = await repo.update(company.id, name="Renamed", market_cap_usd=Decimal(42))
        assert updated.name == "Renamed"
        assert updated.version == 2
        assert updated.updated_at >= updated.created_at

    async def test_update_with_expected_version(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        company = await make_company(db_session, name="Before")
        await repo.update(company.id, expected_version=1, name="After")
        with pytest.raises(ConcurrencyError):
            await repo.update(company.id, expected_version=1, name="Stale")
        assert (await repo.get_or_raise(company.id)).name == "After"

    async def test_update_missing_or_deleted(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        company = await make_company(db_session)
        await repo.delete(company.id)
        with pytest.raises(NotFoundError):
            await repo.update(company.id, name="x")
        with pytest.raises(NotFoundError):
            await repo.update(987654321, name="x")

    async def test_soft_delete_then_restore(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        company = await make_company(db_session)
        await repo.delete(company.id)
        with pytest.raises(NotFoundError):
            await repo.delete(company.id)
        restored = await repo.restore(company.id)
        assert restored.deleted_at is None
        assert await repo.get(company.id) is restored

    async def test_restore_into_a_taken_ticker_conflicts(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        old = await make_company(db_session, ticker="REUS")
        await repo.delete(old.id)
        await make_company(db_session, ticker="REUS")
        with pytest.raises(ConflictError):
            await repo.restore(old.id)

    async def test_hard_delete_purges(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        company = await make_company(db_session)
        await repo.delete(company.id)
        await repo.delete(company.id, hard=True)
        assert await repo.get(company.id, include_deleted=True) is None
        gone = await db_session.scalar(select(func.count()).where(Company.id == company.id))
        assert gone == 0

    async def test_models_without_soft_delete(self, db_session: AsyncSession) -> None:
        repo = ScoreRepository(db_session)
        score = await repo.create(company_id=(await make_company(db_session)).id, total_score=1)
        with pytest.raises(InvalidQueryError):
            await repo.restore(score.id)
        await repo.delete(score.id)
        assert await repo.get(score.id) is None


class TestKeysetPages:
    """``page`` walks forwards and backwards without skipping or repeating rows."""

    async def test_three_pages_with_inserts_in_between(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        original = await _companies(db_session, 10, headquarters_country="PG")
        for index, company in enumerate(original):
            company.market_cap_usd = Decimal(index % 4) if index % 5 else None
        await db_session.flush()
        mine = {"headquarters_country": "PG"}
        seen: list[int] = []
        page = await repo.page(filters=mine, order_by="-market_cap_usd", limit=4)
        pages = [page]
        while page.next_cursor is not None:
            seen.extend(c.id for c in page.items)
            # Rows arriving between pages, before and after the cursor position.
            await make_company(db_session, headquarters_country="PG", market_cap_usd=Decimal(9))
            await make_company(db_session, headquarters_country="PG", market_cap_usd=None)
            page = await repo.page(
                filters=mine, order_by="-market_cap_usd", limit=4, after=page.next_cursor
            )
            pages.append(page)
        seen.extend(c.id for c in page.items)
        assert len(pages) >= 3
        assert len(seen) == len(set(seen))
        assert {c.id for c in original} <= set(seen)
        caps = [c.market_cap_usd for p in pages for c in p.items]
        known = [cap for cap in caps if cap is not None]
        assert known == sorted(known, reverse=True)

        back = pages[-1]
        walked: list[int] = [c.id for c in back.items]
        while back.prev_cursor is not None:
            back = await repo.page(
                filters=mine, order_by="-market_cap_usd", limit=4, before=back.prev_cursor
            )
            walked = [c.id for c in back.items] + walked
        assert len(walked) == len(set(walked))
        assert {c.id for c in original} <= set(walked)
        assert back.prev_cursor is None

    async def test_mixed_directions_and_ties(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        made = await _companies(db_session, 7, headquarters_country="TI", founded_year=2000)
        ids: list[int] = []
        cursor: str | None = None
        while True:
            page = await repo.page(
                filters={"headquarters_country": "TI"},
                order_by=["-founded_year", ("name", "asc")],
                limit=3,
                after=cursor,
            )
            ids.extend(c.id for c in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        names = [c.name for c in sorted(made, key=lambda c: c.name)]
        by_id = {c.id: c.name for c in made}
        assert [by_id[i] for i in ids] == names

    async def test_empty_listing(self, db_session: AsyncSession) -> None:
        page = await CompanyRepository(db_session).page(Company.ticker == "NONE")
        assert page.items == []
        assert not page.has_next
        assert not page.has_prev

    @pytest.mark.parametrize(
        "cursor",
        ["garbage", "", "!!!!", base64.urlsafe_b64encode(b"x" * 20).decode(), "A" * 5000],
    )
    async def test_garbage_cursors_are_refused(self, db_session: AsyncSession, cursor: str) -> None:
        with pytest.raises(InvalidQueryError):
            await CompanyRepository(db_session).page(after=cursor)

    async def test_tampered_and_foreign_cursors_are_refused(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        await _companies(db_session, 3, headquarters_country="TC")
        page = await repo.page(filters={"headquarters_country": "TC"}, limit=1)
        assert page.next_cursor is not None
        raw = base64.urlsafe_b64decode(page.next_cursor + "==")
        document = json.loads(raw[8:])
        document["k"][-1] = 1
        forged = raw[:8] + json.dumps(document, separators=(",", ":")).encode()
        with pytest.raises(InvalidQueryError):
            await repo.page(after=base64.urlsafe_b64encode(forged).decode().rstrip("="))
        with pytest.raises(InvalidQueryError):
            await repo.page(order_by="-name", after=page.next_cursor)
        with pytest.raises(InvalidQueryError):
            await repo.page(after=page.next_cursor, before=page.next_cursor)


class TestOffsetPages:
    """``page_with_total`` returns a page and the total count."""

    async def test_total_and_pages(self, db_session: AsyncSession) -> None:
        repo = CompanyRepository(db_session)
        await _companies(db_session, 5, headquarters_country="OF")
        mine = {"headquarters_country": "OF"}
        first = await repo.page_with_total(filters=mine, limit=2)
        last = await repo.page_with_total(filters=mine, limit=2, offset=4)
        beyond = await repo.page_with_total(filters=mine, limit=2, offset=10)
        assert (len(first.items), first.total, first.has_next) == (2, 5, True)
        assert (len(last.items), last.total, last.has_next) == (1, 5, False)
        assert (beyond.items, beyond.total) == ([], 5)
        with pytest.raises(InvalidQueryError):
            await repo.page_with_total(filters=mine, offset=-1)
