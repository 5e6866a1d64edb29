"""The fast read path: cached compiled SELECTs run on asyncpg, rows loaded into the session.

The ORM's read pipeline (building the statement, its cache key, compile state,
``do_orm_execute`` hooks, result metadata, the loader) costs several times the round trip
itself in client CPU.  For the hot domain reads (``get_by_ticker``, ``search``,
``get_by_company``) the repositories instead:

1. compile the statement **once per query shape** (which optional criteria are present,
   the sort order) and dialect, keeping SQLAlchemy's own SQL text, bind processors and
   result processors;
2. run it with asyncpg's ``fetch`` (whose per-connection statement cache makes repeats a
   single round trip);
3. turn rows into **persistent objects of the session**, as the ORM loader does for plain
   column loads: an object already in the identity map is returned as it is, a new one is
   created, filled and registered in the identity map.

:func:`fetch_rows` runs the same queries for listings that need no tracked objects
(``CompanyRepository.search_rows``): each row becomes a ``NamedTuple`` of the model's
columns and nothing enters the identity map, which is most of the client cost of a page.

The objects are the same as the ORM path would return (``tests/integration/
test_fast_paths.py`` pins that).  Wherever the ORM path would do something more, the fast
path declines (:func:`fetch_objects` returns ``None``) and the repository runs its ordinary
ORM statement:

- the session has changes that autoflush would write first;
- a ``do_orm_execute`` listener other than the soft-delete filter is installed, or a
  ``load``/``loaded_as_persistent`` listener (they expect the ORM's query context);
- an object found in the identity map has unloaded (expired) column attributes;
- the connection is invalidated, or its transaction has not begun and the engine has not
  opted in to single-statement reads (:data:`~biotech_ma_db.engine.AUTOCOMMIT_READS_OPTION`);
- the engine turned the fast path off (:data:`~biotech_ma_db.engine.FAST_READS_OPTION`;
  ``Database`` does behind pgbouncer, whose transaction mode cannot keep the named
  prepared statements this path relies on).

Connections and transactions.  Inside a transaction, the statement runs on the session's
connection, like any other.  SQLAlchemy's asyncpg adapter sends ``BEGIN`` lazily before
the first statement; a fast read that comes first runs before it, as one autocommit
statement, when the engine allows it (``Database`` does, except behind pgbouncer).  Under
READ COMMITTED, the isolation level ``Database`` uses, a lone SELECT and the same SELECT
run first in a transaction see the same rows.  A session from :meth:`Database.session
<biotech_ma_db.database.Database.session>` that has not begun a transaction borrows a
pooled connection for its first fast read and gives it straight back, so a one-read
session (a typical request) costs one checkout and no ``BEGIN``/``COMMIT``.

Errors are translated like everywhere else; a failure that leaves the connection unusable
invalidates it, as SQLAlchemy would.  Fast reads slower than ``DB_SLOW_QUERY_MS`` are
logged like other statements.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TypeVar

from sqlalchemy import ARRAY, Column, Select
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.base import instance_state
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.types import TypeEngine
from sqlalchemy.util.concurrency import greenlet_spawn

from biotech_ma_db.engine import (
    AUTOCOMMIT_READS_OPTION,
    FAST_READS_OPTION,
    PLAIN_SESSION_KEY,
    SLOW_QUERY_OPTION,
    deferred_ping,
)
from biotech_ma_db.errors import translate_error
from biotech_ma_db.models.soft_delete import soft_delete_filter

__all__ = ["FastQuery", "QueryShapes", "fetch_objects", "fetch_rows"]

slow_query_logger = logging.getLogger("biotech_ma_db.slow_query")

Processor = Callable[[Any], Any]
RowT = TypeVar("RowT", bound=NamedTuple)
Builder = Callable[[Sequence[Column[Any]]], Select[Any]]

_ALLOWED_ORM_HOOKS: Final = frozenset({soft_delete_filter})
_CONNECTION_KEY: Final = "biotech_ma_db.fast_connection"
_SLOW_QUERY_TEXT_LIMIT: Final = 500
_CLOSED_CONNECTION_NAMES: Final = frozenset({"ConnectionDoesNotExistError", "InterfaceError"})
_SESSION_ENDED_STATES: Final = frozenset({"57P01", "57P02", "57P03"})
_BROKEN_CONNECTION_NAMES: Final = frozenset(
    {"InterfaceError", "InternalClientError", "ConnectionDoesNotExistError", "TimeoutError"}
)


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    params: tuple[tuple[str, object, Processor | None], ...]
    processors: tuple[tuple[int, Processor], ...]


@dataclass(frozen=True, slots=True)
class _Part:
    """The columns of one entity in a fast query's SELECT list."""

    mapper: Mapper[Any]
    keys: tuple[str, ...]
    key_set: frozenset[str]
    start: int
    stop: int
    pk_index: int  # positions are absolute in the row
    discriminator: int | None

    @classmethod
    def of(cls, mapper: Mapper[Any], start: int) -> tuple[_Part, tuple[Column[Any], ...]]:
        attrs = [attr for attr in mapper.column_attrs if len(attr.columns) == 1]
        columns: tuple[Column[Any], ...] = tuple(
            attr.columns[0]  # type: ignore[misc]  # plain table columns (checked in tests)
            for attr in attrs
        )
        primary_key = mapper.primary_key
        if len(primary_key) != 1:
            raise TypeError(f"{mapper.class_.__name__}: fast reads need a one-column key")
        keys = tuple(attr.key for attr in attrs)
        discriminator = None
        if mapper.polymorphic_on is not None:
            discriminator = start + _position(columns, mapper.polymorphic_on)
        part = cls(
            mapper=mapper,
            keys=keys,
            key_set=frozenset(keys),
            start=start,
            stop=start + len(columns),
            # By identity: ``list.index`` would compare columns with ``==``, building SQL.
            pk_index=start + _position(columns, primary_key[0]),
            discriminator=discriminator,
        )
        return part, columns


class FastQuery:
    """One query shape: a SELECT of every column of a mapped table, compiled lazily.

    Args:
        mapper: The model's mapper (the base mapper of a polymorphic hierarchy).
        build: Builds the Core statement from :attr:`columns` (selected in that order);
            values supplied at execution are ``bindparam`` names.
        joined: ``(relationship key, mapper)`` of a many-to-one loaded along, as
            ``contains_eager`` would: its columns follow the model's in :attr:`columns`.
            Such a query runs only in a session with an empty identity map (the ORM path
            refreshes objects already loaded, which this one does not do).
    """

    __slots__ = ("_build", "_compiled", "_last", "columns", "joined_key", "mapper", "parts")

    def __init__(
        self, mapper: Mapper[Any], build: Builder, *, joined: tuple[str, Mapper[Any]] | None = None
    ) -> None:
        self.mapper = mapper
        part, columns = _Part.of(mapper, 0)
        self.parts: tuple[_Part, ...] = (part,)
        self.joined_key: str | None = None
        if joined is not None:
            self.joined_key, child = joined
            child_part, child_columns = _Part.of(child, len(columns))
            self.parts += (child_part,)
            columns += child_columns
        self.columns = columns
        self._build = build
        self._compiled: weakref.WeakKeyDictionary[Dialect, _Compiled] = weakref.WeakKeyDictionary()
        # The dialect seen last, checked first (one engine per process is the usual case);
        # a strong reference, as the dialect's engine normally lives as long anyway.
        self._last: tuple[Dialect, _Compiled] | None = None

    async def compiled(self, dialect: Dialect, driver: Any) -> _Compiled:
        """SQL text, parameter order and processors for ``dialect`` (built once)."""
        last = self._last
        if last is not None and last[0] is dialect:
            return last[1]
        found = self._compiled.get(dialect)
        if found is not None:
            self._last = (dialect, found)
            return found
        compiled = self._build(self.columns).compile(dialect=dialect)
        binds = compiled.binds
        params = tuple(
            (
                name,
                binds[name].effective_value,
                binds[name].type._cached_bind_processor(dialect),
            )
            for name in compiled.positiontup or ()
        )
        # Result processors depend on the server type of each output column.
        attributes = (await driver.prepare(compiled.string)).get_attributes()
        processors = tuple(
            (index, processor)
            for index, (column, attribute) in enumerate(zip(self.columns, attributes, strict=True))
            if not _copies_list(column.type, dialect)
            and (processor := column.type._cached_result_processor(dialect, attribute.type.oid))
            is not None
        )
        found = _Compiled(compiled.string, params, processors)
        self._compiled[dialect] = found
        self._last = (dialect, found)
        return found


def _position(columns: Sequence[object], column: object) -> int:
    for index, candidate in enumerate(columns):
        if candidate is column:
            return index
    raise LookupError(f"{column!r} is not selected")


def _copies_list(column_type: TypeEngine[Any], dialect: Dialect) -> bool:
    """Whether the result processor would only copy the list asyncpg already returns.

    SQLAlchemy's ``ARRAY`` processor rebuilds the list through its item processor; with
    no item processor that is a plain copy, which a freshly decoded row does not need.
    """
    return (
        isinstance(column_type, ARRAY)
        and not column_type.as_tuple
        and column_type.item_type._cached_result_processor(dialect, None) is None
    )


class QueryShapes:
    """The query shapes of one repository method, built on first use."""

    __slots__ = ("_queries",)

    def __init__(self) -> None:
        self._queries: dict[Hashable, FastQuery] = {}

    def get(
        self,
        key: Hashable,
        mapper: Mapper[Any],
        build: Builder,
        *,
        joined: tuple[str, Mapper[Any]] | None = None,
    ) -> FastQuery:
        query = self._queries.get(key)
        if query is None:
            query = FastQuery(mapper, build, joined=joined)
            self._queries[key] = query
        return query


async def fetch_objects(
    session: AsyncSession, query: FastQuery, values: Mapping[str, object]
) -> list[Any] | None:
    """Run ``query`` with ``values``; the session-tracked objects, or ``None`` for "use the ORM".

    Raises:
        DatabaseError: The library's typed errors, as on the ORM path.
    """
    sync = session.sync_session
    if not _session_allows(sync, query.mapper):
        return None
    if query.joined_key is not None and len(sync.identity_map):
        return None
    ran = await _fetch(session, sync, query, values)
    if ran is None:
        return None
    compiled, rows = ran
    return _load(sync, query, compiled, rows)


async def fetch_rows(
    session: AsyncSession, query: FastQuery, values: Mapping[str, object], row_type: type[RowT]
) -> list[RowT] | None:
    """Run ``query`` with ``values``; untracked ``row_type`` tuples, or ``None`` for "use the ORM".

    ``row_type`` is a ``NamedTuple`` whose fields are the model's column attributes in
    mapper order (the order :class:`FastQuery` selects them in).  Nothing enters the
    identity map, so the rows cost a tuple each and the session's objects are untouched.

    Raises:
        TypeError: ``row_type``'s fields are not the query's columns.
        DatabaseError: The library's typed errors, as on the ORM path.
    """
    if query.joined_key is not None or row_type._fields != query.parts[0].keys:
        raise TypeError(f"{row_type.__name__} does not match the columns of {query.mapper}")
    sync = session.sync_session
    # Identity-map checks do not apply (nothing is loaded into it), but pending changes
    # must be flushed first and foreign ORM hooks may alter the statement: the ORM's turn.
    if not _session_allows(sync, query.mapper):
        return None
    ran = await _fetch(session, sync, query, values)
    if ran is None:
        return None
    compiled, records = ran
    make = tuple.__new__
    if not compiled.processors:
        return [make(row_type, record) for record in records]
    return [make(row_type, _processed(record, compiled.processors)) for record in records]


async def _fetch(
    session: AsyncSession, sync: Session, query: FastQuery, values: Mapping[str, object]
) -> tuple[_Compiled, list[Any]] | None:
    """Run ``query`` on a borrowed connection or the session's; ``None`` when it cannot."""
    mapper = query.mapper
    engine = _borrowable_engine(sync, mapper)
    try:
        if engine is not None:
            return await _run_borrowed(engine, query, values)
        conn = await _connection(session, sync, mapper)
        sync_conn = conn.sync_connection
        if sync_conn is None or sync_conn.invalidated:
            return None
        try:
            return await _run(
                query,
                values,
                sync_conn.connection,
                sync_conn.dialect,
                sync_conn.get_execution_options(),
            )
        except BaseException as exc:
            if _breaks_connection(exc):
                await conn.invalidate()  # as SQLAlchemy does on a disconnect
            raise
    except BaseException as exc:
        translated = translate_error(exc)
        if translated is exc:
            raise
        raise translated from exc


def _processed(record: Sequence[Any], processors: Sequence[tuple[int, Processor]]) -> list[Any]:
    values = list(record)
    for index, processor in processors:
        values[index] = processor(values[index])
    return values


async def _run_borrowed(
    engine: Engine, query: FastQuery, values: Mapping[str, object]
) -> tuple[_Compiled, list[Any]] | None:
    """Run on a connection borrowed from the pool for this one statement.

    The checkout skips the pre-ping (:func:`deferred_ping`): this lone ``SELECT`` outside
    a transaction probes the connection itself, and if the connection turns out to have
    died while idle, the statement runs once more on a fresh, pinged checkout, so the
    caller sees no error a ping would have spared it.
    """
    with deferred_ping():
        fairy = await greenlet_spawn(engine.raw_connection)
    try:
        return await _run_on(fairy, engine, query, values)
    except Exception as exc:
        if not _dead_on_arrival(exc):
            raise
    fairy = await greenlet_spawn(engine.raw_connection)
    return await _run_on(fairy, engine, query, values)


async def _run_on(
    fairy: PoolProxiedConnection, engine: Engine, query: FastQuery, values: Mapping[str, object]
) -> tuple[_Compiled, list[Any]] | None:
    """Run on the checked-out ``fairy`` and give it back (invalidated if it broke)."""
    try:
        return await _run(query, values, fairy, engine.dialect, engine.get_execution_options())
    except BaseException as exc:
        if _breaks_connection(exc):
            await greenlet_spawn(fairy.invalidate, exc if isinstance(exc, Exception) else None)
        raise
    finally:
        if fairy.dbapi_connection is not None:
            # Back to the pool: no transaction was begun, so the reset sends nothing.
            fairy.close()


async def _run(
    query: FastQuery,
    values: Mapping[str, object],
    fairy: PoolProxiedConnection,
    dialect: Dialect,
    options: Mapping[str, Any],
) -> tuple[_Compiled, list[Any]] | None:
    """Execute on the pooled connection ``fairy``; ``None`` when it is not in a usable state."""
    driver: Any = fairy.driver_connection
    if not options.get(FAST_READS_OPTION, True):
        return None
    if not driver.is_in_transaction() and not options.get(AUTOCOMMIT_READS_OPTION):
        return None
    compiled = await query.compiled(dialect, driver)
    args = [
        value if processor is None else processor(value)
        for name, default, processor in compiled.params
        for value in (values.get(name, default),)
    ]
    started = time.perf_counter()
    rows: list[Any] = await driver.fetch(compiled.sql, *args)
    threshold = options.get(SLOW_QUERY_OPTION)
    if threshold is not None and (elapsed := time.perf_counter() - started) >= threshold:
        slow_query_logger.warning(
            "slow query: %.1f ms: %s",
            elapsed * 1000,
            " ".join(compiled.sql.split())[:_SLOW_QUERY_TEXT_LIMIT],
        )
    return compiled, rows


def _session_allows(session: Session, mapper: Mapper[Any]) -> bool:
    if session.autoflush and not session._is_clean():
        return False
    dispatch = session.dispatch
    if any(fn not in _ALLOWED_ORM_HOOKS for fn in dispatch.do_orm_execute):
        return False
    if dispatch.loaded_as_persistent:
        return False
    return not mapper.class_manager.dispatch.load


def _borrowable_engine(session: Session, mapper: Mapper[Any]) -> Engine | None:
    """The engine to borrow a connection from, for a plain session's first read.

    Only sessions :meth:`Database.session` marked plain (no per-transaction settings to
    apply), before they begin a transaction, and once per session: a session that reads
    again keeps one connection, as the ORM would.
    """
    info = session.info
    if info.get(PLAIN_SESSION_KEY) is not True or session.get_transaction() is not None:
        return None
    bind = session.get_bind(mapper)
    if not isinstance(bind, Engine) or not bind.get_execution_options().get(
        AUTOCOMMIT_READS_OPTION
    ):
        return None
    info[PLAIN_SESSION_KEY] = "borrowed"
    return bind


async def _connection(session: AsyncSession, sync: Session, mapper: Mapper[Any]) -> AsyncConnection:
    """The session's connection for ``mapper``, remembered for the current transaction.

    ``AsyncSession.connection()`` costs a greenlet switch per call; within one transaction
    its answer does not change.
    """
    transaction = sync.get_transaction()
    cached = sync.info.get(_CONNECTION_KEY)
    if (
        cached is not None
        and transaction is not None
        and cached[0] is transaction
        and cached[1] is mapper
        and transaction.is_active
    ):
        connection: AsyncConnection = cached[2]
        return connection
    connection = await session.connection(bind_arguments={"mapper": mapper})
    sync.info[_CONNECTION_KEY] = (sync.get_transaction(), mapper, connection)
    return connection


def _dead_on_arrival(exc: Exception) -> bool:
    """Whether a statement failed because its connection had died before it was sent.

    The socket was closed or reset, or the server had ended the session (administrator
    command, shutdown, crash recovery): what a pre-ping would have caught.  Not a
    timeout: a server that does not answer would not have answered a ping either, and
    waiting twice would double the caller's stall.
    """
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _SESSION_ENDED_STATES or sqlstate.startswith("08")
    if isinstance(exc, OSError):
        return not isinstance(exc, TimeoutError)
    return any(cls.__name__ in _CLOSED_CONNECTION_NAMES for cls in type(exc).__mro__)


def _breaks_connection(exc: BaseException) -> bool:
    """Whether a failure leaves the connection unusable (SQLAlchemy would invalidate it)."""
    if getattr(exc, "sqlstate", None) is not None:
        return False  # the server answered: the connection is fine
    if not isinstance(exc, Exception) or isinstance(exc, OSError):
        return True  # cancelled mid-statement, or the socket failed
    return any(cls.__name__ in _BROKEN_CONNECTION_NAMES for cls in type(exc).__mro__)


def _load(
    session: Session, query: FastQuery, compiled: _Compiled, rows: Sequence[Any]
) -> list[Any] | None:
    """Rows to persistent objects of ``session`` (what ``loading._instance`` does for columns)."""
    identity_map = session.identity_map
    # A fresh session (the common case) has nothing to find: skip the per-row lookup.
    # Rows of one result never repeat a primary key, so objects made here cannot collide.
    lookup = identity_map.get if len(identity_map) else None
    make = _Maker(session)
    processors = compiled.processors
    parts = query.parts
    first = parts[0]
    objects: list[Any] = []
    for row in rows:
        values: Sequence[Any] = _processed(row, processors) if processors else row
        identity_key = (first.mapper._identity_class, (values[first.pk_index],), None)
        existing = lookup(identity_key) if lookup is not None else None
        if existing is not None:
            if not first.key_set.issubset(existing.__dict__):
                return None  # expired attributes: the ORM would refresh them from the row
            objects.append(existing)
            continue
        instance = make(first, values, identity_key)
        if query.joined_key is not None:
            child = parts[1]
            child_key = (child.mapper._identity_class, (values[child.pk_index],), None)
            related = identity_map.get(child_key)
            if related is None:
                related = make(child, values, child_key)
            instance.__dict__[query.joined_key] = related
        objects.append(instance)
    return objects


class _Maker:
    """Creates one persistent object from a slice of a row, as the ORM loader does."""

    __slots__ = ("add", "session_id")

    def __init__(self, session: Session) -> None:
        self.add = session.identity_map._add_unpresent
        self.session_id = session.hash_key

    def __call__(self, part: _Part, values: Sequence[Any], identity_key: Any) -> Any:
        mapper = part.mapper
        if part.discriminator is not None:
            mapper = mapper.polymorphic_map.get(values[part.discriminator], mapper)
        instance = mapper.class_manager.new_instance()
        state = instance_state(instance)
        own = (
            values
            if part.start == 0 and part.stop == len(values)
            else values[part.start : part.stop]
        )
        instance.__dict__.update(zip(part.keys, own))  # noqa: B905 — same length by construction
        state.key = identity_key  # identity_token stays None: no horizontal sharding
        state.session_id = self.session_id
        self.add(state, identity_key)
        return instance
