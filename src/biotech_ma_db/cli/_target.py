"""Where a command connects: ``--url``/``DATABASE_URL``, else the embedded PostgreSQL.

Without a URL a command starts the embedded server in ``--data-dir`` (or
``BIOTECH_MA_DB_DATA_DIR``) on demand and uses its database :data:`DATABASE_NAME`,
created on first use.  A malformed URL exits 2 before anything connects.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from biotech_ma_db import embedded
from biotech_ma_db.cli._common import EXIT_USAGE, fail
from biotech_ma_db.database import Database
from biotech_ma_db.errors import DatabaseUnavailableError
from biotech_ma_db.settings import DatabaseSettings

__all__ = [
    "DATABASE_NAME",
    "Target",
    "checked_url",
    "configured_url",
    "embedded_target",
    "open_database",
    "resolve",
    "start_embedded",
]

DATABASE_NAME = "biotech_ma"
"""The database the CLI creates and uses on the embedded server."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a command connects: an explicit URL, or the embedded server."""

    url: str
    server: embedded.EmbeddedServer | None = None

    @property
    def label(self) -> str:
        """The target for messages, with any password masked."""
        if self.server is not None:
            return f"embedded PostgreSQL in {self.server.data_dir} (database {DATABASE_NAME})"
        return make_url(self.url).render_as_string(hide_password=True)


def checked_url(url: str, source: str) -> str:
    """``url`` if it is a PostgreSQL URL; otherwise exit 2 naming where it came from.

    Args:
        url: The URL as given.
        source: The option or variable that gave it, for the message (``--url``).
    """
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        fail(f"{source} is not a valid database URL", EXIT_USAGE)
    if backend not in {"postgresql", "postgres"}:
        fail(f"{source} must be a postgresql:// URL (got {backend}://)", EXIT_USAGE)
    return url


def configured_url(url: str | None) -> str | None:
    """``--url``/``DATABASE_URL``, else a ``DATABASE_URL`` from a ``.env`` file, else None."""
    if url is not None and url.strip():
        source = "DATABASE_URL" if os.environ.get("DATABASE_URL") == url else "--url"
        return checked_url(url.strip(), source)
    secret = DatabaseSettings().database_url
    if secret is None:
        return None
    return checked_url(secret.get_secret_value(), "DATABASE_URL (.env)")


async def _ensure_database(server: embedded.EmbeddedServer, name: str) -> None:
    """Create ``name`` on the embedded server unless it exists (admin connection)."""
    connection = await asyncpg.connect(
        user="postgres", database="postgres", host=str(server.socket_dir), port=server.port
    )
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.DuplicateDatabaseError:
        pass  # another command created it a moment ago
    finally:
        await connection.close()


async def start_embedded(data_dir: Path | None) -> embedded.EmbeddedServer:
    """Start the embedded server in ``data_dir`` (if it is not running) and create its database."""
    server = await asyncio.to_thread(embedded.start, data_dir)
    await _ensure_database(server, DATABASE_NAME)
    return server


async def embedded_target(data_dir: Path | None) -> Target:
    """The database :data:`DATABASE_NAME` of the embedded server in ``data_dir``."""
    server = await start_embedded(data_dir)
    return Target(server.url(DATABASE_NAME), server)


async def resolve(url: str | None, data_dir: Path | None) -> Target:
    """The target of a command given its ``--url`` and ``--data-dir``."""
    explicit = configured_url(url)
    if explicit is not None:
        return Target(explicit)
    return await embedded_target(data_dir)


@asynccontextmanager
async def open_database(target: Target) -> AsyncIterator[Database]:
    """A ``Database`` for ``target`` (pool settings from ``DB_*``); says where it failed."""
    async with Database.from_url(target.url) as db:
        try:
            yield db
        except DatabaseUnavailableError as exc:
            raise DatabaseUnavailableError(f"cannot reach {target.label}: {exc}") from exc
