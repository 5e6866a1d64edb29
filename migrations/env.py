"""Alembic environment: async engine, one advisory lock per run, a transaction per revision.

Follows Alembic's ``templates/async/env.py`` plus the cookbook's connection sharing:

* ``config.attributes["connection"]``: a **synchronous** ``sqlalchemy.engine.Connection``
  to run on, e.g. the one ``AsyncConnection.run_sync`` hands to its callable::

      async with engine.connect() as conn:
          await conn.run_sync(
              lambda sync_conn: command.upgrade(alembic_config(connection=sync_conn), "head")
          )

  If it is already inside a transaction, the migrations join it (and the lock is the
  transaction-scoped one).  Lock polling then sleeps on the caller's event loop thread.
* otherwise ``config.attributes["url"]`` (a ``sqlalchemy.URL`` or string), else
  ``DatabaseSettings().migration_url()`` built from ``MIGRATION_DATABASE_URL``,
  ``DATABASE_URL`` or ``POSTGRES_*``.  The URL is never written into the ini
  configuration (ConfigParser would interpolate ``%`` in a password) nor logged.

The wait for the migration lock is ``config.attributes["lock_wait_seconds"]``, else
``DB_MIGRATION_LOCK_WAIT_SECONDS`` when the URL comes from the settings, else 60 s;
``config.attributes["lock_timeout_ms"]`` overrides the ``lock_timeout`` (3 s) applied
while migrating.
"""

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy.engine import URL, Connection, make_url

from biotech_ma_db.errors import MigrationError
from biotech_ma_db.migrations import (
    DEFAULT_LOCK_TIMEOUT_MS,
    DEFAULT_LOCK_WAIT_SECONDS,
    migration_engine,
    migration_lock,
)
from biotech_ma_db.models import Base
from biotech_ma_db.settings import DatabaseSettings

config = context.config

if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


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


def _configure(**options: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        transaction_per_migration=True,
        **options,
    )


def run_migrations_offline() -> None:
    """Emit the SQL instead of running it (``alembic upgrade --sql``); no lock is taken."""
    url, _ = _url_and_lock_wait()
    _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection, lock_wait_seconds: float) -> None:
    """Run the migrations on ``connection`` while holding the migration lock."""
    lock_timeout_ms = int(config.attributes.get("lock_timeout_ms", DEFAULT_LOCK_TIMEOUT_MS))
    with migration_lock(
        connection, wait_seconds=lock_wait_seconds, lock_timeout_ms=lock_timeout_ms
    ):
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()


async def run_async_migrations(url: URL, lock_wait_seconds: float) -> None:
    """Open one connection (``NullPool``) and run the migrations on it."""
    engine = migration_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations, lock_wait_seconds)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Run on the caller's connection if one was given, else on a new one."""
    shared = config.attributes.get("connection")
    if shared is not None:
        if not isinstance(shared, Connection):
            raise MigrationError(
                'config.attributes["connection"] must be a synchronous Connection '
                "(use AsyncConnection.run_sync), got " + type(shared).__name__
            )
        wait = config.attributes.get("lock_wait_seconds", DEFAULT_LOCK_WAIT_SECONDS)
        do_run_migrations(shared, float(wait))
        return
    url, wait = _url_and_lock_wait()
    asyncio.run(run_async_migrations(url, wait))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
