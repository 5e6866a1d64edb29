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

Modules: this one decides whether the fast path may run and turns rows into results;
:mod:`._fast_shapes` holds the query shapes and their compiled form, :mod:`._fast_run`
runs a shape on a connection.  The SQLAlchemy internals all three rely on are behind
:mod:`biotech_ma_db.sa_internals`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, Session

from biotech_ma_db.models.soft_delete import soft_delete_filter
from biotech_ma_db.repositories._fast_run import fetch as _fetch  # a module global: tests wrap it
from biotech_ma_db.repositories._fast_shapes import Builder, Compiled, FastQuery, QueryShapes
from biotech_ma_db.sa_internals import Processor, has_orm_listeners, session_is_clean

__all__ = ["Builder", "FastQuery", "QueryShapes", "RowT", "fetch_objects", "fetch_rows"]

RowT = TypeVar("RowT", bound=NamedTuple)

_ALLOWED_ORM_HOOKS: Final = frozenset({soft_delete_filter})


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
    if query.joined_key is not None or row_type._fields != query.keys:
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


def _session_allows(session: Session, mapper: Mapper[Any]) -> bool:
    if session.autoflush and not session_is_clean(session):
        return False
    return not has_orm_listeners(session, mapper, besides=_ALLOWED_ORM_HOOKS)


def _processed(record: Sequence[Any], processors: Sequence[tuple[int, Processor]]) -> list[Any]:
    values = list(record)
    for index, processor in processors:
        values[index] = processor(values[index])
    return values


def _load(
    session: Session, query: FastQuery, compiled: Compiled, rows: Sequence[Any]
) -> list[Any] | None:
    """Rows to persistent objects of ``session`` (what ``loading._instance`` does for columns).

    ``None`` when an object found in the identity map has expired attributes: the ORM
    would refresh them from the row.
    """
    return query.loader.load(session, rows, compiled.processors)
