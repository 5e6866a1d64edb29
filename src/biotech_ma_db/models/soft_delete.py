"""The soft-delete filter: rows with ``deleted_at`` set are invisible to ORM queries.

Importing :mod:`biotech_ma_db.models` installs one ``do_orm_execute`` listener on
:class:`sqlalchemy.orm.Session` (so on every session, including the one inside each
``AsyncSession``).  It adds ``deleted_at IS NULL`` for every :class:`SoftDeleteMixin`
model to every ORM ``SELECT``: direct queries, ``session.get()``, and relationship loads
such as ``selectinload``.  Opt out per statement or per call::

    await session.execute(select(Company).execution_options(include_deleted=True))
    await session.get(Company, 1, execution_options={"include_deleted": True})

The option also reaches the relationship loads that the statement triggers.  Refreshes of
already-loaded objects (column loads) are never filtered, so an object soft-deleted in
this session can still be refreshed.  Core statements on tables (``select(table)``,
``text()``) are not ORM statements and are not filtered.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from biotech_ma_db.models.base import SoftDeleteMixin

__all__ = ["INCLUDE_DELETED", "install_soft_delete_filter", "soft_delete_filter"]

INCLUDE_DELETED = "include_deleted"
"""The execution option that turns the filter off for one statement."""


def soft_delete_filter(execute_state: ORMExecuteState) -> None:
    """``do_orm_execute`` hook: hide soft-deleted rows unless ``include_deleted`` is set."""
    if (
        execute_state.is_select
        and not execute_state.is_column_load
        and not execute_state.execution_options.get(INCLUDE_DELETED, False)
    ):
        execute_state.statement = execute_state.statement.options(
            with_loader_criteria(
                SoftDeleteMixin,
                lambda cls: cls.deleted_at.is_(None),
                include_aliases=True,
            )
        )


def install_soft_delete_filter() -> None:
    """Register :func:`soft_delete_filter` on ``Session`` (idempotent)."""
    if not event.contains(Session, "do_orm_execute", soft_delete_filter):
        event.listen(Session, "do_orm_execute", soft_delete_filter)
