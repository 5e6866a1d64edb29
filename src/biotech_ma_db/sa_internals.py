"""Every SQLAlchemy internal or private API this library relies on, behind named functions.

The fast read path (``repositories/_fast*.py``), the engine hooks and a few repositories
reach below SQLAlchemy's public API for speed.  All of that contact is here, so an
upgrade has one module to check; this module imports nothing from the library, so every
layer may use it.  Tested with SQLAlchemy **2.1.0** (the lowest of the range in
``pyproject.toml``) and **2.1.9** (the highest at the time of writing) by
``.ci/sqlalchemy-range``, which runs the fast-path equivalence tests on both ends of the
range (see CONTRIBUTING.md).

Internals relied on (name, where, what for, what breaks if it changes):

- ``Mapper._identity_class`` (``sqlalchemy.orm.mapper``) and the identity-key layout
  ``(class, (primary key,), identity_token)`` (``orm._typing._IdentityKeyType``):
  :class:`EntityLoader` builds identity keys without ``Mapper.identity_key_from_row``.
  A change makes fast reads miss (or duplicate) objects already in the session.
- ``IdentityMap._add_unpresent`` (``sqlalchemy.orm.identity``): registers a new object
  the ORM loader's way, skipping the "already present?" check.  Breaks fast-read object
  loading (``AttributeError``) if renamed.
- ``Session.hash_key`` and ``InstanceState.session_id`` / ``InstanceState.key`` written
  directly (``sqlalchemy.orm.session``, ``sqlalchemy.orm.state``): make an object
  persistent in a session without ``Session._register_persistent``.  A change leaves the
  objects detached or invisible to ``Session.__contains__``.
- ``ClassManager.new_instance`` (``sqlalchemy.orm.instrumentation``) and
  ``sqlalchemy.orm.base.instance_state``: create an instance without ``__init__``, as the
  ORM loader does, and reach its state.
- The instance ``__dict__`` is the state's dict (default instrumentation): loaded
  values are written to it in one ``update`` and an object counts as fully loaded when
  every column key is in it.  Custom instrumentation would break this.
- ``Session.dispatch.do_orm_execute`` / ``.loaded_as_persistent`` and
  ``ClassManager.dispatch.load`` (``sqlalchemy.event``): the listener collections, read
  to decline the fast path when a hook expects the ORM's query context.  A change stops
  :func:`has_orm_listeners` from seeing listeners (they would silently not run).
  Likewise the flush, attach and insert collections of ``Session.dispatch`` and
  ``Mapper.dispatch`` and ``ClassManager.dispatch.init``, read by
  :func:`has_flush_hooks` to decline the fast insert
  (``repositories/_fast_insert.py``), which loads the new row as a read would.
- ``Session._is_clean()`` (``sqlalchemy.orm.session``): whether autoflush would write
  anything; the fast path declines when it would, ``ConnectionManager.session`` skips an
  empty commit when not.  Renamed: ``AttributeError`` on every fast read and session exit.
- ``greenlet_spawn`` / ``await_`` (``sqlalchemy.util.concurrency``): run pool calls
  (checkout, invalidate) from async code, and an asyncpg call from the pool's sync ping.
  Moved or renamed: ``ImportError`` here (SQLAlchemy 2.0 calls ``await_`` ``await_only``,
  which is why the range starts at 2.1.0).
- ``AsyncAdapt_dbapi_connection`` and its ``_handle_exception``
  (``sqlalchemy.connectors.asyncio``): the asyncpg adapter's connection class, and what
  turns an asyncpg error into the adapter's DBAPI error, so the pool classifies a failed
  ping as SQLAlchemy's own ping would.  Renamed: a failed ping raises ``AttributeError``.
- ``Dialect.do_ping`` replaced on one dialect *instance* (:func:`replace_ping`): relies
  on the pool calling ``dialect.do_ping(dbapi_connection)`` for ``pool_pre_ping``.
- ``AsyncAdaptedQueue.get`` (``sqlalchemy.util.queue``) taking an item that is already
  there without awaiting (newer 2.1 releases; 2.1.0 always awaits, checked once at
  import), ``MissingGreenlet`` raised by ``await_`` before anything is awaited, and
  ``QueuePool`` leaving its state whole when a checkout fails that way (the record goes
  back to the pool, an overflow slot is given back): :func:`checkout_without_io` checks
  out from async code without a greenlet and falls back when I/O turns out to be
  needed.  A change there could leak a checked-out connection or count it twice.
- ``TypedReturnsRows`` and ``LateralFromClause`` (``sqlalchemy.sql.selectable``):
  not exported from ``sqlalchemy``; re-exported here for annotations.

Public API relied on in a way particular to the asyncpg dialect (no private name, but the
fast path assumes it): ``PoolProxiedConnection.driver_connection`` is an
``asyncpg.Connection``; compiled SQL uses ``$n`` placeholders in
``SQLCompiler.positiontup`` order (:func:`compile_positional`); the asyncpg dialect's
result-processor ``coltype`` is the column's type OID (:func:`result_processor`);
``ARRAY``'s processors only copy the list when the item type has no processor.

``set_committed_value`` (``sqlalchemy.orm.attributes``) is public; it is wrapped as
:func:`set_committed` so that every write past the unit of work is listed here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from typing import Any, Final, NamedTuple, TypeAlias, TypeVar, TypeVarTuple

from sqlalchemy import ARRAY, BindParameter, ClauseElement
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.base import instance_state
from sqlalchemy.pool import PoolProxiedConnection, QueuePool
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import LateralFromClause, TypedReturnsRows
from sqlalchemy.types import TypeEngine
from sqlalchemy.util.concurrency import await_, greenlet_spawn
from sqlalchemy.util.queue import AsyncAdaptedQueue

__all__ = [
    "AsyncAdaptedConnection",
    "EntityLoader",
    "IdentityKey",
    "LateralFromClause",
    "Positional",
    "Processor",
    "ProcessorAt",
    "TypedReturnsRows",
    "await_driver",
    "begin_on_driver",
    "bind_processor",
    "checkout_without_io",
    "compile_positional",
    "has_orm_listeners",
    "replace_ping",
    "result_processor",
    "run_sync_in_greenlet",
    "session_is_clean",
    "set_committed",
]

Ts = TypeVarTuple("Ts")
T = TypeVar("T")

AsyncAdaptedConnection: TypeAlias = AsyncAdapt_dbapi_connection
"""What the pool holds as the DBAPI connection of an async driver (asyncpg's adapter)."""
Processor: TypeAlias = Callable[[Any], Any]
ProcessorAt: TypeAlias = tuple[int, Processor]
IdentityKey: TypeAlias = tuple[type[Any], tuple[Any, ...], None]


# -- Session state and ORM events ------------------------------------------------------


def session_is_clean(session: Session) -> bool:
    """Whether ``session`` holds no new, deleted or modified objects (nothing to flush)."""
    return session._is_clean()


def has_orm_listeners(
    session: Session, mapper: Mapper[Any], *, besides: Collection[object] = ()
) -> bool:
    """Whether a hook expects the ORM's query context for a read of ``mapper``.

    That is a ``do_orm_execute`` listener on ``session`` other than those in ``besides``,
    a ``loaded_as_persistent`` listener, or a ``load`` listener on ``mapper``'s class.
    """
    dispatch = session.dispatch
    if any(fn not in besides for fn in dispatch.do_orm_execute):
        return True
    if dispatch.loaded_as_persistent:
        return True
    return bool(mapper.class_manager.dispatch.load)


_FLUSH_SESSION_EVENTS: Final = (
    "before_flush",
    "after_flush",
    "after_flush_postexec",
    "transient_to_pending",
    "pending_to_persistent",
    "before_attach",
    "after_attach",
)
_FLUSH_MAPPER_EVENTS: Final = ("before_insert", "after_insert")


def has_flush_hooks(
    session: Session, mapper: Mapper[Any], *, besides: Collection[object] = ()
) -> bool:
    """Whether a hook expects a flush to insert an object of ``mapper``.

    That is a session listener for flushes or for objects joining it other than those in
    ``besides``, a ``before_insert``/``after_insert`` listener on ``mapper``, or an
    ``init`` listener on its class (the fast insert does not call the constructor)
    other than SQLAlchemy's own (which configures mappers, long done by then).
    """
    dispatch = session.dispatch
    for name in _FLUSH_SESSION_EVENTS:
        if any(fn not in besides for fn in getattr(dispatch, name)):
            return True
    mapper_dispatch = mapper.dispatch
    if any(getattr(mapper_dispatch, name) for name in _FLUSH_MAPPER_EVENTS):
        return True
    return any(
        not getattr(fn, "__module__", "").startswith("sqlalchemy.")
        for fn in mapper.class_manager.dispatch.init
    )


def set_committed(instance: object, key: str, value: object) -> None:
    """Set attribute ``key`` of ``instance`` as if loaded: no history, nothing to flush."""
    set_committed_value(instance, key, value)


# -- Loading rows as persistent objects ------------------------------------------------


class EntityLoader:
    """How rows become persistent objects of one mapper, as the ORM loader does for columns.

    Built once per query shape; :meth:`load` turns one result's rows into objects of a
    session, with everything the row loop needs bound before it starts.

    Args:
        mapper: The mapper (the base mapper of a polymorphic hierarchy).
        keys: Column attribute keys, in the order of their values in the row slice.
        primary_key: Position of the one-column primary key in the row.
        columns: The slice of the row holding ``keys``' values; ``None`` for the whole row.
        discriminator: Position of the polymorphic discriminator in the row, if any.
        joined: ``(relationship key, loader)`` of a many-to-one whose columns are in the
            same row; its object becomes the loaded value of that relationship.
    """

    __slots__ = ("_plan", "identity_class", "joined", "keys", "mapper", "primary_key")

    def __init__(
        self,
        mapper: Mapper[Any],
        keys: tuple[str, ...],
        *,
        primary_key: int,
        columns: slice | None = None,
        discriminator: int | None = None,
        joined: tuple[str, EntityLoader] | None = None,
    ) -> None:
        self.mapper = mapper
        self.keys = keys
        self.joined = joined
        self.primary_key = primary_key
        self.identity_class: type[Any] = mapper._identity_class
        # One tuple, unpacked once per result: cheaper than eight attribute reads.
        self._plan = (
            mapper,
            keys,
            frozenset(keys),
            primary_key,
            columns,
            discriminator,
            mapper.polymorphic_map,
            self.identity_class,
        )

    def load(
        self, session: Session, rows: Sequence[Sequence[Any]], processors: Sequence[ProcessorAt]
    ) -> list[Any] | None:
        """``rows`` as persistent objects of ``session``, in order.

        An object already in the identity map is returned as it is; ``None`` when one of
        them has expired attributes (the ORM would refresh them from the row).

        Args:
            session: The session the objects join.
            rows: One result's rows, which never repeat this entity's key.
            processors: ``(position, result processor)`` to apply to each row first.
        """
        mapper, keys, key_set, primary_key, columns, discriminator, polymorphic_map, cls = (
            self._plan
        )
        identity_map = session.identity_map
        # A fresh session (the common case) has nothing to find: skip the per-row lookup.
        lookup = identity_map.get if len(identity_map) else None
        add = identity_map._add_unpresent
        session_id = session.hash_key
        joined = self.joined
        if joined is not None:
            relation, child = joined
            create_child = child._creator(session)
            child_class, child_key_at = child.identity_class, child.primary_key
        objects: list[Any] = []
        append = objects.append
        for row in rows:
            values = row
            if processors:
                values = list(row)
                for index, processor in processors:
                    values[index] = processor(values[index])
            identity_key = (cls, (values[primary_key],), None)
            if lookup is not None and (existing := lookup(identity_key)) is not None:
                if not key_set.issubset(existing.__dict__):
                    return None
                append(existing)
                continue
            # What _creator's function does, inlined: one Python call less per row.
            target = mapper
            if discriminator is not None:
                target = polymorphic_map.get(values[discriminator], mapper)
            instance = target.class_manager.new_instance()
            state = instance_state(instance)
            loaded = instance.__dict__
            loaded.update(zip(keys, values if columns is None else values[columns]))  # noqa: B905
            state.key = identity_key  # identity_token stays None: no horizontal sharding
            state.session_id = session_id
            add(state, identity_key)
            if joined is not None:
                child_key = (child_class, (values[child_key_at],), None)
                related = identity_map.get(child_key)
                if related is None:
                    related = create_child(values, child_key)
                loaded[relation] = related
            append(instance)
        return objects

    def _creator(self, session: Session) -> Callable[[Sequence[Any], IdentityKey], Any]:
        """Makes a new persistent object of ``session`` from a row and its identity key."""
        mapper, keys, _, _, columns, discriminator, polymorphic_map, _ = self._plan
        add = session.identity_map._add_unpresent
        session_id = session.hash_key

        def create(values: Sequence[Any], identity_key: IdentityKey) -> Any:
            target = mapper
            if discriminator is not None:
                target = polymorphic_map.get(values[discriminator], mapper)
            instance = target.class_manager.new_instance()
            state = instance_state(instance)
            own = values if columns is None else values[columns]
            instance.__dict__.update(zip(keys, own))  # noqa: B905 — same length by construction
            state.key = identity_key
            state.session_id = session_id
            add(state, identity_key)
            return instance

        return create


# -- Compiled statements and type processors -------------------------------------------


class Positional(NamedTuple):
    """A statement compiled for a positional-parameter dialect (asyncpg's ``$n``)."""

    sql: str
    params: tuple[tuple[str, BindParameter[Any]], ...]
    """``(name, bind parameter)`` in placeholder order."""


def compile_positional(statement: ClauseElement, dialect: Dialect) -> Positional:
    """Compile ``statement`` for ``dialect``: its SQL text and bind parameters in order."""
    compiled = statement.compile(dialect=dialect)
    if not isinstance(compiled, SQLCompiler):
        raise TypeError(f"not a SQL statement: {statement!r}")
    binds = compiled.binds
    return Positional(
        compiled.string, tuple((name, binds[name]) for name in compiled.positiontup or ())
    )


def bind_processor(
    type_: TypeEngine[Any], dialect: Dialect, *, copy_lists: bool = True
) -> Processor | None:
    """``type_``'s bind processor for ``dialect`` (what SQLAlchemy applies to a parameter).

    Args:
        type_: The parameter's type.
        dialect: The dialect the statement runs on.
        copy_lists: With ``False``, ``None`` for an ``ARRAY`` whose processor would only
            copy the list (the caller passes lists already).
    """
    if not copy_lists and _only_copies(type_, dialect, bind=True):
        return None
    processor: Processor | None = type_.dialect_impl(dialect).bind_processor(dialect)
    return processor


def result_processor(
    type_: TypeEngine[Any], dialect: Dialect, type_oid: int, *, copy_lists: bool = True
) -> Processor | None:
    """``type_``'s result processor for a column whose server type is ``type_oid``.

    Args:
        type_: The column's type.
        dialect: The (asyncpg) dialect, whose ``coltype`` is the type OID.
        type_oid: The column's type OID, as the driver reports it.
        copy_lists: With ``False``, ``None`` for an ``ARRAY`` whose processor would only
            copy the list the driver has just decoded.
    """
    if not copy_lists and _only_copies(type_, dialect, bind=False):
        return None
    processor: Processor | None = type_.dialect_impl(dialect).result_processor(dialect, type_oid)
    return processor


def _only_copies(type_: TypeEngine[Any], dialect: Dialect, *, bind: bool) -> bool:
    """An ``ARRAY`` without an item processor: its processor rebuilds the list as it is."""
    if not isinstance(type_, ARRAY):
        return False
    item = type_.item_type.dialect_impl(dialect)
    if bind:
        return item.bind_processor(dialect) is None
    return not type_.as_tuple and item.result_processor(dialect, None) is None


# -- Greenlets and the driver connection -----------------------------------------------


def run_sync_in_greenlet(fn: Callable[[*Ts], T], /, *args: *Ts) -> Coroutine[Any, Any, T]:
    """Run SQLAlchemy's sync ``fn`` (a pool checkout, an invalidation) from async code."""
    return greenlet_spawn(fn, *args)


def checkout_without_io(engine: Engine) -> PoolProxiedConnection | None:
    """A pooled connection of ``engine`` checked out from async code without a greenlet.

    ``None`` when the checkout needs I/O (no idle connection, a new or recycled one to
    open, a ping to send) or when checkout listeners are installed (they might do I/O
    after the connection is handed over): the caller then checks out through
    :func:`run_sync_in_greenlet` as usual.  Saves the greenlet (a few microseconds) on
    the common case of an idle, healthy connection whose ping is deferred.
    """
    pool = engine.pool
    if not _TAKES_WITHOUT_WAITING or not isinstance(pool, QueuePool):
        return None
    if pool.checkedin() == 0 or pool.dispatch.checkout:
        return None
    try:
        return engine.raw_connection()
    except MissingGreenlet:
        # Raised before any await: the record is back in the pool, closed if it was
        # being opened, and the greenlet path opens it.
        return None


def _queue_takes_without_waiting() -> bool:
    """Whether this SQLAlchemy's async pool queue hands over an idle item without awaiting."""
    queue: AsyncAdaptedQueue[int] = AsyncAdaptedQueue()
    queue.put_nowait(1)
    try:
        return queue.get(True, None) == 1
    except MissingGreenlet:  # it awaited (and closed what it would have awaited)
        return False


_TAKES_WITHOUT_WAITING = _queue_takes_without_waiting()


def await_driver(
    dbapi_connection: AsyncAdaptedConnection, call: Callable[[Any], Awaitable[T]]
) -> T:
    """From sync code in SQLAlchemy's greenlet: ``call`` on the asyncpg connection, awaited.

    Errors are raised as the adapter's DBAPI errors, as its own methods raise them (so the
    pool sees the same disconnect errors).
    """
    try:
        return await_(call(dbapi_connection.driver_connection))
    except Exception as error:  # noqa: BLE001 — the adapter re-raises it as its DBAPI error
        dbapi_connection._handle_exception(error)


async def begin_on_driver(dbapi_connection: Any) -> None:
    """Send now the ``BEGIN`` that the asyncpg adapter defers to its first statement.

    For statements sent on the asyncpg connection itself that must run in the session's
    transaction.  Nothing is sent if the transaction is open (or the adapter autocommits).
    """
    if dbapi_connection._transaction is None:
        async with dbapi_connection._execute_mutex:
            if dbapi_connection._transaction is None:
                await dbapi_connection._start_transaction()


def replace_ping(dialect: Dialect, ping: Callable[[AsyncAdaptedConnection], bool]) -> None:
    """Make ``dialect`` (this instance only) pre-ping pooled connections with ``ping``."""
    dialect.do_ping = ping  # type: ignore[method-assign,assignment]
