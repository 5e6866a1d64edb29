"""``AcquirerMatchRepository``: ranked acquirers of a target, and targets of an acquirer."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import ClassVar

from sqlalchemy import select
from sqlalchemy.orm import aliased, contains_eager

from biotech_ma_db.errors import ValidationError
from biotech_ma_db.models import AcquirerMatch, Company
from biotech_ma_db.repositories.base import Repository, check_id, translating_errors
from biotech_ma_db.repositories.query import (
    DEFAULT_LIMIT,
    ColumnAttribute,
    SortSpec,
    check_limit,
)

__all__ = ["AcquirerMatchRepository"]

_ASSIGNED = frozenset({"target_company_id", "match_rank", "is_top_match"})


class AcquirerMatchRepository(Repository[AcquirerMatch]):
    """Target-acquirer pairings, ranked by strategic fit."""

    model = AcquirerMatch
    sortable: ClassVar[Mapping[str, ColumnAttribute]] = {
        "id": AcquirerMatch.id,
        "match_date": AcquirerMatch.match_date,
        "match_rank": AcquirerMatch.match_rank,
        "strategic_fit_score": AcquirerMatch.strategic_fit_score,
        "estimated_value_high_usd": AcquirerMatch.estimated_value_high_usd,
        "estimated_premium_pct": AcquirerMatch.estimated_premium_pct,
    }
    filterable: ClassVar[Mapping[str, ColumnAttribute]] = {
        **sortable,
        "target_company_id": AcquirerMatch.target_company_id,
        "acquirer_company_id": AcquirerMatch.acquirer_company_id,
        "is_top_match": AcquirerMatch.is_top_match,
    }
    default_order: ClassVar[SortSpec] = "-strategic_fit_score"

    async def get_top_matches_for_target(
        self, target_company_id: int, limit: int = 5
    ) -> builtins.list[AcquirerMatch]:
        """The target's best acquirers by rank, each with ``acquirer_company`` loaded.

        Acquirers that are soft-deleted are left out.
        """
        check_id(target_company_id, "target_company_id")
        acquirer = aliased(Company)
        stmt = (
            select(AcquirerMatch)
            .join(acquirer, AcquirerMatch.acquirer_company)
            .where(
                AcquirerMatch.target_company_id == target_company_id,
                acquirer.deleted_at.is_(None),
            )
            .options(contains_eager(AcquirerMatch.acquirer_company.of_type(acquirer)))
            .order_by(
                AcquirerMatch.match_rank.asc().nulls_last(),
                AcquirerMatch.strategic_fit_score.desc(),
                AcquirerMatch.id,
            )
            .limit(check_limit(limit))
            .execution_options(populate_existing=True)
        )
        return await self._scalars(stmt)

    async def get_targets_for_acquirer(
        self, acquirer_company_id: int, limit: int = DEFAULT_LIMIT
    ) -> builtins.list[AcquirerMatch]:
        """Targets matched to an acquirer, best fit first, each with ``target_company``."""
        check_id(acquirer_company_id, "acquirer_company_id")
        target = aliased(Company)
        stmt = (
            select(AcquirerMatch)
            .join(target, AcquirerMatch.target_company)
            .where(
                AcquirerMatch.acquirer_company_id == acquirer_company_id,
                target.deleted_at.is_(None),
            )
            .options(contains_eager(AcquirerMatch.target_company.of_type(target)))
            .order_by(AcquirerMatch.strategic_fit_score.desc(), AcquirerMatch.id)
            .limit(check_limit(limit))
            .execution_options(populate_existing=True)
        )
        return await self._scalars(stmt)

    async def replace_matches_for_target(
        self, target_company_id: int, matches: Sequence[Mapping[str, object]]
    ) -> builtins.list[AcquirerMatch]:
        """Replace all of a target's matches with ``matches``, re-ranked, atomically.

        The new matches are ranked 1..n by ``strategic_fit_score`` (highest first; ties by
        acquirer id) and rank 1 becomes ``is_top_match``.  Old and new rows change inside
        one savepoint of the session's transaction: on any error the previous matches
        stay as they were.

        Args:
            target_company_id: The target.
            matches: Mappings of ``acquirer_company_id``, ``strategic_fit_score`` and any
                other column except ``target_company_id``, ``match_rank`` and
                ``is_top_match`` (which are assigned here).

        Returns:
            The new matches, in rank order.

        Raises:
            ValidationError: Before any SQL, naming the row and field.
        """
        check_id(target_company_id, "target_company_id")
        rows: builtins.list[dict[str, object]] = []
        seen: dict[object, int] = {}
        for index, match in enumerate(matches):
            assigned = sorted(_ASSIGNED & set(match))
            if assigned:
                raise ValidationError(assigned[0], "is assigned by the ranking", row=index)
            row = self.rules.create({**match, "target_company_id": target_company_id}, row=index)
            acquirer = row["acquirer_company_id"]
            if acquirer in seen:
                problem = f"acquirer also given in row {seen[acquirer]}"
                raise ValidationError("acquirer_company_id", problem, row=index)
            seen[acquirer] = index
            rows.append(row)
        rows.sort(key=_rank_key)
        new = [
            AcquirerMatch(**row, match_rank=rank, is_top_match=rank == 1)
            for rank, row in enumerate(rows, start=1)
        ]
        with translating_errors():
            async with self.session.begin_nested():
                old = await self.session.scalars(
                    select(AcquirerMatch).where(
                        AcquirerMatch.target_company_id == target_company_id
                    )
                )
                for previous in old.all():
                    await self.session.delete(previous)
                await self.session.flush()
                self.session.add_all(new)
                await self.session.flush()
        return new


def _rank_key(row: Mapping[str, object]) -> tuple[Decimal, int]:
    score = row["strategic_fit_score"]
    acquirer = row["acquirer_company_id"]
    assert isinstance(score, Decimal)
    assert isinstance(acquirer, int)
    return (-score, acquirer)
