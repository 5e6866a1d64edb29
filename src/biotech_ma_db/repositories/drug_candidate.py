"""``DrugCandidateRepository``: a company's pipeline."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import ClassVar

from sqlalchemy import func, select

from biotech_ma_db.models import DevelopmentPhase, DrugCandidate
from biotech_ma_db.repositories.base import Repository, check_id
from biotech_ma_db.repositories.query import ColumnAttribute, SortSpec

__all__ = ["DrugCandidateRepository"]


class DrugCandidateRepository(Repository[DrugCandidate]):
    """Drug candidates, by company and development phase."""

    model = DrugCandidate
    sortable: ClassVar[Mapping[str, ColumnAttribute]] = {
        "id": DrugCandidate.id,
        "drug_name": DrugCandidate.drug_name,
        "phase": DrugCandidate.phase,
        "patent_expiry_date": DrugCandidate.patent_expiry_date,
        "peak_sales_estimate_usd": DrugCandidate.peak_sales_estimate_usd,
        "created_at": DrugCandidate.created_at,
    }
    filterable: ClassVar[Mapping[str, ColumnAttribute]] = {
        **sortable,
        "company_id": DrugCandidate.company_id,
        "therapeutic_area": DrugCandidate.therapeutic_area,
        "regulatory_status": DrugCandidate.regulatory_status,
    }
    default_order: ClassVar[SortSpec] = "drug_name"

    async def get_by_company(
        self,
        company_id: int,
        phases: Sequence[DevelopmentPhase | str] | None = None,
    ) -> builtins.list[DrugCandidate]:
        """A company's drug candidates, optionally only in some phases, by name."""
        check_id(company_id, "company_id")
        stmt = select(DrugCandidate).where(DrugCandidate.company_id == company_id)
        if phases is not None:
            wanted = [self.rules.value("phase", phase) for phase in phases]
            stmt = stmt.where(DrugCandidate.phase.in_(wanted))
        return await self._scalars(stmt.order_by(DrugCandidate.drug_name, DrugCandidate.id))

    async def pipeline_summary(self, company_id: int) -> dict[DevelopmentPhase, int]:
        """How many candidates the company has in each phase (every phase listed, in order).

        One ``GROUP BY`` query; phases without candidates count 0.
        """
        check_id(company_id, "company_id")
        stmt = (
            select(DrugCandidate.phase, func.count())
            .where(DrugCandidate.company_id == company_id)
            .group_by(DrugCandidate.phase)
        )
        rows = (await self._execute(stmt)).all()
        counts = {DevelopmentPhase(row[0]): int(row[1]) for row in rows}
        return {phase: counts.get(phase, 0) for phase in DevelopmentPhase}
