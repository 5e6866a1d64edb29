"""Every statement an engine sends, whichever way it goes to the server.

Most statements go through SQLAlchemy's cursor (``before_cursor_execute`` sees them);
the repositories' fast reads, fast inserts, COPY and batch writes go to asyncpg itself,
where only the connection's query loggers see them.  A test that asserts what was (or
was not) sent must watch both, or a statement on the driver would pass unseen.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, NamedTuple

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

__all__ = ["Sent", "SentStatements", "driver_of"]


async def driver_of(session: AsyncSession) -> Any:
    """The asyncpg connection ``session`` holds (checked out now if it holds none yet)."""
    raw = await (await session.connection()).get_raw_connection()
    return raw.driver_connection


class Sent(NamedTuple):
    """One statement: its SQL text, its parameters, and which way it went."""

    sql: str
    params: Any
    via: str  # "cursor" (SQLAlchemy) or "driver" (asyncpg directly)


class SentStatements:
    """Record what ``engines`` send while the ``async with`` block runs.

    Connections checked out inside the block get a query logger; pass ``connections``
    (asyncpg connections, see :func:`driver_of`) to watch ones already checked out, such
    as a unit of work's after its first statement.  asyncpg hands its log records over on
    the loop's next turn, which leaving the block waits for.
    """

    def __init__(self, *engines: AsyncEngine, connections: tuple[Any, ...] = ()) -> None:
        self._engines = [engine.sync_engine for engine in engines]
        self._drivers: list[Any] = list(connections)
        self.sent: list[Sent] = []

    @property
    def sql(self) -> list[str]:
        return [item.sql for item in self.sent]

    async def settle(self) -> None:
        """Let asyncpg deliver the log records of statements already sent."""
        await asyncio.sleep(0)

    def _on_cursor(self, _conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        self.sent.append(Sent(statement, params, "cursor"))

    def _on_driver(self, record: Any) -> None:
        self.sent.append(Sent(record.query, record.args, "driver"))

    def _on_checkout(self, dbapi_connection: Any, *_: Any) -> None:
        self._watch(dbapi_connection.driver_connection)

    def _watch(self, driver: Any) -> None:
        if driver not in self._drivers:
            self._drivers.append(driver)
        driver.add_query_logger(self._on_driver)

    async def __aenter__(self) -> SentStatements:
        for driver in self._drivers:
            driver.add_query_logger(self._on_driver)
        for engine in self._engines:
            event.listen(engine, "before_cursor_execute", self._on_cursor)
            event.listen(engine.pool, "checkout", self._on_checkout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.settle()
        for engine in self._engines:
            event.remove(engine, "before_cursor_execute", self._on_cursor)
            event.remove(engine.pool, "checkout", self._on_checkout)
        for driver in self._drivers:
            driver.remove_query_logger(self._on_driver)
