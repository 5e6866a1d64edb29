"""``ScoreRepository``: score changes, history, top scores, percentile ranks, upsert."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db import (
    ConflictError,
    InvalidQueryError,
    MAScore,
    ScoreRepository,
    ValidationError,
)
from biotech_ma_db.repositories.score import today_utc
from biotech_ma_db.testing.factories import make_company, make_score

DAY = dt.date(2025, 6, 30)


def _expected_rank(score: Decimal, cohort: list[Decimal]) -> Decimal:
    """percent_rank(): (rank - 1) / (n - 1), rank counting ties once, rounded to 4 places."""
    if len(cohort) == 1:
        return Decimal("0.0000")
    below = sum(1 for other in cohort if other < score)
    exact = Fraction(below, len(cohort) - 1)
    return (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(
        Decimal("0.0001"), rounding=ROUND_HALF_UP
    )


class TestCreate:
    """``create`` fills 30- and 90-day changes from the nearest earlier score."""

    async def test_changes_from_history(self, db_session: AsyncSession) -> None:
        repo = ScoreRepository(db_session)
        company = await make_company(db_session)
        history = {
            DAY - dt.timedelta(days=120): Decimal("40.00"),
            DAY - dt.timedelta(days=95): Decimal("45.50"),
            DAY - dt.timedelta(days=45): Decimal("60.00"),
            DAY - dt.timedelta(days=29): Decimal("99.00"),  # too recent for the 30-day mark
        }
        for day, total in history.items():
            await make_score(db_session, company_id=company.id, score_date=day, total_score=total)
        score = await repo.create(
            company_id=company.id,
            total_score=85.5,
            pipeline_score=90.0,
            financial_score=75.0,
            key_drivers=["Late-stage pipeline", "Cash runway < 12mo"],
            score_date=DAY,
        )
        assert score.total_score == Decimal("85.5")
        assert score.score_change_30d == Decimal("85.5") - Decimal("60.00")
        assert score.score_change_90d == Decimal("85.5") - Decimal("45.50")
        assert score.key_drivers == ["Late-stage pipeline", "Cash runway < 12mo"]

    async def test_no_history_no_change(self, db_session: AsyncSession) -> None:
        company = await make_company(db_session)
        score = await ScoreRepository(db_session).create(company_id=company.id, total_score=10)
        assert score.score_date == today_utc()
        assert (score.score_change_30d, score.score_change_90d) == (None, None)

    async def test_one_score_per_day(self, db_session: AsyncSession) -> None:
        repo = ScoreRepository(db_session)
        company = await make_company(db_session)
        await repo.create(company_id=company.id, total_score=10, score_date=DAY)
        with pytest.raises(ConflictError):
            await repo.create(company_id=company.id, total_score=11, score_date=DAY)

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("total_score", 100.01),
            ("total_score", -1),
            ("pipeline_score", 101),
            ("percentile_rank", 1.5),
        ],
    )
    async def test_ranges(self, db_session: AsyncSession, field: str, value: float) -> None:
        company = await make_company(db_session)
        values: dict[str, object] = {"total_score": 50, field: value}
        with pytest.raises(ValidationError) as caught:
            await ScoreRepository(db_session).create(company_id=company.id, **values)  # type: ignore[arg-type]
        assert caught.value.field == field


class TestReads:
    """Latest, history (oldest first) and top scores."""

    async def test_latest_and_history(self, db_session: AsyncSession) -> None:
        repo = ScoreRepository(db_session)
        company = await make_company(db_session)
        today = today_utc()
        for age in (200, 60, 10, 0):
            await make_score(
                db_session,
                company_id=company.id,
                score_date=today - dt.timedelta(days=age),
                total_score=Decimal(100 - age // 4),
            )
        latest = await repo.get_latest_by_company(company.id)
        assert latest is not None
        assert latest.score_date == today
        history = await repo.get_history(company.id, days=90)
        assert [s.score_date for s in history] == [
            today - dt.timedelta(days=60),
            today - dt.timedelta(days=10),
            today,
        ]
        empty = await make_company(db_session)
        assert await repo.get_latest_by_company(empty.id) is None
        assert await repo.get_history(empty.id) == []
        with pytest.raises(ValidationError):
            await repo.get_history(company.id, days=-1)

    async def test_top_scores_latest_per_company(self, db_session: AsyncSession) -> None:
        repo = ScoreRepository(db_session)
        day = dt.date(1999, 1, 1)
        low = await make_company(db_session)
        high = await make_company(db_session)
        gone = await make_company(db_session)
        # Old scores above 100 - epsilon would win if history were not collapsed per company.
        await make_score(db_session, company_id=low.id, score_date=day, total_score=Decimal(100))
        await make_score(
            db_session,
            company_id=low.id,
            score_date=day + dt.timedelta(days=1),
            total_score=Decimal("99.97"),
        )
        await make_score(
            db_session,
            company_id=high.id,
            score_date=day + dt.timedelta(days=1),
            total_score=Decimal("99.98"),
        )
        await make_score(
            db_session, company_id=gone.id, score_date=day, total_score=Decimal("99.99")
        )
        gone.deleted_at = dt.datetime.now(dt.UTC)
        await db_session.flush()

        top = await repo.get_top_scores(limit=500)
        mine = [s for s in top if s.company_id in {low.id, high.id, gone.id}]
        assert [(s.company_id, s.total_score) for s in mine] == [
            (high.id, Decimal("99.98")),
            (low.id, Decimal("99.97")),
        ]
        assert mine[0].company.ticker == high.ticker
        totals = [s.total_score for s in top]
        assert totals == sorted(totals, reverse=True)
        assert len({s.company_id for s in top}) == len(top)

        on_day = await repo.get_top_scores(limit=2, score_date=day)
        assert [s.company_id for s in on_day][:1] == [low.id]

    async def test_top_scores_match_distinct_on(self, db_session: AsyncSession) -> None:
        """The per-company index probe returns what ``DISTINCT ON (company_id)`` does."""
        repo = ScoreRepository(db_session)
        start = dt.date(1998, 1, 1)
        for n in range(30):
            company = await make_company(db_session)
            for week in range(n % 4 + 1):
                await make_score(
                    db_session,
                    company_id=company.id,
                    score_date=start + dt.timedelta(weeks=week),
                    total_score=Decimal((n * 37 + week * 11) % 100),
                )
            if n % 7 == 0:
                company.deleted_at = dt.datetime.now(dt.UTC)
        await db_session.flush()
        expected = (
            await db_session.execute(
                text(
                    "SELECT s.id FROM ma_scores s JOIN companies c ON c.id = s.company_id "
                    "WHERE c.deleted_at IS NULL AND s.id IN (SELECT DISTINCT ON (company_id) id "
                    "FROM ma_scores ORDER BY company_id, score_date DESC) "
                    "ORDER BY s.total_score DESC, s.company_id, s.id LIMIT 500"
                )
            )
        ).scalars()
        assert [s.id for s in await repo.get_top_scores(limit=500)] == list(expected)

    async def test_top_scores_bad_limit(self, db_session: AsyncSession) -> None:
        with pytest.raises(InvalidQueryError, match="limit"):
            await ScoreRepository(db_session).get_top_scores(limit=0)


class TestPercentileRanks:
    """One UPDATE ranks every score of a day against the others of that day."""

    async def test_against_python(self, db_session: AsyncSession) -> None:
        repo = ScoreRepository(db_session)
        days = [dt.date(1990, 1, 1), dt.date(1990, 1, 2)]
        totals = {
            days[0]: [Decimal(v) for v in ("10", "20", "20", "35.5", "80", "99.99", "0")],
            days[1]: [Decimal("50")],
        }
        made: list[MAScore] = []
        for day, values in totals.items():
            for value in values:
                made.append(await make_score(db_session, score_date=day, total_score=value))
        assert await repo.update_percentile_ranks(score_date=days[0]) == len(totals[days[0]])
        assert await repo.update_percentile_ranks() >= len(totals[days[1]])
        for score in made:
            fresh = await repo.get_or_raise(score.id)
            await db_session.refresh(fresh)
            expected = _expected_rank(fresh.total_score, totals[fresh.score_date])
            assert fresh.percentile_rank == expected, (fresh.total_score, expected)

    async def test_empty_day(self, db_session: AsyncSession) -> None:
        assert await ScoreRepository(db_session).update_percentile_ranks(dt.date(1900, 1, 1)) == 0

    async def test_only_changed_ranks_are_written(self, db_session: AsyncSession) -> None:
        repo = ScoreRepository(db_session)
        day = dt.date(1991, 5, 6)
        made = [
            await make_score(db_session, score_date=day, total_score=Decimal(v))
            for v in (40, 50, 60, 70)
        ]

        async def versions() -> dict[int, str]:
            # ctid moves with every UPDATE of a row, even one that changes nothing.
            rows = await db_session.execute(
                text("SELECT id, ctid::text FROM ma_scores WHERE score_date = :day"), {"day": day}
            )
            return {row.id: row.ctid for row in rows}

        assert await repo.update_percentile_ranks(day) == 4
        before = await versions()
        assert await repo.update_percentile_ranks(day) == 0
        assert await versions() == before

        # A new lowest score shifts every rank but the top one (still 1).
        low = await make_score(db_session, score_date=day, total_score=Decimal(10))
        assert await repo.update_percentile_ranks(day) == 4
        after = await versions()
        top = made[-1].id
        assert after[top] == before[top]
        assert all(after[score.id] != before[score.id] for score in made[:-1])
        ranks = await db_session.execute(
            text("SELECT id, percentile_rank FROM ma_scores WHERE score_date = :day"), {"day": day}
        )
        expected = dict(
            zip(
                [low.id, *(score.id for score in made)], ("0", ".25", ".5", ".75", "1"), strict=True
            )
        )
        assert {row.id: row.percentile_rank for row in ranks} == {
            key: Decimal(value) for key, value in expected.items()
        }


class TestUpsertMany:
    """``upsert_many`` updates the company's score of that day or inserts one."""

    async def test_insert_and_update(self, db_session: AsyncSession) -> None:
        repo = ScoreRepository(db_session)
        companies = [await make_company(db_session) for _ in range(10)]
        for company in companies[:2]:
            await make_score(db_session, company_id=company.id, score_date=DAY, total_score=1)
        rows: list[dict[str, object]] = [
            {"company_id": c.id, "score_date": DAY, "total_score": 70 + i, "model_version": "v2"}
            for i, c in enumerate(companies)
        ]
        assert await repo.upsert_many(rows) == 10
        db_session.expunge_all()
        stored = await repo.list(
            MAScore.company_id.in_([c.id for c in companies]), MAScore.score_date == DAY
        )
        assert sorted(s.total_score for s in stored) == [Decimal(70 + i) for i in range(10)]
        assert {s.model_version for s in stored} == {"v2"}

    async def test_duplicates_refused(self, db_session: AsyncSession) -> None:
        company = await make_company(db_session)
        rows: list[dict[str, object]] = [
            {"company_id": company.id, "score_date": DAY, "total_score": 1},
            {"company_id": company.id, "score_date": DAY, "total_score": 2},
        ]
        with pytest.raises(ValidationError) as caught:
            await ScoreRepository(db_session).upsert_many(rows)
        assert caught.value.row == 1
