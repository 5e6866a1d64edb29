"""Audit columns and ``audit_log`` rows, written on flush for sessions that ask for them.

A unit of work puts an :class:`AuditContext` (actor, reason) into its session's ``info``.
Two listeners, installed once on :class:`sqlalchemy.orm.Session` by
:func:`install_audit_listeners`, act only on sessions carrying that context:

``before_flush``
    fills ``created_by``/``updated_by``/``change_reason`` (:class:`AuditMixin`) of new and
    changed rows from the actor and reason;
``after_flush``
    writes one ``audit_log`` row per inserted, updated, soft-deleted, restored or deleted
    row, with ``changes`` = ``{column: [old, new]}`` for the changed columns only, in
    JSON-safe form (``Decimal`` → text, ``datetime`` → ISO 8601), in one multi-row
    ``INSERT`` on the flush's own connection.  ``transaction_id`` is filled by the
    column's server default (``pg_current_xact_id()``), so it costs no round trip.

Secrets (``webhooks.secret``, ``clients.api_key_hash`` and any column with
``info={"sensitive": True}``) are recorded as ``"[redacted]"``.  Statements that bypass the
ORM flush (bulk ``INSERT ... ON CONFLICT``, ``COPY``, atomic counter updates) are not
audited row by row.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, Table, event, insert, inspect
from sqlalchemy.orm import InstanceState, Mapper, Session, UOWTransaction

from biotech_ma_db.models import AuditAction, AuditLogEntry, AuditMixin, Base

__all__ = [
    "AUDIT_INFO_KEY",
    "BOOKKEEPING_COLUMNS",
    "REDACTED",
    "AuditContext",
    "audit_context",
    "flush_listeners",
    "inserted_changes",
    "install_audit_listeners",
    "json_safe",
]

AUDIT_INFO_KEY: Final = "biotech_ma_db.audit"
"""Key of the :class:`AuditContext` in ``Session.info``."""

REDACTED: Final = "[redacted]"
"""What ``audit_log.changes`` shows instead of a secret."""

_UNAUDITED_TABLES: Final = frozenset({"audit_log", "webhook_deliveries"})
BOOKKEEPING_COLUMNS: Final = frozenset(
    {"id", "created_at", "updated_at", "version", "created_by", "updated_by", "change_reason"}
)
"""Columns ``audit_log.changes`` leaves out: keys, timestamps, versions, the audit columns."""
_SECRET_COLUMNS: Final = frozenset({"secret", "api_key_hash"})

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]


@dataclass(frozen=True, slots=True)
class AuditContext:
    """Who is changing rows in a session, and why.

    Attributes:
        actor: Written to ``created_by``/``updated_by`` and ``audit_log.actor``.
        reason: Written to ``change_reason`` and ``audit_log.reason``.
    """

    actor: str | None
    reason: str | None


def audit_context(session: Session) -> AuditContext | None:
    """The audit context of a (sync) session, if a unit of work set one."""
    context = session.info.get(AUDIT_INFO_KEY)
    return context if isinstance(context, AuditContext) else None


def install_audit_listeners() -> None:
    """Register the flush listeners on ``Session`` (idempotent; no effect without context)."""
    if not event.contains(Session, "before_flush", _fill_audit_columns):
        event.listen(Session, "before_flush", _fill_audit_columns)
    if not event.contains(Session, "after_flush", _write_audit_log):
        event.listen(Session, "after_flush", _write_audit_log)


def flush_listeners() -> tuple[object, ...]:
    """The listeners :func:`install_audit_listeners` registers (for "is anyone else listening")."""
    return (_fill_audit_columns, _write_audit_log)


def inserted_changes(mapper: Mapper[Any], values: Mapping[str, object]) -> dict[str, JSONValue]:
    """``audit_log.changes`` of a new row with ``values``: ``[null, value]`` per set column.

    Bookkeeping columns and ``None`` values are left out; secrets are redacted.
    """
    changes: dict[str, JSONValue] = {}
    for attr in mapper.column_attrs:
        key = attr.key
        value = values.get(key)
        if value is None or key in BOOKKEEPING_COLUMNS:
            continue
        secret = _is_secret(key, attr.columns[0])
        changes[key] = [REDACTED, REDACTED] if secret else [None, json_safe(value)]
    return changes


def _is_secret(key: str, column: ColumnElement[Any]) -> bool:
    return key in _SECRET_COLUMNS or bool(column.info.get("sensitive", False))


def json_safe(value: object) -> JSONValue:
    """``value`` as something ``json.dumps`` accepts, losslessly where it matters."""
    if isinstance(value, enum.Enum):
        return json_safe(value.value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item) for item in value]
    return str(value)


def _fill_audit_columns(session: Session, _flush_context: UOWTransaction, _: object) -> None:
    context = audit_context(session)
    if context is None:
        return
    for row in session.new:
        if isinstance(row, AuditMixin):
            if context.actor is not None:
                row.created_by = context.actor
            _stamp(row, context)
    for row in session.dirty:
        if isinstance(row, AuditMixin) and session.is_modified(row, include_collections=False):
            _stamp(row, context)


def _stamp(row: AuditMixin, context: AuditContext) -> None:
    if context.actor is not None:
        row.updated_by = context.actor
    if context.reason is not None:
        row.change_reason = context.reason


def _write_audit_log(session: Session, _flush_context: UOWTransaction) -> None:
    context = audit_context(session)
    if context is None:
        return
    entries: list[dict[str, object]] = []
    for row in session.new:
        entries.extend(_entry(row, context, AuditAction.INSERT))
    for row in session.dirty:
        if session.is_modified(row, include_collections=False):
            entries.extend(_entry(row, context, AuditAction.UPDATE))
    for row in session.deleted:
        entries.extend(_entry(row, context, AuditAction.DELETE))
    if entries:
        table = cast("Table", AuditLogEntry.__table__)
        session.connection().execute(insert(table), entries)


def _entry(row: object, context: AuditContext, action: AuditAction) -> list[dict[str, object]]:
    if not isinstance(row, Base):
        return []
    state = inspect(row)
    mapper = state.mapper
    table_name = getattr(mapper.local_table, "name", "")
    if table_name in _UNAUDITED_TABLES:
        return []
    if action is AuditAction.INSERT:
        return [_log_row(context, table_name, state, action, inserted_changes(mapper, state.dict))]
    changes: dict[str, JSONValue] = {}
    for attr in mapper.column_attrs:
        key = attr.key
        if key in BOOKKEEPING_COLUMNS:
            continue
        if action is AuditAction.UPDATE:
            history = state.attrs[key].history
            if not history.has_changes():
                continue
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
        elif key not in state.dict:
            continue
        else:
            old, new = state.dict[key], None
        if action is not AuditAction.UPDATE and old is None:
            continue
        secret = _is_secret(key, attr.columns[0])
        changes[key] = [REDACTED, REDACTED] if secret else [json_safe(old), json_safe(new)]
    if action is AuditAction.UPDATE:
        if not changes:
            return []
        action = _soft_delete_action(changes.get("deleted_at"))
    return [_log_row(context, table_name, state, action, changes)]


def _log_row(
    context: AuditContext,
    table_name: str,
    state: InstanceState[Any],
    action: AuditAction,
    changes: dict[str, JSONValue],
) -> dict[str, object]:
    return {
        "actor": context.actor,
        "reason": context.reason,
        "table_name": table_name,
        # The key is in the state's dict (RETURNING); identity is assigned after this event.
        "row_id": state.dict.get("id"),
        "action": action,
        "changes": changes,
    }


def _soft_delete_action(deleted_at: JSONValue) -> AuditAction:
    if isinstance(deleted_at, list) and len(deleted_at) == 2:
        old, new = deleted_at
        if old is None and new is not None:
            return AuditAction.SOFT_DELETE
        if old is not None and new is None:
            return AuditAction.RESTORE
    return AuditAction.UPDATE
