"""The generic repository: a small typed core over one ``AsyncSession``.

``ReadRepository[M]`` reads (get, list, count, keyset and offset pages);
``Repository[M]`` adds writes (create, update with optimistic locking, soft or hard
delete, restore).  Repositories **flush, never commit**: the caller's session or unit of
work decides when the transaction ends, so several calls are atomic together.

Every statement goes through the I/O helpers at the bottom of :class:`ReadRepository`,
which turn SQLAlchemy and driver exceptions into the library's typed errors in one place
(:func:`translating_errors`).  Values are validated before any SQL
(:mod:`~biotech_ma_db.repositories.validation`), and sort/filter names from outside go
through the repository's ``sortable``/``filterable`` whitelists
(:mod:`~biotech_ma_db.repositories.query`).

Soft-deleted rows are invisible unless a method is called with ``include_deleted=True``.
Relationships are never loaded implicitly (``lazy="raise"``); pass them in ``load=`` to
have them loaded with ``selectinload``.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, ClassVar, Generic, TypeAlias, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Executable,
    Result,
    Select,
    any_,
    exists,
    func,
    inspect,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, QueryableAttribute, RelationshipProperty, selectinload
from sqlalchemy.orm.interfaces import ORMOption
from sqlalchemy.sql.selectable import TypedReturnsRows

from biotech_ma_db.errors import (
    ConcurrencyError,
    DatabaseError,
    InvalidQueryError,
    NotFoundError,
    ValidationError,
    translate_error,
)
from biotech_ma_db.models.base import Base
from biotech_ma_db.models.soft_delete import INCLUDE_DELETED
from biotech_ma_db.repositories._fast import FastQuery, RowT, fetch_objects, fetch_rows
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

__all__ = [
    "Criterion",
    "Loadable",
    "ModelT",
    "ReadRepository",
    "Repository",
    "check_id",
    "translating_errors",
]

ModelT = TypeVar("ModelT", bound=Base)
T = TypeVar("T")
StatementT = TypeVar("StatementT", bound=Executable)

Criterion: TypeAlias = ColumnElement[bool]
"""A SQL boolean expression built by code, e.g. ``Company.market_cap_usd > 10**9``."""

Loadable: TypeAlias = str | QueryableAttribute[Any]
"""A relationship to load: its name or the attribute (``Company.signals``)."""

_MAX_IDS = 10_000
_MIN_BIGINT, _MAX_BIGINT = -(2**63), 2**63 - 1


@contextmanager
def translating_errors() -> Iterator[None]:
    """Re-raise SQLAlchemy and driver exceptions as the library's typed errors.

    The one place where repositories (and the unit of work) translate: the original
    exception stays attached as ``__cause__``; errors that are already typed, and ones
    :func:`~biotech_ma_db.errors.translate_error` does not recognise, pass unchanged.
    """
    try:
        yield
    except DatabaseError:
        raise
    except Exception as exc:
        translated = translate_error(exc)
        if translated is exc:
            raise
        raise translated from exc


def check_id(value: object, field: str = "id") -> int:
    """A row id: a 64-bit ``int`` (not a ``bool``); raises ``ValidationError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"expected an integer id, got {type(value).__name__}")
    if not _MIN_BIGINT <= value <= _MAX_BIGINT:
        raise ValidationError(field, "is outside the 64-bit integer range")
    return value


class ReadRepository(Generic[ModelT]):
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

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model.__name__})"

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
        if row is not None and not include_deleted and _is_deleted(row):
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

    # -- I/O: the one place where errors are translated --------------------------------

    async def _fast(
        self, query: FastQuery, values: Mapping[str, object]
    ) -> builtins.list[ModelT] | None:
        """Run a cached fast-path query (see :mod:`._fast`); ``None`` means use the ORM."""
        return await fetch_objects(self.session, query, values)

    async def _fast_rows(
        self, query: FastQuery, values: Mapping[str, object], row_type: type[RowT]
    ) -> builtins.list[RowT] | None:
        """Like :meth:`_fast`, as untracked ``row_type`` tuples (see :func:`._fast.fetch_rows`)."""
        return await fetch_rows(self.session, query, values, row_type)

    async def _rows(self, stmt: Select[Any], row_type: type[RowT]) -> builtins.list[RowT]:
        """Run ``stmt`` (selecting ``row_type``'s columns, in order) as ``row_type`` tuples."""
        with translating_errors():
            result = await self.session.execute(stmt)
            return [row_type._make(row) for row in result]

    async def _execute(self, stmt: Executable, params: Any = None) -> Result[*tuple[Any, ...]]:
        with translating_errors():
            return await self.session.execute(stmt, params)

    async def _scalars(self, stmt: TypedReturnsRows[T]) -> builtins.list[T]:
        with translating_errors():
            return builtins.list((await self.session.scalars(stmt)).all())

    async def _scalar_one(self, stmt: Select[T]) -> T:
        with translating_errors():
            return (await self.session.execute(stmt)).scalar_one()

    @asynccontextmanager
    async def _driver_in_savepoint(self) -> AsyncIterator[tuple[Any, Dialect]]:
        """The session's asyncpg connection inside a savepoint, for COPY and executemany.

        The savepoint makes a statement sent straight to the driver all-or-nothing: any
        exception in the block (a server error, or a bad row found while streaming) rolls
        it back, and the session's transaction stays usable.
        """
        with translating_errors():
            async with self.session.begin_nested():
                connection = await self.session.connection()
                raw = await connection.get_raw_connection()
                yield raw.driver_connection, connection.dialect

    async def _flush(self) -> None:
        with translating_errors():
            await self.session.flush()


class Repository(ReadRepository[ModelT]):
    """Reads and writes of one model; it flushes, never commits.

    Args:
        session: The session every statement runs in.
    """

    async def create(self, **values: object) -> ModelT:
        """Validate ``values``, insert the row and return it (with server defaults).

        Raises:
            ValidationError: Before any SQL, for an unknown field or a bad value.
            ConflictError: When a unique key is taken.
        """
        cleaned = self.rules.create(values)
        row = self.model(**cleaned)
        self.session.add(row)
        await self._flush()
        return row

    async def add_many(self, items: Iterable[ModelT]) -> builtins.list[ModelT]:
        """Validate and insert already-built model objects in one flush."""
        rows = builtins.list(items)
        rules = self.rules
        for index, row in enumerate(rows):
            if not isinstance(row, self.model):
                raise ValidationError("items", f"expected {self.model.__name__}", row=index)
            state = inspect(row)
            present = {
                key: state.dict[key]
                for key in rules.fields
                if key in state.dict and rules.fields[key].writable
            }
            for key, value in rules.create(present, row=index).items():
                setattr(row, key, value)
        self.session.add_all(rows)
        await self._flush()
        return rows

    async def update(
        self, id_: int, /, *, expected_version: int | None = None, **values: object
    ) -> ModelT:
        """Change some columns of one row and return it.

        Args:
            id_: Primary key.
            expected_version: For versioned models, the ``version`` the caller last saw;
                a different current version raises ``ConcurrencyError`` and writes nothing.
            **values: Columns to change.

        Raises:
            ValidationError: Before any SQL, for an unknown field or a bad value.
            NotFoundError: No such row (or it is soft-deleted).
            ConcurrencyError: For versioned models: the row is not at
                ``expected_version``, or another transaction committed a change since this
                session read it (checked by the UPDATE itself).
        """
        cleaned = self.rules.update(values)
        if expected_version is not None:
            check_id(expected_version, "expected_version")
            if self._mapper.version_id_col is None:
                raise InvalidQueryError(f"{self.model.__name__} is not versioned")
        row = await self._for_write(id_)
        if expected_version is not None:
            key = self._version_key()
            if getattr(row, key) != expected_version:
                # The session's copy may be older than what the caller saw: ask the database.
                loaded = [attr.key for attr in self._mapper.column_attrs if not attr.deferred]
                with translating_errors():
                    await self.session.refresh(row, attribute_names=loaded)
            current = getattr(row, key)
            if current != expected_version:
                raise ConcurrencyError(
                    f"{self.model.__name__} {id_} is at version {current}, not {expected_version}"
                )
        for key, value in cleaned.items():
            setattr(row, key, value)
        await self._flush()
        return row

    async def delete(self, id_: int, /, *, hard: bool = False) -> None:
        """Soft-delete the row (models with ``deleted_at``), or purge it with ``hard=True``.

        Raises:
            NotFoundError: No such row (a soft-deleted one can still be purged).
        """
        if hard or not self.soft_deletes:
            row = await self._for_write(id_, include_deleted=True)
            with translating_errors():
                await self.session.delete(row)
        else:
            row = await self._for_write(id_)
            row.deleted_at = dt.datetime.now(dt.UTC)  # type: ignore[attr-defined]  # soft_deletes
        await self._flush()

    async def restore(self, id_: int, /) -> ModelT:
        """Undo a soft delete and return the row (a no-op for a row that is not deleted).

        Raises:
            InvalidQueryError: The model has no soft delete.
            NotFoundError: No such row.
            ConflictError: A live row now holds its unique key.
        """
        if not self.soft_deletes:
            raise InvalidQueryError(f"{self.model.__name__} has no soft delete to undo")
        row = await self._for_write(id_, include_deleted=True)
        if _is_deleted(row):
            row.deleted_at = None  # type: ignore[attr-defined]  # soft_deletes checked above
            await self._flush()
        return row

    def _version_key(self) -> str:
        column = self._mapper.version_id_col
        assert column is not None, "callers check that the model is versioned"
        return self._mapper.get_property_by_column(column).key

    async def _for_write(self, id_: int, *, include_deleted: bool = False) -> ModelT:
        """The row to change: the session's copy when it has one, else loaded.

        The session's copy is deliberately not refreshed: for versioned models the UPDATE
        then checks the version this session read (``WHERE version = :seen``), so a
        concurrent commit since that read raises ``ConcurrencyError`` instead of being
        overwritten.
        """
        return await self.get_or_raise(id_, include_deleted=include_deleted)


def _is_deleted(row: Base) -> bool:
    return getattr(row, "deleted_at", None) is not None
