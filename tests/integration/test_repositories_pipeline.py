"""``DrugCandidateRepository`` and ``AcquirerMatchRepository``."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db import (
    AcquirerMatch,
    AcquirerMatchRepository,
    CompanyRepository,
    DevelopmentPhase,
    DrugCandidateRepository,
    ForeignKeyViolationError,
    ValidationError,
)
from biotech_ma_db.testing.factories import (
    make_acquirer_match,
    make_company,
    make_drug_candidate,
)


class TestDrugCandidates:
    """A company's pipeline, by phase."""

    async def test_get_by_company_and_summary(self, db_session: AsyncSession) -> None:
        repo = DrugCandidateRepository(db_session)
        company = await make_company(db_session)
        phases = ["phase_3", "phase_1", "phase_3", "approved"]
        for index, phase in enumerate(phases):
            await make_drug_candidate(
                db_session, company_id=company.id, drug_name=f"D{index}", phase=phase
            )
        everything = await repo.get_by_company(company.id)
        assert [d.drug_name for d in everything] == ["D0", "D1", "D2", "D3"]
        late = await repo.get_by_company(company.id, phases=["phase_3", DevelopmentPhase.APPROVED])
        assert [d.drug_name for d in late] == ["D0", "D2", "D3"]
        summary = await repo.pipeline_summary(company.id)
        assert list(summary) == list(DevelopmentPhase)
        assert summary[DevelopmentPhase.PHASE_3] == 2
        assert summary[DevelopmentPhase.PRECLINICAL] == 0
        assert sum(summary.values()) == 4

    async def test_empty_and_bad_phase(self, db_session: AsyncSession) -> None:
        repo = DrugCandidateRepository(db_session)
        company = await make_company(db_session)
        assert await repo.get_by_company(company.id) == []
        assert set((await repo.pipeline_summary(company.id)).values()) == {0}
        with pytest.raises(ValidationError):
            await repo.get_by_company(company.id, phases=["phase_9"])

    async def test_create_validates(self, db_session: AsyncSession) -> None:
        repo = DrugCandidateRepository(db_session)
        company = await make_company(db_session)
        drug = await repo.create(
            company_id=company.id, drug_name="BMA-1", phase="preclinical", peak_sales_estimate_usd=5
        )
        assert drug.phase is DevelopmentPhase.PRECLINICAL
        with pytest.raises(ValidationError):
            await repo.create(company_id=company.id, drug_name="BMA-2", phase="phase_4")


class TestAcquirerMatches:
    """Ranked matches, replaced atomically."""

    async def test_replace_ranks_and_reads(self, db_session: AsyncSession) -> None:
        repo = AcquirerMatchRepository(db_session)
        target = await make_company(db_session)
        acquirers = [await make_company(db_session) for _ in range(4)]
        await make_acquirer_match(
            db_session, target_company_id=target.id, acquirer_company_id=acquirers[0].id
        )
        new = await repo.replace_matches_for_target(
            target.id,
            [
                {"acquirer_company_id": acquirers[1].id, "strategic_fit_score": 55},
                {"acquirer_company_id": acquirers[2].id, "strategic_fit_score": 91.5},
                {
                    "acquirer_company_id": acquirers[3].id,
                    "strategic_fit_score": 77,
                    "estimated_value_low_usd": 1,
                    "estimated_value_high_usd": 2,
                },
            ],
        )
        assert [(m.acquirer_company_id, m.match_rank, m.is_top_match) for m in new] == [
            (acquirers[2].id, 1, True),
            (acquirers[3].id, 2, False),
            (acquirers[1].id, 3, False),
        ]
        top = await repo.get_top_matches_for_target(target.id, limit=2)
        assert [m.acquirer_company_id for m in top] == [acquirers[2].id, acquirers[3].id]
        assert top[0].acquirer_company.ticker == acquirers[2].ticker
        assert await repo.count(AcquirerMatch.target_company_id == target.id) == 3

        targets = await repo.get_targets_for_acquirer(acquirers[3].id)
        assert [m.target_company_id for m in targets] == [target.id]
        assert targets[0].target_company.id == target.id

        await CompanyRepository(db_session).delete(acquirers[2].id)
        top = await repo.get_top_matches_for_target(target.id)
        assert [m.acquirer_company_id for m in top] == [acquirers[3].id, acquirers[1].id]

    async def test_replace_with_nothing(self, db_session: AsyncSession) -> None:
        repo = AcquirerMatchRepository(db_session)
        match = await make_acquirer_match(db_session)
        assert await repo.replace_matches_for_target(match.target_company_id, []) == []
        assert await repo.get_top_matches_for_target(match.target_company_id) == []

    async def test_failed_replace_keeps_the_old_matches(self, db_session: AsyncSession) -> None:
        repo = AcquirerMatchRepository(db_session)
        match = await make_acquirer_match(db_session)
        target = match.target_company_id
        with pytest.raises(ForeignKeyViolationError):
            # Valid values, but no such acquirer: refused by the database, in the savepoint.
            await repo.replace_matches_for_target(
                target, [{"acquirer_company_id": 987654321, "strategic_fit_score": 50}]
            )
        remaining = await repo.get_top_matches_for_target(target)
        assert [m.id for m in remaining] == [match.id]

    async def test_bad_matches_are_refused_before_sql(self, db_session: AsyncSession) -> None:
        repo = AcquirerMatchRepository(db_session)
        target = await make_company(db_session)
        other = await make_company(db_session)
        cases: list[tuple[list[dict[str, object]], str]] = [
            ([{"acquirer_company_id": target.id, "strategic_fit_score": 5}], "acquirer_company_id"),
            (
                [{"acquirer_company_id": other.id, "strategic_fit_score": 101}],
                "strategic_fit_score",
            ),
            (
                [
                    {"acquirer_company_id": other.id, "strategic_fit_score": 1},
                    {"acquirer_company_id": other.id, "strategic_fit_score": 2},
                ],
                "acquirer_company_id",
            ),
            (
                [{"acquirer_company_id": other.id, "strategic_fit_score": 1, "match_rank": 1}],
                "match_rank",
            ),
            (
                [
                    {
                        "acquirer_company_id": other.id,
                        "strategic_fit_score": 1,
                        "estimated_value_low_usd": Decimal(9),
                        "estimated_value_high_usd": Decimal(3),
                    }
                ],
                "estimated_value_low_usd",
            ),
        ]
        for matches, field in cases:
            with pytest.raises(ValidationError) as caught:
                await repo.replace_matches_for_target(target.id, matches)
            assert caught.value.field == field
