"""What :meth:`Database.health` and :meth:`Database.pool_status` report.

Plain frozen dataclasses, for the primary and for each read replica.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from biotech_ma_db.settings import DatabaseSettings

__all__ = ["HealthReport", "PoolStatus", "ReplicaStatus", "pool_snapshot"]


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """A snapshot of the connection pool (see :meth:`Database.pool_status`).

    Attributes:
        size: Connections the pool keeps.
        checked_in: Idle connections in the pool.
        checked_out: Connections in use.
        overflow: Connections opened beyond ``size`` and in use.
        max_overflow: The limit of ``overflow``.
        timeout: How long a checkout waits for a free connection, in seconds.
        replicas: One :class:`ReplicaStatus` per read replica (``DB_READ_REPLICA_URLS``),
            with its own pool, rotation state and the lag measured last.
    """

    size: int
    checked_in: int
    checked_out: int
    overflow: int
    max_overflow: int
    timeout: float
    replicas: tuple[ReplicaStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """One read replica, as routing sees it.

    Attributes:
        url: The replica's URL, password masked.
        in_rotation: Whether reads are routed to it (False after a failed connection,
            until it answers again).
        lag_bytes: WAL bytes the primary is ahead of the replica's replay (measured by
            :meth:`Database.health`, which also asks the primary), else ``None``.
        lag_seconds: Seconds since the last replayed commit when the replica has not
            replayed all the WAL it received, 0 when it has; ``None`` when unknown.
        pool: The replica's own connection pool.
        error: Why the last connection or probe failed, when it did.
    """

    url: str
    in_rotation: bool
    lag_bytes: int | None
    lag_seconds: float | None
    pool: PoolStatus
    error: str | None = None


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The answer of :meth:`Database.health`.

    Attributes:
        ok: Whether a round trip to the server succeeded.
        latency_ms: Round-trip time of the probe, in milliseconds.
        server_version: ``server_version`` as reported by PostgreSQL (``None`` when down).
        in_recovery: True on a hot standby (read replica).
        error: Why the probe failed (typed error message, no secrets), else ``None``.
        replicas: One :class:`ReplicaStatus` per read replica, probed just now.
    """

    ok: bool
    latency_ms: float
    server_version: str | None
    in_recovery: bool | None
    error: str | None = None
    replicas: tuple[ReplicaStatus, ...] = ()


def pool_snapshot(engine: AsyncEngine, settings: DatabaseSettings) -> PoolStatus:
    """The pool figures of ``engine`` (zeros for a pool that does not count)."""
    pool = engine.pool
    if isinstance(pool, QueuePool):
        return PoolStatus(
            size=pool.size(),
            checked_in=pool.checkedin(),
            checked_out=pool.checkedout(),
            overflow=max(pool.overflow(), 0),
            max_overflow=settings.max_overflow,
            timeout=pool.timeout(),
        )
    return PoolStatus(0, 0, 0, 0, 0, settings.pool_timeout)
