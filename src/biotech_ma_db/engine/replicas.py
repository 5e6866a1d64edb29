"""One read replica: its engine and pool, whether it is in rotation, and how far behind it is.

A replica is a PostgreSQL hot standby fed by streaming replication (``DB_READ_REPLICA_URLS``);
the library replicates nothing itself.  Each gets an engine built exactly like the
primary's (:func:`build_engine`) with a pool of its own.

Rotation is kept without a background task: a failed connection takes the replica out
(with a warning), and once ``DB_REPLICA_RETRY_S`` has passed the next read routed its way
tries it again (:meth:`Replica.claim`); if that connection succeeds, it is back in.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from biotech_ma_db.engine.consistency import parse_lsn
from biotech_ma_db.engine.hooks import install_engine_hooks
from biotech_ma_db.engine.options import engine_options
from biotech_ma_db.engine.read_only import install_statement_guard
from biotech_ma_db.engine.status import ReplicaStatus, pool_snapshot
from biotech_ma_db.errors import translate_error
from biotech_ma_db.settings import DatabaseSettings

__all__ = ["ReplayPosition", "Replica", "build_engine"]

logger = logging.getLogger("biotech_ma_db.replicas")

# Seconds behind: 0 when everything received has been replayed (an idle primary sends
# nothing, so the age of the last replayed commit says nothing then), else the age of the
# last replayed commit.  On a server that is not in recovery, its own WAL position.
_POSITION_SQL: Final = """
SELECT pg_is_in_recovery(),
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
             ELSE pg_current_wal_lsn() END)::text,
       (CASE WHEN NOT pg_is_in_recovery()
                  OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0
             ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END)::float8
"""


def build_engine(url: URL, settings: DatabaseSettings) -> AsyncEngine:
    """An engine with this library's options and hooks: the primary's and each replica's."""
    engine = create_async_engine(url, **engine_options(settings))
    install_engine_hooks(engine, settings)
    install_statement_guard(engine)
    return engine


@dataclass(frozen=True, slots=True)
class ReplayPosition:
    """Where a replica is: one round trip of :meth:`Replica.position`.

    Attributes:
        in_recovery: False when the URL points at a server that is not a standby.
        lsn: WAL position replayed (the server's own position when not in recovery).
        lag_seconds: See :attr:`ReplicaStatus.lag_seconds`.
    """

    in_recovery: bool
    lsn: int | None
    lag_seconds: float | None


class Replica:
    """A read replica's engine and routing state.

    Args:
        url: The replica's asyncpg URL.
        settings: The primary's settings: pool sizes, timeouts, TLS, ``DB_REPLICA_RETRY_S``.
    """

    def __init__(self, url: URL, settings: DatabaseSettings) -> None:
        self.url = url
        #: The URL with its password masked, for logs and reports.
        self.name = url.render_as_string(hide_password=True)
        self.engine = build_engine(url, settings)
        self._settings = settings
        self.in_rotation = True
        self._retry_at = 0.0
        self.lag_bytes: int | None = None
        self.lag_seconds: float | None = None
        self.error: str | None = None

    def __repr__(self) -> str:
        state = "in rotation" if self.in_rotation else "out of rotation"
        return f"<Replica {self.name} {state}>"

    def claim(self, now: float) -> bool:
        """Whether a read may try this replica at ``now`` (``time.monotonic()``).

        Always for a replica in rotation.  For one out of rotation, once its back-off has
        passed, and then only for the caller that asks first: the others keep away for
        another back-off, so one slow reconnection does not stall every read.
        """
        if self.in_rotation:
            return True
        if now < self._retry_at:
            return False
        self._retry_at = now + self._settings.replica_retry_s
        return True

    def mark_down(self, exc: BaseException) -> None:
        """Take the replica out of rotation after ``exc`` (logged once, as a warning)."""
        message = str(translate_error(exc)) or type(exc).__name__
        if self.in_rotation:
            logger.warning("read replica %s taken out of rotation: %s", self.name, message)
        self.in_rotation = False
        self.error = message
        self._retry_at = time.monotonic() + self._settings.replica_retry_s

    def mark_up(self) -> None:
        """Put the replica (back) in rotation."""
        if not self.in_rotation:
            logger.warning("read replica %s answers again: back in rotation", self.name)
        self.in_rotation = True
        self.error = None

    async def position(self, conn: AsyncConnection) -> ReplayPosition:
        """Replay position and lag, asked on ``conn`` (a connection of this replica).

        Sent straight to the driver, so ``conn`` is left without a transaction and a
        session can still begin its own on it.
        """
        driver: Any = (await conn.get_raw_connection()).driver_connection
        row = await driver.fetchrow(_POSITION_SQL)
        lsn = parse_lsn(row[1]) if row[1] is not None else None
        lag = float(row[2]) if row[2] is not None else None
        self.lag_seconds = lag
        return ReplayPosition(bool(row[0]), lsn, lag)

    async def probe(self, primary_lsn: int | None) -> ReplicaStatus:
        """Connect, measure, and update the rotation state (for ``health()``); never raises."""
        try:
            async with self.engine.connect() as conn:
                where = await self.position(conn)
        except Exception as exc:  # noqa: BLE001 — a probe reports, it does not raise
            self.mark_down(exc)
            return self.status()
        self.mark_up()
        if primary_lsn is not None and where.lsn is not None:
            self.lag_bytes = max(primary_lsn - where.lsn, 0)
        return self.status()

    def status(self) -> ReplicaStatus:
        """Rotation state, the lag measured last and the pool, without any I/O."""
        return ReplicaStatus(
            url=self.name,
            in_rotation=self.in_rotation,
            lag_bytes=self.lag_bytes,
            lag_seconds=self.lag_seconds,
            pool=pool_snapshot(self.engine, self._settings),
            error=self.error,
        )

    async def dispose(self) -> None:
        """Close the replica's pooled connections."""
        await self.engine.dispose()
