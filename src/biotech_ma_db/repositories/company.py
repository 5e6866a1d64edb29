"""``CompanyRepository``: companies by ticker, search, and native upsert on the ticker."""

from __future__ import annotations

import builtins
import functools
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    Select,
    Table,
    bindparam,
    func,
    inspect,
    literal_column,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper

from biotech_ma_db.errors import ValidationError
from biotech_ma_db.models import Company, CompanyRow
from biotech_ma_db.repositories._fast import Builder, FastQuery, QueryShapes
from biotech_ma_db.repositories.base import Criterion, Repository
from biotech_ma_db.repositories.query import (
    DEFAULT_LIMIT,
    ColumnAttribute,
    OrderKey,
    SortSpec,
    check_limit,
    check_offset,
    resolve_order,
)
from biotech_ma_db.sa_internals import compile_positional

__all__ = ["CompanyRepository"]

_MAX_QUERY_LENGTH = 200
_MAX_UPSERT_ROWS = 100_000


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
        query = _SHAPES.get(("ticker", include_deleted), _MAPPER, _ticker_query(include_deleted))
        found = await self._fast(query, {"ticker": ticker})
        if found is not None:
            return found[0] if found else None
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
        """Live companies matching every given criterion, as tracked objects.

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
        search = self._search(
            therapeutic_areas, min_market_cap, max_market_cap, cash_constrained, query
        )
        if search.term is None:
            fast, values = search.fast_query(order_by or self.default_order, limit, offset)
            found = await self._fast(fast, values)
            if found is not None:
                return found
        return await self.list(*search.criteria(), order_by=order_by, limit=limit, offset=offset)

    async def search_rows(
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
    ) -> builtins.list[CompanyRow]:
        """:meth:`search` for read-only listings: the same companies, as untracked rows.

        Same arguments, same companies in the same order, with the same values; but each
        is a :class:`~biotech_ma_db.models.CompanyRow` tuple, which the session does not
        track.  Nothing enters the identity map, so a page costs a tuple per company
        instead of an ORM object (about six times less client CPU per row), and objects
        the session already holds are neither returned nor refreshed.  Use it for pages
        that are serialized and sent; use :meth:`search` for companies you will change.
        """
        search = self._search(
            therapeutic_areas, min_market_cap, max_market_cap, cash_constrained, query
        )
        if search.term is None:
            fast, values = search.fast_query(order_by or self.default_order, limit, offset)
            found = await self._fast_rows(fast, values, CompanyRow)
            if found is not None:
                return found
        stmt = self._listing(search.criteria(), None, order_by, limit, offset)
        return await self._rows(stmt.with_only_columns(*_ROW_COLUMNS), CompanyRow)

    def _search(
        self,
        therapeutic_areas: Sequence[str] | None,
        min_market_cap: Decimal | float | None,
        max_market_cap: Decimal | float | None,
        cash_constrained: bool | None,
        query: str | None,
    ) -> _Search:
        """Validate the search criteria (before any SQL)."""
        areas = low = high = term = None
        if therapeutic_areas is not None:
            areas = self.rules.value("therapeutic_areas", therapeutic_areas)
        if min_market_cap is not None:
            low = self.rules.value("market_cap_usd", min_market_cap)
        if max_market_cap is not None:
            high = self.rules.value("market_cap_usd", max_market_cap)
        if cash_constrained is not None and not isinstance(cash_constrained, bool):
            raise ValidationError("cash_constrained", "expected a bool")
        if query is not None:
            term = self._text("query", query, max_length=_MAX_QUERY_LENGTH)
        return _Search(areas, low, high, cash_constrained, term, self.sortable)

    async def upsert_many(self, rows: Sequence[Mapping[str, object]]) -> int:
        """Insert companies, or update the live company holding the same ticker.

        One native ``INSERT ... ON CONFLICT (ticker) WHERE deleted_at IS NULL DO UPDATE``
        per set of columns (never read-then-write), compiled once and sent for all rows
        with asyncpg's ``executemany`` inside a savepoint (all rows or none).  Every row is
        validated first, and a ticker given twice is refused.  Returns the number of rows
        inserted or updated.

        Objects already loaded in this session are not refreshed; re-read them if needed.

        Raises:
            ValidationError: Before any SQL, naming the row and field.
        """
        if len(rows) > _MAX_UPSERT_ROWS:
            raise ValidationError("rows", f"at most {_MAX_UPSERT_ROWS} rows per call")
        batches = self._upsert_batches(rows)
        if not batches:
            return 0
        async with self._driver_in_savepoint() as (driver, _dialect):
            for sql, records in batches:
                await driver.executemany(sql, records)
        # Each row inserts or updates exactly one company.
        return len(rows)

    def _upsert_batches(
        self, rows: Sequence[Mapping[str, object]]
    ) -> builtins.list[tuple[str, builtins.list[tuple[object, ...]]]]:
        """The upsert's statements and their driver records, every row checked.

        Rows are grouped by their set of columns (one statement per shape); each group is
        checked with the rules of :meth:`create`, a column at a time where it can be.
        """
        rules = self.rules
        dialect = self.session.sync_session.get_bind().dialect
        batches: builtins.list[tuple[str, builtins.list[tuple[object, ...]]]] = []
        tickers: builtins.list[object] = []
        order: builtins.list[int] = []
        shapes = _shapes(rows)
        for columns, indices in shapes.items():
            if not all(name in rules.fields and rules.fields[name].writable for name in columns):
                rules.create(rows[indices[0]], row=indices[0])  # raises, naming the field
            group = rows if len(shapes) == 1 else [rows[index] for index in indices]
            sql, names = _upsert_sql(columns, dialect)
            try:
                records = rules.driver_records(group, names, {})
            except ValidationError as exc:
                where = None if exc.row is None else indices[exc.row]
                raise ValidationError(exc.field, exc.problem, row=where) from None
            # A complete record holds the (required) ticker.
            tickers.extend(map(operator.itemgetter(names.index("ticker")), records))
            order.extend(indices)
            batches.append((sql, records))
        if len(set(tickers)) != len(tickers):
            _refuse_repeated_tickers(sorted(zip(order, tickers, strict=True)))
        return batches

    def _text(self, field: str, value: object, *, max_length: int = 10_000) -> str:
        if not isinstance(value, str):
            raise ValidationError(field, f"expected text, got {type(value).__name__}")
        if "\x00" in value:
            raise ValidationError(field, "contains a NUL byte")
        if len(value) > max_length:
            raise ValidationError(field, f"is longer than {max_length} characters")
        return value


def _shapes(rows: Sequence[Mapping[str, object]]) -> dict[tuple[str, ...], builtins.list[int]]:
    """The indices of the rows, by their (sorted) set of columns: one statement each."""
    by_keys: dict[tuple[str, ...], builtins.list[int]] = {}
    for index, row in enumerate(rows):
        if type(row) is not dict and not isinstance(row, Mapping):
            raise ValidationError("rows", "expected a mapping", row=index)
        # The keys as given (no sort per row); the same columns in another order merge below.
        keys = tuple(row)
        indices = by_keys.get(keys)
        if indices is None:
            by_keys[keys] = [index]
        else:
            indices.append(index)
    shapes: dict[tuple[str, ...], builtins.list[int]] = {}
    for keys, indices in by_keys.items():
        columns = tuple(sorted(keys))
        if columns in shapes:
            shapes[columns] = sorted(shapes[columns] + indices)
        else:
            shapes[columns] = indices
    return shapes


def _refuse_repeated_tickers(rows: Iterable[tuple[int, object]]) -> None:
    """Raise for the first row, in the caller's order, whose ticker an earlier row gave."""
    seen: dict[object, int] = {}
    for index, ticker in rows:
        first = seen.setdefault(ticker, index)
        if first != index:
            raise ValidationError("ticker", f"also given in row {first}", row=index)


@functools.lru_cache(maxsize=64)
def _upsert_sql(columns: tuple[str, ...], dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """The upsert's SQL for ``dialect``, and the row columns of its parameters in order.

    Every parameter is a column of the row, sent as the driver value the validation
    gives (what COPY takes too), so no bind processor applies.
    """
    statement = compile_positional(_upsert_statement(columns), dialect)
    return statement.sql, tuple(name for name, _ in statement.params)


@functools.lru_cache(maxsize=64)
def _upsert_statement(columns: tuple[str, ...]) -> Insert:
    """``INSERT ... ON CONFLICT (ticker) WHERE deleted_at IS NULL DO UPDATE`` on the table.

    Built on the Core table (not the mapped class), so executing it with a list of rows
    is a plain executemany rather than an ORM bulk operation.
    """
    table = _TABLE
    # inline(): no RETURNING of the new id, which executemany would fetch and drop per row.
    stmt = (
        insert(table)
        .inline()
        .values({name: bindparam(name, type_=table.c[name].type) for name in columns})
    )
    updates: dict[str, Any] = {name: stmt.excluded[name] for name in columns if name != "ticker"}
    updates["updated_at"] = func.now()
    # A literal, not a bound parameter: every parameter is then a column of the row.
    updates["version"] = table.c.version + literal_column("1")
    return stmt.on_conflict_do_update(
        index_elements=[table.c.ticker],
        index_where=table.c.deleted_at.is_(None),
        set_=updates,
    )


def _ticker_query(include_deleted: bool) -> Builder:
    def build(columns: Sequence[Column[Any]]) -> Select[Any]:
        table = _TABLE
        criteria = [table.c.ticker == bindparam("ticker", type_=table.c.ticker.type)]
        if not include_deleted:
            criteria.append(table.c.deleted_at.is_(None))
        return select(*columns).where(*criteria).order_by(table.c.id.desc()).limit(1)

    return build


@dataclass(frozen=True, slots=True)
class _Search:
    """Validated search criteria: a cached fast query, or ORM criteria for :meth:`list`."""

    areas: object
    low: object
    high: object
    cash_constrained: bool | None
    term: str | None
    sortable: Mapping[str, ColumnAttribute]

    def fast_query(
        self, order_by: SortSpec, limit: int, offset: int
    ) -> tuple[FastQuery, dict[str, object]]:
        """The compiled-once query of this shape and its values (no text ``query``)."""
        keys = resolve_order(order_by, self.sortable, Company.id)
        values = {
            "areas": self.areas,
            "low": self.low,
            "high": self.high,
            "limit": check_limit(limit),
            "offset": check_offset(offset),
        }
        present = (
            self.areas is not None,
            self.low is not None,
            self.high is not None,
            self.cash_constrained,
        )
        shape = ("search", *present, tuple((key.name, key.descending) for key in keys))
        return _SHAPES.get(shape, _MAPPER, _search_query(present, keys)), values

    def criteria(self) -> builtins.list[Criterion]:
        criteria: builtins.list[Criterion] = []
        if self.areas is not None:
            criteria.append(Company.therapeutic_areas.overlap(self.areas))
        if self.low is not None:
            criteria.append(Company.market_cap_usd >= self.low)
        if self.high is not None:
            criteria.append(Company.market_cap_usd <= self.high)
        if self.cash_constrained is not None:
            criteria.append(Company.cash_constrained.is_(self.cash_constrained))
        if self.term is not None:
            term = self.term
            criteria.append(
                or_(
                    Company.name.icontains(term, autoescape=True),
                    Company.ticker.icontains(term, autoescape=True),
                )
            )
        return criteria


def _search_query(
    present: tuple[bool, bool, bool, bool | None], keys: Sequence[OrderKey]
) -> Builder:
    areas, low, high, cash_constrained = present

    def build(columns: Sequence[Column[Any]]) -> Select[Any]:
        table = _TABLE
        c = table.c
        criteria: builtins.list[ColumnElement[bool]] = []
        if areas:
            criteria.append(
                c.therapeutic_areas.overlap(bindparam("areas", type_=c.therapeutic_areas.type))
            )
        if low:
            criteria.append(c.market_cap_usd >= bindparam("low", type_=c.market_cap_usd.type))
        if high:
            criteria.append(c.market_cap_usd <= bindparam("high", type_=c.market_cap_usd.type))
        if cash_constrained is not None:
            criteria.append(c.cash_constrained.is_(cash_constrained))
        criteria.append(c.deleted_at.is_(None))
        return (
            select(*columns)
            .where(*criteria)
            .order_by(*(key.clause() for key in keys))
            .limit(bindparam("limit", type_=Integer()))
            .offset(bindparam("offset", type_=Integer()))
        )

    return build


_MAPPER: Mapper[Company] = inspect(Company)
_TABLE: Table = Company.__table__  # type: ignore[assignment]  # a declarative table
_SHAPES = QueryShapes()
_ROW_COLUMNS = tuple(getattr(Company, field) for field in CompanyRow._fields)
