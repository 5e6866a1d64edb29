"""Reads of one model: get, list, count, keyset and offset pages.

:class:`ReadRepository` builds its statements here (soft-deleted rows left out unless
``include_deleted=True``, sort and filter names from outside checked against the
repository's ``sortable``/``filterable`` whitelists, relationships loaded only when
named in ``load=``) and runs them through :class:`~._session.SessionIO`, which
translates errors.  Values are validated before any SQL
(:mod:`~biotech_ma_db.repositories.validation`).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    BigInteger,
    Executable,
    Select,
    any_,
    exists,
    func,
    inspect,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapper, RelationshipProperty, selectinload
from sqlalchemy.orm.interfaces import ORMOption

from biotech_ma_db.errors import InvalidQueryError, NotFoundError
from biotech_ma_db.models.soft_delete import INCLUDE_DELETED
from biotech_ma_db.repositories._session import SessionIO
from biotech_ma_db.repositories._support import (
    Criterion,
    Loadable,
    ModelT,
    check_id,
    is_deleted,
    translating_errors,
)
from biotech_ma_db.repositories.query import (
    DEFAULT_LIMIT,
    ColumnAttribute,
    OffsetPage,
    Page,
    SortSpec,
    check_limit,
    check_offset,
    decode_cursor,
    encode_cursor,
    keyset_condition,
    resolve_filters,
    resolve_order,
)
from biotech_ma_db.repositories.validation import ModelRules, rules_for

__all__ = ["ReadRepository"]

StatementT = TypeVar("StatementT", bound=Executable)

_MAX_IDS = 10_000


class ReadRepository(SessionIO[ModelT]):
    """Reads of one model over one ``AsyncSession``.

    Subclasses set ``model`` and may widen ``sortable``/``filterable`` (the names callers
    may sort and filter on) and ``default_order``.

    Args:
        session: The session every statement runs in; the repository never commits it.
    """

    model: type[ModelT]
    sortable: ClassVar[Mapping[str, ColumnAttribute]] = {}
    filterable: ClassVar[Mapping[str, ColumnAttribute]] = {}
    default_order: ClassVar[SortSpec | None] = None

    # -- reads ------------------------------------------------------------------------

    async def get(
        self,
        id_: int,
        /,
        *,
        load: Sequence[Loadable] = (),
        include_deleted: bool = False,
    ) -> ModelT | None:
        """The row with primary key ``id_``, or ``None``.

        Args:
            id_: Primary key.
            load: Relationships to load along (``selectinload``).
            include_deleted: Also return a soft-deleted row.
        """
        check_id(id_)
        if load:
            rows = await self._scalars(
                self._select(self.model.id == id_, include_deleted=include_deleted)
                .options(*self._load_options(load))
                .execution_options(populate_existing=True)
            )
            return rows[0] if rows else None
        options = {INCLUDE_DELETED: True} if include_deleted else {}
        with translating_errors():
            row = await self.session.get(self.model, id_, execution_options=options)
        if row is not None and not include_deleted and is_deleted(row):
            # Soft-deleted earlier in this session: the identity map still holds it.
            return None
        return row

    async def get_or_raise(
        self,
        id_: int,
        /,
        *,
        load: Sequence[Loadable] = (),
        include_deleted: bool = False,
    ) -> ModelT:
        """Like :meth:`get`, but raises ``NotFoundError`` instead of returning ``None``."""
        row = await self.get(id_, load=load, include_deleted=include_deleted)
        if row is None:
            raise NotFoundError(self.model.__name__, id_)
        return row

    async def get_many(
        self, ids: Iterable[int], *, include_deleted: bool = False
    ) -> builtins.list[ModelT]:
        """The rows whose keys are in ``ids`` (missing ones left out), ordered by id."""
        keys = [check_id(value, "ids") for value in ids]
        if len(keys) > _MAX_IDS:
            raise InvalidQueryError(f"at most {_MAX_IDS} ids per call")
        if not keys:
            return []
        id_array = literal(keys, ARRAY(BigInteger))
        stmt = self._select(
            self.model.id == any_(id_array), include_deleted=include_deleted
        ).order_by(self.model.id)
        return await self._scalars(stmt)

    async def find_one(self, *, include_deleted: bool = False, **equals: object) -> ModelT | None:
        """The one row whose columns equal ``equals``, or ``None``.

        For code, not for outside input: any mapped column may be named here (unknown
        names are refused); filters from outside go through ``filters=`` and the
        ``filterable`` whitelist instead.

        Raises:
            InvalidQueryError: For a name that is not a column, or when several rows match.
        """
        if not equals:
            raise InvalidQueryError("find_one() needs at least one column=value")
        criteria = [self._equals(name, value) for name, value in equals.items()]
        rows = await self._scalars(
            self._select(*criteria, include_deleted=include_deleted).limit(2)
        )
        if len(rows) > 1:
            raise InvalidQueryError(f"more than one {self.model.__name__} matches")
        return rows[0] if rows else None

    async def list(
        self,
        *where: Criterion,
        filters: Mapping[str, object] | None = None,
        order_by: SortSpec | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        load: Sequence[Loadable] = (),
        include_deleted: bool = False,
    ) -> builtins.list[ModelT]:
        """Rows matching ``where`` and ``filters``, sorted, at most ``limit`` of them.

        Args:
            *where: SQL criteria built by code.
            filters: Whitelisted ``field``/``field__op`` filters from outside.
            order_by: Whitelisted sort spec (``"-market_cap_usd"``, ``("name", "asc")``).
            limit: Page size, 1 to :data:`~biotech_ma_db.repositories.query.MAX_LIMIT`.
            offset: Rows to skip.
            load: Relationships to load along (``selectinload``).
            include_deleted: Also return soft-deleted rows.
        """
        stmt = self._listing(
            where, filters, order_by, limit, offset, include_deleted=include_deleted
        )
        if load:
            stmt = stmt.options(*self._load_options(load))
        return await self._scalars(stmt)

    async def count(
        self,
        *where: Criterion,
        filters: Mapping[str, object] | None = None,
        include_deleted: bool = False,
    ) -> int:
        """How many rows match."""
        criteria = self._criteria(where, filters, include_deleted)
        stmt = select(func.count()).select_from(self.model).where(*criteria)
        return int(await self._scalar_one(self._with_options(stmt, include_deleted)))

    async def exists(
        self,
        *where: Criterion,
        filters: Mapping[str, object] | None = None,
        include_deleted: bool = False,
    ) -> bool:
        """Whether any row matches."""
        criteria = self._criteria(where, filters, include_deleted)
        stmt = select(exists(select(self.model.id).where(*criteria)))
        return bool(await self._scalar_one(self._with_options(stmt, include_deleted)))

    async def page(
        self,
        *where: Criterion,
        filters: Mapping[str, object] | None = None,
        order_by: SortSpec | None = None,
        limit: int = DEFAULT_LIMIT,
        after: str | None = None,
        before: str | None = None,
        load: Sequence[Loadable] = (),
        include_deleted: bool = False,
    ) -> Page[ModelT]:
        """A keyset page: stable under concurrent inserts, in both directions.

        Pass a page's ``next_cursor`` as ``after=`` for the next page, or its
        ``prev_cursor`` as ``before=`` for the previous one.  Rows present throughout are
        never skipped or repeated, however many rows are inserted meanwhile.

        Raises:
            InvalidQueryError: For a bad sort spec or limit, both cursors at once, or a
                cursor that is malformed, edited or made for another order.
        """
        if after is not None and before is not None:
            raise InvalidQueryError("give after= or before=, not both")
        size = check_limit(limit)
        keys = resolve_order(self._order_spec(order_by), self.sortable, self.model.id)
        stmt = self._select(*where, filters=filters, include_deleted=include_deleted)
        backwards = before is not None
        cursor = before if backwards else after
        if cursor is not None:
            values = decode_cursor(cursor, keys)
            stmt = stmt.where(keyset_condition(keys, values, before=backwards))
        stmt = stmt.order_by(*(key.clause(reverse=backwards) for key in keys)).limit(size + 1)
        if load:
            stmt = stmt.options(*self._load_options(load))
        rows = await self._scalars(stmt)
        more = len(rows) > size
        rows = rows[:size]
        if backwards:
            rows.reverse()
        if not rows:
            return Page(items=[], next_cursor=None, prev_cursor=None)
        first, last = encode_cursor(keys, rows[0]), encode_cursor(keys, rows[-1])
        if backwards:
            return Page(items=rows, next_cursor=last, prev_cursor=first if more else None)
        return Page(
            items=rows,
            next_cursor=last if more else None,
            prev_cursor=first if after is not None else None,
        )

    async def page_with_total(
        self,
        *where: Criterion,
        filters: Mapping[str, object] | None = None,
        order_by: SortSpec | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        load: Sequence[Loadable] = (),
        include_deleted: bool = False,
    ) -> OffsetPage[ModelT]:
        """An offset page plus the total number of matching rows (two statements)."""
        items = await self.list(
            *where,
            filters=filters,
            order_by=order_by,
            limit=limit,
            offset=offset,
            load=load,
            include_deleted=include_deleted,
        )
        if offset == 0 and len(items) < limit:
            total = len(items)
        else:
            total = await self.count(*where, filters=filters, include_deleted=include_deleted)
        return OffsetPage(items=items, total=total, limit=limit, offset=offset)

    # -- statement building -----------------------------------------------------------

    @property
    def _mapper(self) -> Mapper[ModelT]:
        return inspect(self.model)

    @property
    def rules(self) -> ModelRules:
        """The model's validation rules."""
        return rules_for(self.model)

    @property
    def soft_deletes(self) -> bool:
        """Whether the model has ``deleted_at`` (soft delete and restore)."""
        return "deleted_at" in self._mapper.columns

    def _listing(
        self,
        where: Sequence[Criterion],
        filters: Mapping[str, object] | None,
        order_by: SortSpec | None,
        limit: int,
        offset: int,
        *,
        include_deleted: bool = False,
    ) -> Select[ModelT]:
        """The statement of :meth:`list`: matching rows, sorted, one page."""
        keys = resolve_order(self._order_spec(order_by), self.sortable, self.model.id)
        return (
            self._select(*where, filters=filters, include_deleted=include_deleted)
            .order_by(*(key.clause() for key in keys))
            .limit(check_limit(limit))
            .offset(check_offset(offset))
        )

    def _select(
        self,
        *where: Criterion,
        filters: Mapping[str, object] | None = None,
        include_deleted: bool = False,
    ) -> Select[ModelT]:
        criteria = self._criteria(where, filters, include_deleted)
        return self._with_options(select(self.model).where(*criteria), include_deleted)

    def _criteria(
        self,
        where: Sequence[Criterion],
        filters: Mapping[str, object] | None,
        include_deleted: bool,
    ) -> builtins.list[Criterion]:
        criteria = builtins.list(where)
        if filters:
            criteria.extend(resolve_filters(filters, self.filterable, self.rules.value))
        if self.soft_deletes and not include_deleted:
            # Explicit, although the models' global filter adds the same for ORM selects.
            criteria.append(self._mapper.columns["deleted_at"].is_(None))
        return criteria

    @staticmethod
    def _with_options(stmt: StatementT, include_deleted: bool) -> StatementT:
        return stmt.execution_options(**{INCLUDE_DELETED: True}) if include_deleted else stmt

    def _order_spec(self, order_by: SortSpec | None) -> SortSpec | None:
        return self.default_order if order_by is None else order_by

    def _equals(self, name: str, value: object) -> Criterion:
        column = self._mapper.columns.get(name)
        if column is None:
            raise InvalidQueryError(f"{self.model.__name__} has no column {str(name)[:64]!r}")
        cleaned = self.rules.value(name, value)
        return column.is_(None) if cleaned is None else column == cleaned

    def _load_options(self, load: Sequence[Loadable]) -> builtins.list[ORMOption]:
        relationships = self._mapper.relationships
        options: builtins.list[ORMOption] = []
        for item in load:
            prop: RelationshipProperty[Any] | None
            if isinstance(item, str):
                prop = relationships.get(item)
            else:
                candidate = getattr(item, "property", None)
                known = relationships.get(getattr(item, "key", ""))
                prop = known if known is not None and known is candidate else None
            if prop is None:
                raise InvalidQueryError(
                    f"cannot load {item!s:.64}; {self.model.__name__} relationships: "
                    f"{', '.join(sorted(relationships.keys()))}"
                )
            options.append(selectinload(prop.class_attribute))
        return options
