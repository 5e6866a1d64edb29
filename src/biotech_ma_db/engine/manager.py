"""``ConnectionManager``: the object that owns the engine, the pool and the session factory.

It is the engine layer of the package (below the models, repositories and the unit of
work); :class:`~biotech_ma_db.database.Database` builds on it and adds the unit of work.
Nothing here runs at import time; the engine connects lazily on first use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import QueuePool

from biotech_ma_db.engine.hooks import install_engine_hooks
from biotech_ma_db.engine.options import PLAIN_SESSION_KEY, engine_options
from biotech_ma_db.errors import translate_error
from biotech_ma_db.sa_internals import session_is_clean
from biotech_ma_db.security import SecurityConfig
from biotech_ma_db.settings import DatabaseSettings

__all__ = ["ConnectionManager", "HealthReport", "PoolStatus"]

logger = logging.getLogger("biotech_ma_db")


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The answer of :meth:`Database.health`.

    Attributes:
        ok: Whether a round trip to the server succeeded.
        latency_ms: Round-trip time of the probe, in milliseconds.
        server_version: ``server_version`` as reported by PostgreSQL (``None`` when down).
        in_recovery: True on a hot standby (read replica).
        error: Why the probe failed (typed error message, no secrets), else ``None``.
    """

    ok: bool
    latency_ms: float
    server_version: str | None
    in_recovery: bool | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """A snapshot of the connection pool (see :meth:`Database.pool_status`)."""

    size: int
    checked_in: int
    checked_out: int
    overflow: int
    max_overflow: int
    timeout: float


class ConnectionManager:
    """Engine, connection pool and session factory for one PostgreSQL database.

    The part of :class:`~biotech_ma_db.database.Database` that sits below the models:
    it knows engines, pools and sessions, nothing about repositories or units of work.

    Args:
        settings: Connection and pool settings; read from the environment when omitted.
    """

    def __init__(self, settings: DatabaseSettings | None = None) -> None:
        self.settings = settings if settings is not None else DatabaseSettings()
        self.engine: AsyncEngine = create_async_engine(
            self.settings.url(), **engine_options(self.settings)
        )
        install_engine_hooks(self.engine, self.settings)
        #: API-key pepper, webhook-secret keys and the https rule, from the settings.
        self.security = SecurityConfig.from_settings(self.settings)
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    @classmethod
    def from_url(cls, url: str | URL, **overrides: Any) -> Self:
        """An instance for an explicit URL; ``overrides`` are settings fields."""
        return cls(DatabaseSettings.from_url(url, **overrides))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.engine.url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.dispose()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """An ``AsyncSession`` that commits on clean exit and rolls back on error.

        Errors leave as the library's typed errors (see :mod:`biotech_ma_db.errors`),
        with the driver's exception as ``__cause__``.
        """
        session = self.sessionmaker()
        sync = session.sync_session
        # Plain session (no per-transaction settings): its first fast read may borrow a
        # pooled connection instead of starting a transaction (repositories/_fast.py).
        sync.info[PLAIN_SESSION_KEY] = True
        try:
            yield session
            # A session that never began a transaction and holds no changes has nothing
            # to commit; skipping the empty commit saves its bookkeeping.
            if sync.in_transaction() or not session_is_clean(sync):
                await session.commit()
        except BaseException as exc:
            await _rollback_quietly(session)
            translated = translate_error(exc)
            if translated is exc:
                raise
            raise translated from exc
        finally:
            if sync.get_transaction() is None:
                # No transaction, so no connection to give back: closing only forgets
                # the objects, no I/O, and needs no task of its own.
                sync.close()
            else:
                # Holding a connection (e.g. cancelled mid-commit): SQLAlchemy's own
                # exit, which finishes the close even if this task is cancelled.
                await session.__aexit__(None, None, None)

    async def health(self) -> HealthReport:
        """Probe the server: one round trip, its latency, version and recovery state."""
        started = time.perf_counter()
        try:
            async with self.engine.connect() as conn:
                row = (
                    await conn.execute(
                        text("SELECT current_setting('server_version'), pg_is_in_recovery()")
                    )
                ).one()
        except Exception as exc:  # noqa: BLE001 — a health probe reports, it does not raise
            return HealthReport(
                ok=False,
                latency_ms=(time.perf_counter() - started) * 1000,
                server_version=None,
                in_recovery=None,
                error=str(translate_error(exc)) or type(exc).__name__,
            )
        return HealthReport(
            ok=True,
            latency_ms=(time.perf_counter() - started) * 1000,
            server_version=str(row[0]),
            in_recovery=bool(row[1]),
        )

    def pool_status(self) -> PoolStatus:
        """Pool size, connections checked in and out, overflow in use, and limits."""
        pool = self.engine.pool
        if isinstance(pool, QueuePool):
            return PoolStatus(
                size=pool.size(),
                checked_in=pool.checkedin(),
                checked_out=pool.checkedout(),
                overflow=max(pool.overflow(), 0),
                max_overflow=self.settings.max_overflow,
                timeout=pool.timeout(),
            )
        return PoolStatus(0, 0, 0, 0, 0, self.settings.pool_timeout)

    async def dispose(self) -> None:
        """Close every pooled connection. The object can be used again afterwards."""
        await self.engine.dispose()

    aclose = dispose


async def _rollback_quietly(session: AsyncSession) -> None:
    """Roll back without letting a failure here hide the error that got us here."""
    try:
        await session.rollback()
    except Exception:
        logger.warning("rollback after an error failed as well", exc_info=True)
