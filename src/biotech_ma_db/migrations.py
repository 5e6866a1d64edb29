"""Run and inspect the Alembic migrations from Python.

The functions are synchronous and safe to call from any thread, including one whose event
loop is running (``await asyncio.to_thread(upgrade, url)`` keeps that loop free): the
asynchronous work runs on a private loop in a worker thread.  Runs in one process are
serialized, because Alembic keeps its migration context in module globals; runs in
different processes are serialized by a PostgreSQL advisory lock (see
:func:`migration_lock`)::

    from biotech_ma_db import migrations

    url = "postgresql+asyncpg://migrator@db/biotech_ma"
    migrations.upgrade(url)
    assert migrations.current(url) == migrations.heads()[0]
    assert migrations.check_schema(url) == []

The URL reaches ``env.py`` as an object in ``Config.attributes["url"]``; it is never put
in the ini configuration, where ConfigParser would interpolate ``%`` in a password.
Failures are raised as :class:`~biotech_ma_db.errors.MigrationError` with the original
exception as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, MetaData, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from biotech_ma_db.errors import MigrationError, translate_error
from biotech_ma_db.models import Base
from biotech_ma_db.partitions import partition_tables

__all__ = [
    "DEFAULT_LOCK_TIMEOUT_MS",
    "DEFAULT_LOCK_WAIT_SECONDS",
    "MIGRATION_LOCK_KEY",
    "alembic_config",
    "check_schema",
    "current",
    "downgrade",
    "heads",
    "history",
    "migration_engine",
    "migration_lock",
    "migrations_path",
    "upgrade",
]

logger = logging.getLogger("biotech_ma_db.migrations")

T = TypeVar("T")

MIGRATION_LOCK_KEY = 0x6D6967726174
"""The advisory lock key every deployer takes before migrating (``"migrat"`` in ASCII)."""

DEFAULT_LOCK_WAIT_SECONDS = 60.0
"""How long to wait for another migration to finish when nothing else is configured."""

DEFAULT_LOCK_TIMEOUT_MS = 3000
"""``lock_timeout`` while migrating: DDL waiting behind application traffic fails fast."""

_LOCK_POLL_SECONDS = 0.5
_ASYNC_DRIVER = "postgresql+asyncpg"

# Alembic's `context` and `op` proxies are module globals: one command at a time per process.
_alembic_lock = threading.Lock()


def migrations_path() -> Path:
    """The folder holding ``env.py`` and ``versions/``.

    The copy shipped inside the wheel (``biotech_ma_db/_migrations``) wins; otherwise the
    ``migrations/`` folder of a source checkout is used.

    Raises:
        MigrationError: Neither folder exists.
    """
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_migrations", package_dir.parents[1] / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise MigrationError(f"no migrations folder found next to {package_dir}")


def _as_url(url: str | URL) -> URL:
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError):
        raise MigrationError("not a valid database URL") from None  # it may hold a password
    if parsed.get_backend_name() != "postgresql":
        raise MigrationError(f"migrations need a postgresql URL, got {parsed.drivername!r}")
    return parsed.set(drivername=_ASYNC_DRIVER)


def alembic_config(
    url: str | URL | None = None,
    *,
    lock_wait_seconds: float | None = None,
    connection: Connection | AsyncConnection | AsyncEngine | None = None,
    connect_args: Mapping[str, Any] | None = None,
) -> Config:
    """An Alembic ``Config`` for the project's migrations, without an ini file.

    Args:
        url: Database to migrate; when ``None`` (and no ``connection``), ``env.py`` reads
            :class:`~biotech_ma_db.settings.DatabaseSettings`.
        lock_wait_seconds: Bound on the wait for the migration lock.
        connection: What to run on instead of opening a connection from ``url``: a
            ``Connection`` (for example the one handed to ``AsyncConnection.run_sync``;
            inside a transaction, the migrations join it), an ``AsyncEngine`` (``env.py``
            opens one connection on a loop of its own, then disposes the pool), or an
            ``AsyncConnection`` (run on its own event loop, so call Alembic from another
            thread).  ``env.py`` also accepts an object whose ``connect()`` yields a
            ``Connection``, such as pytest-alembic's ``WrappingConnection``.
        connect_args: Extra ``asyncpg.connect`` arguments, e.g.
            ``{"ssl": settings.ssl_context()}`` for a verified TLS connection.

    Returns:
        A ``Config`` whose ``attributes`` carry ``url``, ``lock_wait_seconds``,
        ``connection`` and ``connect_args`` as given.
    """
    config = Config()
    config.set_main_option("script_location", str(migrations_path()).replace("%", "%%"))
    if url is not None:
        config.attributes["url"] = _as_url(url)
    if lock_wait_seconds is not None:
        config.attributes["lock_wait_seconds"] = lock_wait_seconds
    if connection is not None:
        config.attributes["connection"] = connection
    if connect_args is not None:
        config.attributes["connect_args"] = dict(connect_args)
    return config


def _in_worker_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread (no event loop there) and return its result."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="biotech-ma-db-migrations") as pool:
        return pool.submit(fn).result()


def _run_async(make_coro: Callable[[], Awaitable[T]]) -> T:
    async def runner() -> T:
        return await make_coro()

    return _in_worker_thread(lambda: asyncio.run(runner()))


@contextmanager
def _failures_as(action: str) -> Iterator[None]:
    """Re-raise any failure as a ``MigrationError`` (the original as ``__cause__``)."""
    try:
        yield
    except MigrationError:
        raise
    except Exception as exc:
        translated = translate_error(exc)
        if translated is not exc:
            detail = str(translated)  # typed errors carry no SQL and no parameter values
        elif isinstance(exc, SQLAlchemyError):
            detail = type(exc).__name__
        else:
            # Alembic's own errors (unknown revision, multiple heads) are safe to quote.
            detail = f"{type(exc).__name__}: {exc}"
        raise MigrationError(f"{action} failed: {detail}") from exc


def _run_command(action: str, fn: Callable[[], None]) -> None:
    with _alembic_lock, _failures_as(action):
        _in_worker_thread(fn)


def upgrade(
    url: str | URL,
    revision: str = "head",
    *,
    lock_wait_seconds: float | None = None,
    connect_args: Mapping[str, Any] | None = None,
) -> None:
    """Upgrade the database at ``url`` to ``revision``.

    Args:
        url: The database (any PostgreSQL URL; the asyncpg driver is used).
        revision: Target revision, ``"head"`` by default.
        lock_wait_seconds: How long to wait for a concurrent migration to finish
            (default: :data:`DEFAULT_LOCK_WAIT_SECONDS`).
        connect_args: Extra ``asyncpg.connect`` arguments (TLS: ``{"ssl": context}``).

    Raises:
        MigrationError: The lock was not acquired in time, or a revision failed.
    """
    config = alembic_config(url, lock_wait_seconds=lock_wait_seconds, connect_args=connect_args)
    _run_command(f"upgrade to {revision!r}", lambda: command.upgrade(config, revision))


def downgrade(
    url: str | URL,
    revision: str,
    *,
    lock_wait_seconds: float | None = None,
    connect_args: Mapping[str, Any] | None = None,
) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``"base"`` empties it).

    Raises:
        MigrationError: The lock was not acquired in time, or a revision failed.
    """
    config = alembic_config(url, lock_wait_seconds=lock_wait_seconds, connect_args=connect_args)
    _run_command(f"downgrade to {revision!r}", lambda: command.downgrade(config, revision))


def migration_engine(url: str | URL, connect_args: Mapping[str, Any] | None = None) -> AsyncEngine:
    """A ``NullPool`` async engine for one migration run: no pooled connection lingers,
    and bound parameters never appear in logs or error messages.  ``connect_args`` go to
    ``asyncpg.connect`` (e.g. ``{"ssl": settings.ssl_context()}``)."""
    return create_async_engine(
        _as_url(url),
        poolclass=NullPool,
        hide_parameters=True,
        connect_args=dict(connect_args or {}),
    )


def _with_connection(
    url: str | URL, fn: Callable[[Connection], T], connect_args: Mapping[str, Any] | None = None
) -> T:
    async def run() -> T:
        engine = migration_engine(url, connect_args)
        try:
            async with engine.connect() as connection:
                result: T = await connection.run_sync(fn)
                return result
        finally:
            await engine.dispose()

    return _run_async(run)


def current(url: str | URL, *, connect_args: Mapping[str, Any] | None = None) -> str | None:
    """The revision the database at ``url`` is at (``None`` when never migrated).

    Raises:
        MigrationError: The database cannot be read.
    """
    with _failures_as("reading the current revision"):
        return _with_connection(
            url,
            lambda conn: MigrationContext.configure(conn).get_current_revision(),
            connect_args,
        )


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def heads() -> list[str]:
    """The head revision(s) of the migration scripts (one, unless branches diverged)."""
    return list(_script().get_heads())


def history() -> list[tuple[str, str]]:
    """Every revision from first to last, as ``(revision, description)`` pairs."""
    revisions = reversed(list(_script().walk_revisions()))
    return [(rev.revision, (rev.doc or "").strip()) for rev in revisions]


def check_schema(url: str | URL) -> list[str]:
    """Compare the live schema at ``url`` with the models.

    Alembic's comparison covers tables, columns, types (``compare_type``), nullability,
    indexes, unique constraints and foreign keys.  On top of it, this checks what Alembic
    does not: each index's access method (``gin``) and partial-index predicate, the set of
    CHECK constraints (by name), and the revision against the scripts' head.

    Returns:
        One human-readable line per difference; empty when the database matches.

    Raises:
        MigrationError: The database cannot be read.
    """
    metadata = Base.metadata

    def compare(connection: Connection) -> tuple[str | None, list[str]]:
        skip = partition_tables(connection)  # the models declare only the parent tables
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "target_metadata": metadata,
                "include_name": lambda name, type_, _: type_ != "table" or name not in skip,
            },
        )
        lines = [_describe(diff) for diff in compare_metadata(context, metadata)]
        lines += _compare_index_details(connection, metadata)
        lines += _compare_check_constraints(connection, metadata, skip)
        return context.get_current_revision(), lines

    with _failures_as("schema check"):
        revision, lines = _with_connection(url, compare)
    expected = heads()
    if revision not in expected:
        lines.insert(0, f"database is at revision {revision!r}, migrations head is {expected}")
    return lines


_INDEX_DETAILS_SQL = text(
    """
    SELECT index_class.relname AS name, access.amname AS method,
           pg_get_expr(ix.indpred, ix.indrelid) AS predicate
    FROM pg_index AS ix
    JOIN pg_class AS index_class ON index_class.oid = ix.indexrelid
    JOIN pg_am AS access ON access.oid = index_class.relam
    WHERE index_class.relnamespace = current_schema()::regnamespace
    """
)

_CHECKS_SQL = text(
    """
    SELECT conrelid::regclass::text AS table_name, conname AS name
    FROM pg_constraint
    WHERE contype = 'c' AND connamespace = current_schema()::regnamespace
    """
)

_CAST = re.compile(r"::\w+( varying| precision)?(\[\])?")


def _normalize_sql(sql: str) -> str:
    """Drop what PostgreSQL adds when it prints an expression (casts, parentheses, case)."""
    return re.sub(r"[\s()]", "", _CAST.sub("", sql)).lower()


def _compare_index_details(connection: Connection, metadata: MetaData) -> list[str]:
    live = {row.name: row for row in connection.execute(_INDEX_DETAILS_SQL)}
    lines: list[str] = []
    dialect = connection.dialect
    for table in metadata.tables.values():
        for index in table.indexes:
            row = live.get(str(index.name))
            if row is None:
                continue  # compare_metadata already reports it missing
            options = index.dialect_options["postgresql"]
            method = options["using"] or "btree"
            if row.method != method:
                lines.append(f"modify_index: {index.name} uses {row.method}, models say {method}")
            where = options["where"]
            expected = (
                str(where.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
                if where is not None
                else None
            )
            if (expected and _normalize_sql(expected)) != (
                row.predicate and _normalize_sql(row.predicate)
            ):
                lines.append(
                    f"modify_index: {index.name} predicate {row.predicate!r}, "
                    f"models say {expected!r}"
                )
    return lines


def _compare_check_constraints(
    connection: Connection, metadata: MetaData, skip: set[str]
) -> list[str]:
    rows = connection.execute(_CHECKS_SQL)
    live = {(row.table_name, row.name) for row in rows if row.table_name not in skip}
    expected = {
        (table.name, str(constraint.name))
        for table in metadata.tables.values()
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    }
    missing = [f"add_check: {name} on {table}" for table, name in sorted(expected - live)]
    extra = [f"remove_check: {name} on {table}" for table, name in sorted(live - expected)]
    return missing + extra


def _describe(diff: Any) -> str:
    """One line for one ``compare_metadata`` entry (a tuple, or a list of column changes)."""
    if isinstance(diff, list):
        return "; ".join(_describe(item) for item in diff)
    kind, *rest = diff
    if kind in {"add_table", "remove_table"}:
        return f"{kind}: {rest[0].name}"
    if kind in {"add_column", "remove_column"}:
        _, table, column = rest
        return f"{kind}: {table}.{column.name} {column.type}"
    if kind in {"add_index", "remove_index", "add_constraint", "remove_constraint"}:
        item = rest[0]
        return f"{kind}: {item.name} on {item.table.name}"
    if kind in {"add_fk", "remove_fk"}:
        return f"{kind}: {rest[0].name} on {rest[0].parent.name}"
    if kind.startswith("modify_"):
        _, table, column, _existing, old, new = rest
        return f"{kind}: {table}.{column} {old!r} -> {new!r}"
    return f"{kind}: {rest!r}"


@contextmanager
def migration_lock(
    connection: Connection,
    *,
    wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
) -> Iterator[None]:
    """Hold the migration advisory lock on ``connection`` for the duration of the block.

    The lock is polled with ``pg_try_advisory_lock`` every half second, committing between
    polls: a blocking ``pg_advisory_lock`` would wait inside a snapshot that a
    ``CREATE INDEX CONCURRENTLY`` in the lock holder waits for, a deadlock.  While held,
    ``lock_timeout`` is set so DDL behind application traffic fails fast.

    On a connection that is already inside a transaction (the caller's), the
    transaction-scoped lock is taken instead and nothing is committed; it is released
    when the caller's transaction ends.

    Args:
        connection: A synchronous connection to the database being migrated.
        wait_seconds: Give up after this long.
        lock_timeout_ms: ``lock_timeout`` for the migration's statements.

    Raises:
        MigrationError: Another migration still held the lock after ``wait_seconds``.
    """
    external = connection.in_transaction()
    function = "pg_try_advisory_xact_lock" if external else "pg_try_advisory_lock"
    _poll_lock(connection, function, wait_seconds=wait_seconds, commit=not external)
    if external:
        _set_lock_timeout(connection, f"{lock_timeout_ms}ms", local=True)
        yield
        return
    previous = connection.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
    _set_lock_timeout(connection, f"{lock_timeout_ms}ms", local=False)
    # End the autobegun transaction, or Alembic would take it for the caller's and never
    # commit the migrations.
    connection.commit()
    try:
        yield
    except BaseException:
        try:
            _release_lock(connection, previous)
        except SQLAlchemyError:
            # The original error matters more; the lock dies with the connection anyway.
            logger.warning("could not release the migration lock", exc_info=True)
        raise
    _release_lock(connection, previous)


def _poll_lock(connection: Connection, function: str, *, wait_seconds: float, commit: bool) -> None:
    deadline = time.monotonic() + wait_seconds
    statement = text(f"SELECT {function}(:key)")
    while True:
        acquired = connection.execute(statement, {"key": MIGRATION_LOCK_KEY}).scalar_one()
        if commit:
            connection.commit()
        if acquired:
            return
        if time.monotonic() >= deadline:
            raise MigrationError(
                "another migration holds the lock (advisory lock "
                f"{MIGRATION_LOCK_KEY:#x}); gave up after {wait_seconds:g} s. Let it finish "
                "and retry, or raise DB_MIGRATION_LOCK_WAIT_SECONDS"
            )
        logger.info("waiting for another migration to release the migration lock")
        time.sleep(_LOCK_POLL_SECONDS)


def _set_lock_timeout(connection: Connection, value: str, *, local: bool) -> None:
    connection.execute(
        text("SELECT set_config('lock_timeout', :value, :local)"),
        {"value": value, "local": local},
    )


def _release_lock(connection: Connection, previous_lock_timeout: str) -> None:
    if connection.in_transaction():
        connection.rollback()
    _set_lock_timeout(connection, previous_lock_timeout, local=False)
    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()
