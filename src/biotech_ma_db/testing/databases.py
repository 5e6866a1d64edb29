"""Create, clone and drop throwaway databases on a test server.

Administrative statements (``CREATE DATABASE`` cannot run in a transaction) go over a
plain asyncpg connection in a worker thread with its own event loop, so these helpers can
be called from synchronous fixtures and never touch the loop a test runs on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from sqlalchemy.engine import make_url

__all__ = [
    "clone_database",
    "create_database",
    "database_url",
    "drop_database",
    "run_sync",
    "unique_name",
]

T = TypeVar("T")


def run_sync(make_coro: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a private loop in a worker thread."""

    async def runner() -> T:
        return await make_coro()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, runner()).result()


def unique_name(prefix: str) -> str:
    """A database name that no other test session will pick."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def database_url(server_url: str, database: str) -> str:
    """``server_url`` pointed at another database on the same server."""
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


def _dsn(url: str) -> dict[str, object]:
    parsed = make_url(url)
    params: dict[str, object] = {
        "user": parsed.username,
        "password": parsed.password,
        "database": parsed.database,
        "host": parsed.query.get("host", parsed.host),
        "port": parsed.port or parsed.query.get("port"),
    }
    return {k: v for k, v in params.items() if v is not None}


async def _admin(server_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(**_dsn(server_url))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def create_database(server_url: str, name: str) -> str:
    """Create an empty database; returns its URL."""
    run_sync(lambda: _admin(server_url, f"CREATE DATABASE {_quote(name)}"))
    return database_url(server_url, name)


def clone_database(server_url: str, template: str, name: str) -> str:
    """Create ``name`` as a copy of ``template`` (which must have no open connections)."""
    run_sync(
        lambda: _admin(
            server_url,
            f"CREATE DATABASE {_quote(name)} TEMPLATE {_quote(template)} STRATEGY FILE_COPY",
        )
    )
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    """Drop a database, terminating any connection still open on it."""
    run_sync(lambda: _admin(server_url, f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)"))
