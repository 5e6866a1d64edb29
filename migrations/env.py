"""Alembic environment: async engine, one advisory lock per run, a transaction per revision.

Follows Alembic's ``templates/async/env.py``, the cookbook's connection sharing and
pytest-alembic's "versatile" async setup.  ``config.attributes["connection"]`` may be:

* a **synchronous** ``sqlalchemy.engine.Connection``, e.g. the one ``AsyncConnection.run_sync``
  hands to its callable (the cookbook recipe)::

      async with engine.connect() as conn:
          await conn.run_sync(
              lambda sync_conn: command.upgrade(alembic_config(connection=sync_conn), "head")
          )

  If it is already inside a transaction, the migrations join it (and the lock is the
  transaction-scoped one).  Lock polling then sleeps on the caller's event loop thread;
* a proxy with a ``connect()`` context manager that yields such a ``Connection`` (a
  synchronous ``Engine``, or pytest-alembic's ``WrappingConnection``, which hands back the
  connection its test holds a transaction on);
* an ``AsyncEngine`` (what pytest-alembic's ``alembic_engine`` fixture usually is): one
  connection is opened on a private event loop, and the engine's pool is disposed
  afterwards, since its connections cannot outlive that loop;
* an ``AsyncConnection``, run through ``run_sync`` on its own event loop: the loop must be
  idle or running in another thread (``await asyncio.to_thread(command.upgrade, ...)``);
  from inside that loop, call ``await conn.run_sync(...)`` and pass the ``Connection``;
* nothing: then ``config.attributes["url"]`` (a ``sqlalchemy.URL`` or string), else
  ``DatabaseSettings().migration_url()`` built from ``MIGRATION_DATABASE_URL``,
  ``DATABASE_URL`` or ``POSTGRES_*``.  The URL is never written into the ini
  configuration (ConfigParser would interpolate ``%`` in a password) nor logged.
  ``config.attributes["connect_args"]`` go to ``asyncpg.connect``; with the URL from the
  settings, their TLS options (``DB_SSL_MODE``, ``DB_SSL_ROOT_CERT``) apply as for the
  application (``verify-full`` verifies the server's certificate and host name).

Whatever the form, the advisory migration lock is taken before anything is read or
changed.  The wait for it is ``config.attributes["lock_wait_seconds"]``, else
``DB_MIGRATION_LOCK_WAIT_SECONDS`` when the URL comes from the settings, else 60 s;
``config.attributes["lock_timeout_ms"]`` overrides the ``lock_timeout`` (3 s) applied
while migrating.  Offline (``alembic upgrade head --sql``) the script starts with the
same ``SET lock_timeout``, so the reviewed SQL is what a deploy runs; it takes no lock.

A database whose ``alembic_version`` names a revision these scripts do not know (a newer
release's, say) is refused with a ``MigrationError`` naming both revisions before anything
is changed (``alembic stamp --purge`` is left as the deliberate way out).

On a connection of its own (not the caller's), a run also:

* refuses a connection pooler in front of the database (:func:`refuse_pooler`, and
  ``DB_PGBOUNCER=true`` without ``MIGRATION_DATABASE_URL``): a transaction-mode pgbouncer
  breaks the session-level migration lock and the AUTOCOMMIT steps migrations rely on;
* re-runs the pending revisions, up to :data:`LOCK_TIMEOUT_ATTEMPTS` times with backoff,
  when a statement gave up waiting for a lock (``lock_timeout``, SQLSTATE 55P03) behind
  application traffic, then fails with a ``MigrationError``;
* repairs indexes left INVALID by a failed ``CREATE INDEX CONCURRENTLY`` before running
  (:func:`repair_invalid_indexes`), and fails if an invalid index remains afterwards, so a
  half-built index never passes for a successful deploy.
"""

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from logging.config import fileConfig
from typing import Any, TypeVar

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from biotech_ma_db.errors import LockTimeoutError, MigrationError, translate_error
from biotech_ma_db.migrations import (
    DEFAULT_LOCK_TIMEOUT_MS,
    DEFAULT_LOCK_WAIT_SECONDS,
    migration_engine,
    migration_lock,
)
from biotech_ma_db.models import Base
from biotech_ma_db.partitions import is_partition_name
from biotech_ma_db.settings import DatabaseSettings

config = context.config

if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata
logger = logging.getLogger("biotech_ma_db.migrations")
T = TypeVar("T")

LOCK_TIMEOUT_ATTEMPTS = 3
"""Runs of the pending revisions when statements keep hitting ``lock_timeout``."""

_LOCK_RETRY_BASE_SECONDS = 0.5
# Leftovers of a failed REINDEX CONCURRENTLY: the half-built copy and the old index.
_REINDEX_LEFTOVER = re.compile(r"_cc(new|old)[0-9]*$")
_INVALID_INDEXES_SQL = text(
    """
    SELECT format('%I.%I', ns.nspname, cls.relname) AS qualified, cls.relname AS name
    FROM pg_index AS ix
    JOIN pg_class AS cls ON cls.oid = ix.indexrelid
    JOIN pg_namespace AS ns ON ns.oid = cls.relnamespace
    WHERE NOT ix.indisvalid AND ns.nspname = current_schema()
      AND NOT EXISTS (  -- a concurrent build still in progress is not a leftover
        SELECT 1 FROM pg_stat_progress_create_index AS p WHERE p.index_relid = ix.indexrelid
      )
    ORDER BY 1
    """
)


def _url_and_lock_wait() -> tuple[URL, float]:
    given = config.attributes.get("url")
    wait = config.attributes.get("lock_wait_seconds")
    if given is not None:
        url = make_url(given) if isinstance(given, str) else given
        return url, float(wait) if wait is not None else DEFAULT_LOCK_WAIT_SECONDS
    settings = DatabaseSettings()
    return settings.migration_url(), float(
        wait if wait is not None else settings.migration_lock_wait_seconds
    )


def include_name(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
    """Leave the partitions of partitioned model tables (``signals_y2026m03``) out of
    autogenerate and ``alembic check``: the models declare only the parent table."""
    return not (type_ == "table" and name is not None and is_partition_name(name))


def _configure(**options: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        transaction_per_migration=True,
        include_name=include_name,
        **options,
    )


def _lock_timeout_ms() -> int:
    return int(config.attributes.get("lock_timeout_ms", DEFAULT_LOCK_TIMEOUT_MS))


def run_migrations_offline() -> None:
    """Emit the SQL instead of running it (``alembic upgrade --sql``); no lock is taken.

    No database and no settings are needed: the dialect is PostgreSQL whatever the URL.
    The script sets ``lock_timeout`` for the session first, as a deploy does, so every
    revision's statements below it run with it (across the COMMIT/BEGIN pairs of
    autocommit blocks too, which a ``SET LOCAL`` would not survive).
    """
    _configure(dialect_name="postgresql", literal_binds=True, dialect_opts={"paramstyle": "named"})
    context.execute(f"SET lock_timeout = '{_lock_timeout_ms()}ms'")
    with context.begin_transaction():
        context.run_migrations()


def _refuse_pgbouncer_setting() -> None:
    settings = DatabaseSettings()
    if settings.pgbouncer and settings.migration_database_url is None:
        raise MigrationError(
            "DB_PGBOUNCER=true: DATABASE_URL goes through a transaction-mode pooler, and "
            "migrations need a direct connection to PostgreSQL; set MIGRATION_DATABASE_URL"
        )


def refuse_pooler(connection: Connection) -> None:
    """Raise ``MigrationError`` when ``connection`` goes through a connection pooler.

    At connect time PostgreSQL announces the process id of the backend serving the
    session (BackendKeyData, kept by asyncpg as ``get_server_pid()``).  A pooler such as
    pgbouncer answers the startup itself with a process id of its own invention and then
    relays queries to whichever server connection is free, so ``pg_backend_pid()`` differs
    from the announced one; over a direct connection (or a plain TCP proxy) they agree.
    Unlike probing whether session state survives from one transaction to the next (an
    idle pooler usually hands back the same server connection), this is deterministic.
    """
    driver = connection.connection.driver_connection
    get_server_pid = getattr(driver, "get_server_pid", None)
    if get_server_pid is None:
        return
    announced = get_server_pid()
    began = not connection.in_transaction()
    actual = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    if began:
        connection.rollback()
    if announced != actual:
        raise MigrationError(
            "migrations must run over a direct connection to PostgreSQL, but this one goes "
            f"through a connection pooler (the server process announced at connect, "
            f"{announced}, is not the one answering, {actual}; pgbouncer?). A "
            "transaction-mode pooler breaks the migration lock and AUTOCOMMIT steps: point "
            "MIGRATION_DATABASE_URL (or the URL given to upgrade) at the database itself"
        )


def _invalid_indexes(connection: Connection) -> list[tuple[str, str]]:
    rows = connection.execute(_INVALID_INDEXES_SQL).all()
    connection.rollback()
    return [(str(row.qualified), str(row.name)) for row in rows]


def repair_invalid_indexes(connection: Connection) -> None:
    """Rebuild indexes a failed ``CREATE INDEX CONCURRENTLY`` left INVALID.

    ``REINDEX INDEX CONCURRENTLY`` rebuilds one in place from its own definition (only the
    ``INDEX`` form can do that for an invalid index), so a revision re-run with
    ``CREATE INDEX CONCURRENTLY IF NOT EXISTS`` then finds it valid, and an index whose
    revision was already recorded is repaired rather than lost.  The ``_ccnew``/``_ccold``
    leftovers of a failed ``REINDEX CONCURRENTLY`` are dropped, as the documentation says.
    """
    broken = _invalid_indexes(connection)
    if not broken:
        return
    level = connection.get_isolation_level()
    autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
    try:
        with autocommit.begin():
            for qualified, name in broken:
                if _REINDEX_LEFTOVER.search(name):
                    statement = f"DROP INDEX CONCURRENTLY IF EXISTS {qualified}"
                else:
                    statement = f"REINDEX INDEX CONCURRENTLY {qualified}"
                logger.warning(
                    "index %s is INVALID (a failed concurrent build): %s", name, statement
                )
                autocommit.exec_driver_sql(statement)
    finally:
        connection.execution_options(isolation_level=level)


def _run_pending(connection: Connection, lock_timeout_ms: int) -> None:
    """Run the pending revisions; re-run them when one gave up waiting for a lock."""
    for attempt in range(1, LOCK_TIMEOUT_ATTEMPTS + 1):
        try:
            repair_invalid_indexes(connection)
            with context.begin_transaction():
                context.run_migrations()
            break
        except Exception as exc:
            if not isinstance(translate_error(exc), LockTimeoutError):
                raise
            if connection.in_transaction():
                connection.rollback()
            if attempt == LOCK_TIMEOUT_ATTEMPTS:
                raise MigrationError(
                    f"gave up after {attempt} attempts: a migration statement waited longer "
                    f"than lock_timeout ({lock_timeout_ms} ms) for a lock held by application "
                    "traffic [SQLSTATE 55P03]; nothing half-done was recorded. Retry when the "
                    "tables are quieter"
                ) from exc
            # Jitter only spreads deployers apart; no cryptographic quality needed.
            jitter = random.uniform(0.5, 1.0)  # noqa: S311
            delay = _LOCK_RETRY_BASE_SECONDS * 2 ** (attempt - 1) * jitter
            logger.warning(
                "a migration statement hit lock_timeout (%d ms) [SQLSTATE 55P03]; attempt %d "
                "of %d, retrying in %.1f s",
                lock_timeout_ms,
                attempt,
                LOCK_TIMEOUT_ATTEMPTS,
                delay,
            )
            time.sleep(delay)
    leftovers = _invalid_indexes(connection)
    if leftovers:
        raise MigrationError(
            "INVALID index(es) after migrating: "
            + ", ".join(name for _, name in leftovers)
            + " (a concurrent build failed); the next run rebuilds them"
        )


def refuse_unknown_revision() -> None:
    """Raise ``MigrationError`` when the database is at a revision these scripts lack.

    A database migrated by a newer release (or another project) names a revision in
    ``alembic_version`` that is not in ``migrations/versions``; Alembic would only say it
    "can't locate" it, after this environment had repaired indexes.  Checked under the
    migration lock and before anything is changed.  ``alembic stamp --purge`` (which
    ignores the current revision on purpose) is let through.
    """
    migration_context = context.get_context()
    if migration_context.purge:
        return
    current = migration_context.get_current_heads()
    known = {script.revision for script in context.script.walk_revisions()}
    unknown = [revision for revision in current if revision not in known]
    if not unknown:
        return
    heads = ", ".join(repr(head) for head in context.script.get_heads()) or "none"
    raise MigrationError(
        f"the database is at revision {', '.join(map(repr, unknown))}, which these "
        f"migrations do not know (their head is {heads}): it was migrated by a newer "
        "release of biotech-ma-db, or by other migrations. Nothing was changed; deploy the "
        "release that has that revision (alembic stamp --purge rewrites the record "
        "deliberately)"
    )


def do_run_migrations(connection: Connection, lock_wait_seconds: float) -> None:
    """Run the migrations on ``connection`` while holding the migration lock."""
    lock_timeout_ms = _lock_timeout_ms()
    external = connection.in_transaction()
    if not external:
        refuse_pooler(connection)
    with migration_lock(
        connection, wait_seconds=lock_wait_seconds, lock_timeout_ms=lock_timeout_ms
    ):
        _configure(connection=connection)
        refuse_unknown_revision()
        if external:
            # The caller's transaction: nothing can be retried or rebuilt outside it.
            with context.begin_transaction():
                context.run_migrations()
            return
        connection.rollback()  # end the read of alembic_version; each revision begins anew
        _run_pending(connection, lock_timeout_ms)


def _connect_args() -> dict[str, Any]:
    given = config.attributes.get("connect_args")
    if given is not None:
        return dict(given)
    if config.attributes.get("url") is not None:
        return {}
    ssl = DatabaseSettings().ssl_context()
    return {} if ssl is None else {"ssl": ssl}


async def run_async_migrations(engine: AsyncEngine, lock_wait_seconds: float) -> None:
    """Open one connection on ``engine``, run the migrations on it, then dispose the engine.

    The pool goes too: its connections belong to the event loop this runs on.
    """
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations, lock_wait_seconds)
    finally:
        await engine.dispose()


def _run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run(make())``, in a worker thread if this one already runs an event loop.

    ``alembic upgrade`` (the CLI) and pytest-alembic call in without a loop; a caller
    inside a coroutine that calls ``command.upgrade`` directly blocks its own loop either
    way, but gets its migrations rather than "asyncio.run() cannot be called from a
    running event loop".
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="alembic-env") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _event_loop_of(connection: AsyncConnection) -> asyncio.AbstractEventLoop:
    """The event loop ``connection``'s asyncpg connection is bound to."""
    # asyncpg keeps the loop as ``_loop`` and offers no public accessor; without it the
    # connection can only be driven from inside its loop, which this sync code is not.
    sync = connection.sync_connection
    driver = None if sync is None else sync.connection.driver_connection
    loop = getattr(driver, "_loop", None)
    if not isinstance(loop, asyncio.AbstractEventLoop):
        raise MigrationError(
            'config.attributes["connection"] is an AsyncConnection whose event loop cannot '
            "be found; pass the Connection that AsyncConnection.run_sync hands over instead"
        )
    return loop


def _run_on_async_connection(connection: AsyncConnection, lock_wait_seconds: float) -> None:
    """Run through ``connection.run_sync`` on the loop the connection belongs to."""
    loop = _event_loop_of(connection)
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is running or loop.is_closed():
        # Waiting here for work scheduled on our own (blocked) loop would never end.
        raise MigrationError(
            'config.attributes["connection"] is an AsyncConnection, and Alembic was called '
            "synchronously from inside its event loop, which cannot run the migrations "
            "meanwhile. Use `await conn.run_sync(lambda sync_conn: command.upgrade(config, "
            '"head"))` with config.attributes["connection"] = sync_conn, or '
            "`await asyncio.to_thread(command.upgrade, config, 'head')`"
        )
    work = connection.run_sync(do_run_migrations, lock_wait_seconds)
    if loop.is_running():  # in another thread: hand the work to it and wait
        asyncio.run_coroutine_threadsafe(work, loop).result()
    else:
        loop.run_until_complete(work)


def _run_on_given(given: object) -> None:
    """Run on what the caller put in ``config.attributes["connection"]``."""
    wait = float(config.attributes.get("lock_wait_seconds", DEFAULT_LOCK_WAIT_SECONDS))
    if isinstance(given, Connection):
        do_run_migrations(given, wait)
    elif isinstance(given, AsyncEngine):
        _run_coroutine(lambda: run_async_migrations(given, wait))
    elif isinstance(given, AsyncConnection):
        _run_on_async_connection(given, wait)
    elif callable(getattr(given, "connect", None)):
        # A sync Engine, or a proxy of a Connection (pytest-alembic's WrappingConnection).
        with given.connect() as connection:  # type: ignore[attr-defined]
            if not isinstance(connection, Connection):
                raise MigrationError(
                    f'config.attributes["connection"].connect() gave a '
                    f"{type(connection).__name__}, not a synchronous Connection"
                )
            do_run_migrations(connection, wait)
    else:
        raise MigrationError(
            'config.attributes["connection"] must be a Connection (for example the one '
            "AsyncConnection.run_sync hands over), an object whose connect() yields one, "
            f"an AsyncEngine or an AsyncConnection; got {type(given).__name__}"
        )


def run_migrations_online() -> None:
    """Run on the caller's connection or engine if one was given, else on a new one."""
    given = config.attributes.get("connection")
    if given is not None:
        _run_on_given(given)
        return
    if config.attributes.get("url") is None:
        _refuse_pgbouncer_setting()
    url, wait = _url_and_lock_wait()
    engine = migration_engine(url, _connect_args())
    _run_coroutine(lambda: run_async_migrations(engine, wait))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
