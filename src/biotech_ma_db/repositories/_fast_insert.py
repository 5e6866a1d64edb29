"""The fast insert path: ``create`` of one row as one statement, its audit row included.

``create`` through the ORM flushes: the unit-of-work sort, the persistence pipeline, the
audit listeners (which send a second statement for ``audit_log``) and the state
bookkeeping cost about a millisecond of client CPU, several times the round trip.  When
nothing else waits to be flushed and no hook expects a flush, ``create`` instead sends one
statement, built and cached once per model and set of columns::

    WITH new_row AS (INSERT INTO <table> (<given columns>) VALUES (...) RETURNING <all>),
         audit_row AS (INSERT INTO audit_log (actor, reason, table_name, row_id, action,
                                              changes)
                       SELECT ..., new_row.id, 'INSERT', <changes> FROM new_row)
    SELECT <all> FROM new_row

on the session's connection, compiled once and sent to asyncpg directly as the fast reads
are (:func:`._fast_run.fetch_written`: the deferred ``BEGIN`` first, then the statement
with the reads' error translation, tracing span and slow-query logging); and it loads
the returned row as a persistent object of the session, as a read would.  Through
SQLAlchemy's Core the same statement costs about 200 µs more client CPU per call.
Behind pgbouncer, where nothing goes to the driver directly, it runs as a Core statement.

What the caller gets is what the ORM path gives (``tests/integration/test_fast_insert.py``
pins it): the object with every column as stored, the same ``audit_log`` row
(``changes`` holds ``[null, value]`` for each given non-null column, JSON-safe as
:func:`~biotech_ma_db.auditing.json_safe` makes it, secrets redacted, plus the server
defaults the ORM would fetch back, rendered the same way in SQL), the audit columns
stamped, the same errors.  A failed statement leaves the transaction unusable, as a
failed flush does: the unit of work rolls it back.

The path declines (:func:`insert_object` returns ``None``, and the ORM flushes) when:

- the session has changes of its own (a flush would write them with this row, in order);
- a hook other than the library's own listens for flushes, inserts or attachments;
- the model is versioned or polymorphic, or has a server default the SQL rendering below
  does not cover (checked once per model).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, cast

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    Integer,
    Numeric,
    Select,
    SmallInteger,
    String,
    Table,
    Text,
    bindparam,
    case,
    func,
    insert,
    literal,
    literal_column,
    null,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, Session

from biotech_ma_db.auditing import (
    BOOKKEEPING_COLUMNS,
    audit_context,
    flush_listeners,
    inserted_changes,
)
from biotech_ma_db.engine.read_only import ensure_writable, read_only_listeners
from biotech_ma_db.models import AuditAction, AuditLogEntry, AuditMixin
from biotech_ma_db.repositories._fast_run import fetch_written
from biotech_ma_db.repositories._fast_shapes import FastQuery, entity_columns
from biotech_ma_db.sa_internals import has_flush_hooks, session_is_clean

__all__ = ["insert_object"]

_AUDIT_TABLE: Final = cast("Table", AuditLogEntry.__table__)
_EMPTY: Final[ColumnElement[Any]] = literal_column("'{}'::jsonb")
# Server-default column types whose value ``to_jsonb`` renders as ``json_safe`` does.
_AS_IS: Final = (Boolean, SmallInteger, Integer, BigInteger, String, Text, Date, JSONB)


class _InsertShape:
    """One model's fast insert: a statement per set of given columns, and its compiled form."""

    __slots__ = ("columns", "defaults", "mapper", "statements", "table")

    def __init__(self, mapper: Mapper[Any]) -> None:
        self.mapper = mapper
        self.table = cast("Table", mapper.local_table)
        columns, keys = entity_columns(mapper)
        self.columns = columns
        # Server-default columns the audit row shows: (key, column, SQL rendering).
        self.defaults = tuple(
            (key, column, rendering)
            for key, column in zip(keys, columns, strict=True)
            if column.server_default is not None and key not in BOOKKEEPING_COLUMNS
            for rendering in (_json_of(column),)
        )
        self.statements: dict[tuple[frozenset[str], bool], tuple[Select[Any], FastQuery]] = {}

    @property
    def supported(self) -> bool:
        return all(rendering is not None for _, _, rendering in self.defaults)

    def statement(self, keys: frozenset[str], audited: bool) -> tuple[Select[Any], FastQuery]:
        """The statement for these given columns, and its driver form (which loads rows)."""
        found = self.statements.get((keys, audited))
        if found is None:
            stmt = self._build(keys, audited)
            found = (stmt, FastQuery(self.mapper, lambda _columns: stmt))
            self.statements[(keys, audited)] = found
        return found

    def _build(self, keys: frozenset[str], audited: bool) -> Select[Any]:
        table, mapper = self.table, self.mapper
        given = {
            attr.columns[0].name: bindparam(attr.key, type_=attr.columns[0].type)
            for attr in mapper.column_attrs
            if attr.key in keys
        }
        columns = self.columns
        new_row = insert(table).values(given).returning(*columns).cte("new_row")
        # In mapper order, as the loader reads them.
        stmt = select(*(new_row.c[column.name] for column in columns))
        if not audited:
            return stmt
        changes: ColumnElement[Any] = bindparam("audit_changes", type_=JSONB)
        for key, column, rendering in self.defaults:
            if key in keys:
                continue
            value = new_row.c[column.name]
            assert rendering is not None  # checked by ``supported``
            entry = func.jsonb_build_object(
                literal(key), func.jsonb_build_array(null(), rendering(value))
            )
            changes = changes.op("||")(case((value.is_(None), _EMPTY), else_=entry))
        audit_row = (
            insert(_AUDIT_TABLE)
            .from_select(
                ["actor", "reason", "table_name", "row_id", "action", "changes"],
                select(
                    bindparam("audit_actor", type_=_AUDIT_TABLE.c.actor.type),
                    bindparam("audit_reason", type_=_AUDIT_TABLE.c.reason.type),
                    literal(table.name, type_=_AUDIT_TABLE.c.table_name.type),
                    new_row.c[mapper.primary_key[0].name],
                    literal(AuditAction.INSERT, type_=_AUDIT_TABLE.c.action.type),
                    changes,
                ).select_from(new_row),
            )
            .cte("audit_row")
        )
        return stmt.add_cte(audit_row)


def _json_of(column: Any) -> Any:
    """How SQL renders ``column``'s value as ``json_safe`` renders the Python value, or None."""
    type_ = column.type
    if isinstance(type_, Numeric) and not isinstance(type_, Integer):
        return lambda value: func.to_jsonb(value.cast(Text))  # Decimal -> its text
    if isinstance(type_, ARRAY) and isinstance(type_.item_type, String | Text):
        return func.to_jsonb
    if isinstance(type_, _AS_IS) and not isinstance(type_, ARRAY):
        return func.to_jsonb
    return None


_shapes: dict[Mapper[Any], _InsertShape | None] = {}


def _shape(mapper: Mapper[Any]) -> _InsertShape | None:
    if mapper in _shapes:
        return _shapes[mapper]
    shape: _InsertShape | None = None
    if (
        mapper.version_id_col is None
        and mapper.polymorphic_on is None
        and mapper.inherits is None
        and len(mapper.primary_key) == 1
        and mapper.local_table is not _AUDIT_TABLE
    ):
        candidate = _InsertShape(mapper)
        shape = candidate if candidate.supported else None
    _shapes[mapper] = shape
    return shape


_LIBRARY_HOOKS: Final = frozenset((*flush_listeners(), *read_only_listeners()))


async def insert_object(
    session: AsyncSession, mapper: Mapper[Any], values: Mapping[str, object]
) -> Any | None:
    """Insert one row of ``mapper`` with validated ``values``; the persistent object.

    ``None`` when the fast path does not apply (see the module's text): the caller
    flushes through the ORM instead.

    Raises:
        ReadOnlyViolationError: The session is read-only; nothing was sent.
        DatabaseError: The server refused the row (translated, as on the ORM path).
    """
    sync = session.sync_session
    ensure_writable(sync, "an INSERT")
    shape = _shape(mapper)
    if shape is None or not _session_allows(sync, mapper):
        return None
    params = dict(values)
    context = audit_context(sync)
    if context is not None and issubclass(mapper.class_, AuditMixin):
        if context.actor is not None:
            params["created_by"] = params["updated_by"] = context.actor
        if context.reason is not None:
            params["change_reason"] = context.reason
    stmt, query = shape.statement(frozenset(params), context is not None)
    if context is not None:
        params["audit_actor"] = context.actor
        params["audit_reason"] = context.reason
        params["audit_changes"] = inserted_changes(mapper, values)
    ran = await fetch_written(session, sync, query, params)
    if ran is None:
        connection = await session.connection(bind_arguments={"mapper": mapper})
        rows: list[Any] = list((await connection.execute(stmt, params)).all())
        loaded = query.loader.load(sync, rows, ())
    else:
        compiled, rows = ran
        loaded = query.loader.load(sync, rows, compiled.processors)
    # A new key is never in the identity map, so the loader never declines.
    assert loaded is not None
    return loaded[0]


def _session_allows(session: Session, mapper: Mapper[Any]) -> bool:
    return session_is_clean(session) and not has_flush_hooks(
        session, mapper, besides=_LIBRARY_HOOKS
    )
