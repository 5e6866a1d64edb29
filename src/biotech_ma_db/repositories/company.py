"""``CompanyRepository``: companies by ticker, search, and native upsert on the ticker."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import func, or_
from sqlalchemy.dialects.postgresql import insert

from biotech_ma_db.errors import ValidationError
from biotech_ma_db.models import Company
from biotech_ma_db.repositories.base import Criterion, Repository
from biotech_ma_db.repositories.query import (
    DEFAULT_LIMIT,
    ColumnAttribute,
    SortSpec,
)

__all__ = ["CompanyRepository"]

_MAX_QUERY_LENGTH = 200
_MAX_UPSERT_ROWS = 100_000
# asyncpg accepts at most 32,767 bind parameters in one statement.
_MAX_PARAMETERS = 30_000


class CompanyRepository(Repository[Company]):
    """Companies: lookup by ticker, filtered search, and bulk upsert.

    Sortable and filterable fields: ``ticker``, ``name``, ``market_cap_usd``,
    ``cash_position_usd``, ``cash_runway_months``, ``employee_count``, ``founded_year``,
    ``created_at``, ``updated_at`` (plus ``exchange``, ``headquarters_country`` and
    ``cash_constrained`` for filters).
    """

    model = Company
    sortable: ClassVar[Mapping[str, ColumnAttribute]] = {
        "id": Company.id,
        "ticker": Company.ticker,
        "name": Company.name,
        "market_cap_usd": Company.market_cap_usd,
        "cash_position_usd": Company.cash_position_usd,
        "cash_runway_months": Company.cash_runway_months,
        "employee_count": Company.employee_count,
        "founded_year": Company.founded_year,
        "created_at": Company.created_at,
        "updated_at": Company.updated_at,
    }
    filterable: ClassVar[Mapping[str, ColumnAttribute]] = {
        **sortable,
        "exchange": Company.exchange,
        "headquarters_country": Company.headquarters_country,
        "cash_constrained": Company.cash_constrained,
    }
    default_order: ClassVar[SortSpec] = "ticker"

    async def get_by_ticker(self, ticker: str, *, include_deleted: bool = False) -> Company | None:
        """The live company with ``ticker`` (case-sensitive, as stored), or ``None``.

        With ``include_deleted=True`` a soft-deleted company may be returned (the newest
        one when the ticker was reused).
        """
        ticker = self._text("ticker", ticker)
        stmt = self._select(Company.ticker == ticker, include_deleted=include_deleted)
        rows = await self._scalars(stmt.order_by(Company.id.desc()).limit(1))
        return rows[0] if rows else None

    async def search(
        self,
        therapeutic_areas: Sequence[str] | None = None,
        min_market_cap: Decimal | float | None = None,
        max_market_cap: Decimal | float | None = None,
        cash_constrained: bool | None = None,
        query: str | None = None,
        *,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        order_by: SortSpec | None = "-market_cap_usd",
    ) -> builtins.list[Company]:
        """Live companies matching every given criterion.

        Args:
            therapeutic_areas: Any overlap with the company's areas (``&&``, GIN index).
            min_market_cap: Market cap at least this (USD).
            max_market_cap: Market cap at most this (USD).
            cash_constrained: Runway under 12 months (true) or not (false).
            query: Case-insensitive substring of the name or ticker; ``%`` and ``_`` are
                literal characters.
            limit: Page size (1..500).
            offset: Rows to skip.
            order_by: Whitelisted sort spec; largest market cap first by default.
        """
        criteria: builtins.list[Criterion] = []
        if therapeutic_areas is not None:
            areas = self.rules.value("therapeutic_areas", therapeutic_areas)
            criteria.append(Company.therapeutic_areas.overlap(areas))
        if min_market_cap is not None:
            low = self.rules.value("market_cap_usd", min_market_cap)
            criteria.append(Company.market_cap_usd >= low)
        if max_market_cap is not None:
            high = self.rules.value("market_cap_usd", max_market_cap)
            criteria.append(Company.market_cap_usd <= high)
        if cash_constrained is not None:
            if not isinstance(cash_constrained, bool):
                raise ValidationError("cash_constrained", "expected a bool")
            criteria.append(Company.cash_constrained.is_(cash_constrained))
        if query is not None:
            term = self._text("query", query, max_length=_MAX_QUERY_LENGTH)
            criteria.append(
                or_(
                    Company.name.icontains(term, autoescape=True),
                    Company.ticker.icontains(term, autoescape=True),
                )
            )
        return await self.list(*criteria, order_by=order_by, limit=limit, offset=offset)

    async def upsert_many(self, rows: Sequence[Mapping[str, object]]) -> int:
        """Insert companies, or update the live company holding the same ticker.

        One native ``INSERT ... ON CONFLICT (ticker) WHERE deleted_at IS NULL DO UPDATE``
        per batch (never read-then-write); every row is validated first, and a ticker given
        twice is refused.  Returns the number of rows inserted or updated.

        Objects already loaded in this session are not refreshed; re-read them if needed.

        Raises:
            ValidationError: Before any SQL, naming the row and field.
        """
        if len(rows) > _MAX_UPSERT_ROWS:
            raise ValidationError("rows", f"at most {_MAX_UPSERT_ROWS} rows per call")
        cleaned = [self.rules.create(row, row=index) for index, row in enumerate(rows)]
        seen: dict[object, int] = {}
        for index, row in enumerate(cleaned):
            if row["ticker"] in seen:
                raise ValidationError(
                    "ticker", f"also given in row {seen[row['ticker']]}", row=index
                )
            seen[row["ticker"]] = index
        total = 0
        for columns, batch in _batches(cleaned):
            stmt = insert(Company).values(batch)
            updates: dict[str, Any] = {
                name: stmt.excluded[name] for name in columns if name != "ticker"
            }
            updates["updated_at"] = func.now()
            updates["version"] = Company.version + 1
            stmt = stmt.on_conflict_do_update(
                index_elements=[Company.ticker],
                index_where=Company.deleted_at.is_(None),
                set_=updates,
            )
            result = await self._execute(stmt)
            total += int(getattr(result, "rowcount", 0) or 0)
        return total

    def _text(self, field: str, value: object, *, max_length: int = 10_000) -> str:
        if not isinstance(value, str):
            raise ValidationError(field, f"expected text, got {type(value).__name__}")
        if "\x00" in value:
            raise ValidationError(field, "contains a NUL byte")
        if len(value) > max_length:
            raise ValidationError(field, f"is longer than {max_length} characters")
        return value


def _batches(
    rows: Sequence[dict[str, object]],
) -> builtins.list[tuple[tuple[str, ...], builtins.list[dict[str, object]]]]:
    """Group rows by their set of columns (one VALUES list needs one shape), then chunk."""
    groups: dict[tuple[str, ...], builtins.list[dict[str, object]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    batches: builtins.list[tuple[tuple[str, ...], builtins.list[dict[str, object]]]] = []
    for columns, group in groups.items():
        size = max(1, _MAX_PARAMETERS // max(1, len(columns)))
        batches.extend((columns, group[i : i + size]) for i in range(0, len(group), size))
    return batches
