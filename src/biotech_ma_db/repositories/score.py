"""``ScoreRepository``: daily M&A scores, their history, rankings and percentiles."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Final

from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    ScalarSelect,
    Select,
    Table,
    bindparam,
    cast,
    func,
    inspect,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapper, contains_eager

from biotech_ma_db.errors import ValidationError
from biotech_ma_db.models import Company, MAScore
from biotech_ma_db.repositories._fast import Builder, QueryShapes
from biotech_ma_db.repositories.base import Repository, check_id
from biotech_ma_db.repositories.query import ColumnAttribute, SortSpec, check_limit
from biotech_ma_db.sa_internals import LateralFromClause

__all__ = ["ScoreRepository", "today_utc"]

MAX_HISTORY_DAYS: Final = 36_600
_MAX_UPSERT_ROWS: Final = 100_000
_MAX_PARAMETERS: Final = 30_000


def today_utc() -> dt.date:
    """Today's date in UTC: the default ``score_date``."""
    return dt.datetime.now(dt.UTC).date()


class ScoreRepository(Repository[MAScore]):
    """M&A scores: one per company and day.

    Reads that return scores refresh objects already in the session
    (``populate_existing``), because :meth:`update_percentile_ranks` and
    :meth:`upsert_many` change rows without going through loaded objects.
    """

    model = MAScore
    sortable: ClassVar[Mapping[str, ColumnAttribute]] = {
        "id": MAScore.id,
        "score_date": MAScore.score_date,
        "total_score": MAScore.total_score,
        "pipeline_score": MAScore.pipeline_score,
        "financial_score": MAScore.financial_score,
        "strategic_score": MAScore.strategic_score,
        "signal_score": MAScore.signal_score,
        "percentile_rank": MAScore.percentile_rank,
        "score_change_30d": MAScore.score_change_30d,
        "score_change_90d": MAScore.score_change_90d,
    }
    filterable: ClassVar[Mapping[str, ColumnAttribute]] = {
        **sortable,
        "company_id": MAScore.company_id,
        "model_version": MAScore.model_version,
    }
    default_order: ClassVar[SortSpec] = "-score_date"

    async def create(  # type: ignore[override]  # the original API names these arguments
        self,
        *,
        company_id: int,
        total_score: Decimal | float,
        score_date: dt.date | None = None,
        **values: object,
    ) -> MAScore:
        """Insert a score, filling ``score_change_30d``/``90d`` from the history.

        The change is ``total_score`` minus the company's score nearest at or before
        ``score_date - 30`` (and ``- 90``) days; ``None`` when there is none.  Explicit
        ``score_change_30d``/``score_change_90d`` values win.

        Args:
            company_id: The company scored.
            total_score: 0..100.
            score_date: The day scored; today (UTC) by default.
            **values: Other columns (``pipeline_score``, ``key_drivers``, ...).

        Raises:
            ValidationError: Before any SQL, for a bad value.
            ConflictError: The company already has a score for that day.
        """
        fields = self.rules.create(
            {
                "company_id": company_id,
                "total_score": total_score,
                "score_date": score_date if score_date is not None else today_utc(),
                **values,
            }
        )
        day = fields["score_date"]
        assert isinstance(day, dt.date)
        total = fields["total_score"]
        assert isinstance(total, Decimal)
        if "score_change_30d" not in fields or "score_change_90d" not in fields:
            before_30 = self._score_at_or_before(company_id, day - dt.timedelta(days=30))
            before_90 = self._score_at_or_before(company_id, day - dt.timedelta(days=90))
            row = (await self._execute(select(before_30, before_90))).one()
            for key, reference in (("score_change_30d", row[0]), ("score_change_90d", row[1])):
                if key not in fields:
                    fields[key] = None if reference is None else total - reference
        return await self._insert(fields)

    async def get_latest_by_company(self, company_id: int) -> MAScore | None:
        """The company's most recent score, or ``None``."""
        check_id(company_id, "company_id")
        stmt = (
            select(MAScore)
            .where(MAScore.company_id == company_id)
            .order_by(MAScore.score_date.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        )
        rows = await self._scalars(stmt)
        return rows[0] if rows else None

    async def get_history(self, company_id: int, days: int = 90) -> builtins.list[MAScore]:
        """The company's scores of the last ``days`` days (UTC), oldest first."""
        check_id(company_id, "company_id")
        if type(days) is not int or not 0 <= days <= MAX_HISTORY_DAYS:
            raise ValidationError("days", f"expected an integer from 0 to {MAX_HISTORY_DAYS}")
        since = today_utc() - dt.timedelta(days=days)
        stmt = (
            select(MAScore)
            .where(MAScore.company_id == company_id, MAScore.score_date >= since)
            .order_by(MAScore.score_date)
            .execution_options(populate_existing=True)
        )
        return await self._scalars(stmt)

    async def get_top_scores(
        self, limit: int = 50, score_date: dt.date | None = None
    ) -> builtins.list[MAScore]:
        """The highest scores, each with its ``company`` loaded (live companies only).

        Args:
            limit: How many (1..500).
            score_date: Scores of that day; by default each company's latest score
                (found per company through the ``(company_id, score_date)`` index).
        """
        size = check_limit(limit)
        day = None if score_date is None else self.rules.value("score_date", score_date)
        fast = _SHAPES.get(
            ("top", day is not None),
            _MAPPER,
            _top_query(by_date=day is not None),
            joined=("company", _COMPANY_MAPPER),
        )
        found = await self._fast(fast, {"limit": size, "score_date": day})
        if found is not None:
            return found
        if day is not None:
            stmt = select(MAScore).join(MAScore.company).where(MAScore.score_date == day)
        else:
            latest = _latest_score_ids(_COMPANIES.c.id)
            stmt = (
                select(MAScore)
                .select_from(Company)
                .join(latest, true())
                .join(MAScore, MAScore.id == latest.c.id)
            )
        stmt = (
            stmt.where(Company.deleted_at.is_(None))
            .options(contains_eager(MAScore.company))
            .order_by(MAScore.total_score.desc(), MAScore.company_id, MAScore.id)
            .limit(size)
            .execution_options(populate_existing=True)
        )
        return await self._scalars(stmt)

    async def update_percentile_ranks(self, score_date: dt.date | None = None) -> int:
        """Bring ``percentile_rank`` (0..1, ``percent_rank()`` by ``total_score``) up to date.

        One ``UPDATE ... FROM (SELECT ... percent_rank() OVER (PARTITION BY score_date
        ORDER BY total_score))``: for ``score_date`` only, or for every day when ``None``.
        Only scores whose rank changes are written (``IS DISTINCT FROM`` the stored value,
        compared at the column's precision): after a new day of scores, re-ranking all
        days rewrites that day's rows, not every row, and unchanged rows keep their
        ``updated_at``.  Returns the number of scores whose rank changed.
        """
        rank_type = MAScore.percentile_rank.type  # numeric(5,4): compare at stored precision
        ranked = select(
            MAScore.id.label("score_id"),
            cast(
                func.percent_rank().over(
                    partition_by=MAScore.score_date, order_by=MAScore.total_score
                ),
                rank_type,
            ).label("rank"),
        )
        if score_date is not None:
            ranked = ranked.where(MAScore.score_date == self.rules.value("score_date", score_date))
        subquery = ranked.subquery("ranked")
        stmt = (
            update(MAScore)
            .where(
                MAScore.id == subquery.c.score_id,
                MAScore.percentile_rank.is_distinct_from(subquery.c.rank),
            )
            .values(percentile_rank=subquery.c.rank)
            .execution_options(synchronize_session=False)
        )
        result = await self._execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)

    async def upsert_many(self, rows: Sequence[Mapping[str, object]]) -> int:
        """Insert scores, or update the score the company already has for that day.

        Native ``INSERT ... ON CONFLICT (company_id, score_date) DO UPDATE`` per batch,
        after validating every row (``score_date`` defaults to today, UTC).  Score changes
        are taken as given, not derived.  Returns the number of rows written.

        Raises:
            ValidationError: Before any SQL, naming the row and field (also for a company
                and day given twice).
        """
        if len(rows) > _MAX_UPSERT_ROWS:
            raise ValidationError("rows", f"at most {_MAX_UPSERT_ROWS} rows per call")
        today = today_utc()
        cleaned = [
            self.rules.create({"score_date": today, **row}, row=index)
            for index, row in enumerate(rows)
        ]
        seen: dict[tuple[object, object], int] = {}
        for index, row in enumerate(cleaned):
            key = (row["company_id"], row["score_date"])
            if key in seen:
                problem = f"company and day repeat row {seen[key]}"
                raise ValidationError("score_date", problem, row=index)
            seen[key] = index
        total = 0
        groups: dict[tuple[str, ...], builtins.list[dict[str, object]]] = {}
        for row in cleaned:
            groups.setdefault(tuple(sorted(row)), []).append(row)
        for columns, group in groups.items():
            size = max(1, _MAX_PARAMETERS // len(columns))
            for start in range(0, len(group), size):
                stmt = insert(MAScore).values(group[start : start + size])
                updates: dict[str, Any] = {
                    name: stmt.excluded[name]
                    for name in columns
                    if name not in {"company_id", "score_date"}
                }
                updates["updated_at"] = func.now()
                stmt = stmt.on_conflict_do_update(
                    index_elements=[MAScore.company_id, MAScore.score_date], set_=updates
                )
                result = await self._execute(stmt)
                total += int(getattr(result, "rowcount", 0) or 0)
        return total

    @staticmethod
    def _score_at_or_before(company_id: int, day: dt.date) -> ScalarSelect[Decimal]:
        return (
            select(MAScore.total_score)
            .where(MAScore.company_id == company_id, MAScore.score_date <= day)
            .order_by(MAScore.score_date.desc())
            .limit(1)
            .scalar_subquery()
        )


def _top_query(*, by_date: bool) -> Builder:
    """Scores with their company (columns of both), as :meth:`get_top_scores` selects them."""

    def build(columns: Sequence[Column[Any]]) -> Select[Any]:
        scores, companies = _TABLE, _COMPANIES
        if by_date:
            day = bindparam("score_date", type_=scores.c.score_date.type)
            source = scores.join(companies, companies.c.id == scores.c.company_id)
            stmt = select(*columns).select_from(source).where(scores.c.score_date == day)
        else:
            latest = _latest_score_ids(companies.c.id)
            source = companies.join(latest, true()).join(scores, scores.c.id == latest.c.id)
            stmt = select(*columns).select_from(source)
        return (
            stmt.where(companies.c.deleted_at.is_(None))
            .order_by(scores.c.total_score.desc(), scores.c.company_id, scores.c.id)
            .limit(bindparam("limit", type_=Integer()))
        )

    return build


def _latest_score_ids(company_id: ColumnElement[int]) -> LateralFromClause:
    """``LATERAL``: the id of the latest score of ``company_id`` (an outer column).

    One backward probe of the unique ``(company_id, score_date)`` index per company, where
    ``DISTINCT ON (company_id)`` would sort or walk every score there is.
    """
    inner = _TABLE.alias("scored")
    return (
        select(inner.c.id)
        .where(inner.c.company_id == company_id)
        .order_by(inner.c.score_date.desc())
        .limit(1)
        .lateral("latest_score")
    )


_MAPPER: Mapper[MAScore] = inspect(MAScore)
_COMPANY_MAPPER: Mapper[Company] = inspect(Company)
_TABLE: Table = MAScore.__table__  # type: ignore[assignment]  # a declarative table
_COMPANIES: Table = Company.__table__  # type: ignore[assignment]  # a declarative table
_SHAPES = QueryShapes()
