"""Detach the month partitions older than a date (retention), optionally dropping them.

``ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY`` takes only SHARE UPDATE EXCLUSIVE on
the parent, so writers never wait for it; but PostgreSQL refuses it while the table has a
DEFAULT partition ("cannot detach partitions concurrently when a default partition
exists": a row of the detached range inserted meanwhile would belong to no partition).
``signals`` has one, so the way depends on the table:

* **with a DEFAULT partition**: a plain ``DETACH PARTITION``.  It needs ACCESS EXCLUSIVE
  on the parent, but only for a catalog change (milliseconds, no scan); the danger is the
  wait for it, during which every new reader and writer queues behind it.  So it runs
  with a short ``lock_timeout`` (100 ms by default): behind a long transaction it gives up
  and retries later with backoff, and a writer waits at most that long per attempt.
* **without one**: ``DETACH PARTITION ... CONCURRENTLY``; writers never wait.  An
  interrupted one leaves the partition "detach pending"; the next run finalizes it.

Both run outside any transaction block (an AUTOCOMMIT connection), holding the table's
maintenance advisory lock, so they never interleave with :func:`ensure_partitions`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from biotech_ma_db.errors import LockTimeoutError, ValidationError, translate_error
from biotech_ma_db.partitions.catalog import (
    Partition,
    Target,
    check_table,
    connection_to,
    lock_key_sql,
    partitions_of,
    translating,
)
from biotech_ma_db.partitions.naming import quoted

__all__ = ["DEFAULT_DETACH_LOCK_TIMEOUT_MS", "DEFAULT_DETACH_WAIT_SECONDS", "detach_partitions"]

DEFAULT_DETACH_LOCK_TIMEOUT_MS: Final = 100
"""How long one plain DETACH may wait for its lock (and so hold up the queue behind it)."""

DEFAULT_DETACH_WAIT_SECONDS: Final = 60.0
"""How long :func:`detach_partitions` keeps retrying, or a concurrent detach waits."""

_FIRST_RETRY_SECONDS: Final = 0.05
_MAX_RETRY_SECONDS: Final = 1.0
_LOCK_POLL_SECONDS: Final = 0.05


def _check_older_than(older_than: object) -> dt.datetime:
    if isinstance(older_than, dt.datetime) or not isinstance(older_than, dt.date):
        raise ValidationError("older_than", "must be a date (YYYY-MM-DD)")
    if older_than > dt.datetime.now(dt.UTC).date():
        raise ValidationError("older_than", "must not be in the future")
    return dt.datetime.combine(older_than, dt.time(), tzinfo=dt.UTC)


def _check_positive(field: str, value: object, *, most: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= most:
        raise ValidationError(field, f"must be a number above 0 and at most {most:g}")
    return float(value)


async def detach_partitions(
    target: Target,
    *,
    older_than: dt.date,
    table: str = "signals",
    drop: bool = False,
    lock_timeout_ms: int = DEFAULT_DETACH_LOCK_TIMEOUT_MS,
    wait_seconds: float = DEFAULT_DETACH_WAIT_SECONDS,
) -> list[str]:
    """Detach every month partition of ``table`` that ends on or before ``older_than``.

    A partition is detached only when all of its range is older than midnight UTC of
    ``older_than``: ``older_than=2026-03-15`` detaches February 2026 and earlier, not
    March.  Detached partitions become standalone tables of the same name, with their
    rows (archive or drop them later), unless ``drop`` drops them at once.  The DEFAULT
    partition is never detached.

    Args:
        target: A ``Database``, an ``AsyncEngine`` or an ``AsyncConnection`` that is not
            inside a transaction (it is switched to AUTOCOMMIT for the call).
        older_than: The retention cut-off (not in the future).
        table: The partitioned table (``signals``).
        drop: Drop each partition once detached.
        lock_timeout_ms: The wait per attempt of a plain DETACH (see the module notes).
        wait_seconds: How long to keep retrying, and the wait of a concurrent detach.

    Returns:
        The names of the partitions detached (finalized ones included), oldest first.

    Raises:
        ValidationError: A bad argument, or ``target`` is inside a transaction.
        LockTimeoutError: The locks were not granted within ``wait_seconds``.
    """
    name = check_table(table)
    cutoff = _check_older_than(older_than)
    per_attempt = _check_positive("lock_timeout_ms", lock_timeout_ms, most=60_000)
    budget = _check_positive("wait_seconds", wait_seconds, most=86_400)
    if isinstance(target, AsyncConnection) and target.in_transaction():
        raise ValidationError("target", "must not be inside a transaction: DETACH runs outside")
    deadline = time.monotonic() + budget
    with translating():
        async with connection_to(target) as connection, _autocommit(connection, name, deadline):
            partitions = await partitions_of(connection, name)
            has_default = any(p.is_default for p in partitions)
            detached: list[str] = []
            for partition in partitions:
                if partition.detach_pending:
                    await _run(connection, f"{_detach(name, partition)} FINALIZE", budget)
                elif _is_old(partition, cutoff):
                    if has_default:
                        await _detach_briefly(connection, name, partition, per_attempt, deadline)
                    else:
                        await _run(connection, f"{_detach(name, partition)} CONCURRENTLY", budget)
                else:
                    continue
                detached.append(partition.name)
                if drop:
                    await _run(connection, f"DROP TABLE {quoted(partition.name)}", budget)
            return detached


def _is_old(partition: Partition, cutoff: dt.datetime) -> bool:
    return not partition.is_default and partition.upper is not None and partition.upper <= cutoff


def _detach(table: str, partition: Partition) -> str:
    return f"ALTER TABLE {quoted(table)} DETACH PARTITION {quoted(partition.name)}"


async def _set_lock_timeout(connection: AsyncConnection, value: str) -> None:
    await connection.execute(
        text("SELECT set_config('lock_timeout', :value, false)"), {"value": value}
    )


async def _run(connection: AsyncConnection, statement: str, wait_seconds: float) -> None:
    """One statement, waiting at most ``wait_seconds`` for its locks."""
    await _set_lock_timeout(connection, f"{max(1, int(wait_seconds * 1000))}ms")
    await connection.execute(text(statement))


async def _detach_briefly(
    connection: AsyncConnection,
    table: str,
    partition: Partition,
    lock_timeout_ms: float,
    deadline: float,
) -> None:
    """A plain DETACH that never waits long for its lock, retried until ``deadline``."""
    delay = _FIRST_RETRY_SECONDS
    while True:
        try:
            await _run(connection, _detach(table, partition), lock_timeout_ms / 1000)
            return
        except DBAPIError as exc:
            if not isinstance(translate_error(exc), LockTimeoutError):
                raise
            if time.monotonic() + delay >= deadline:
                raise LockTimeoutError(
                    f"gave up detaching {partition.name}: {table} stayed locked by other "
                    f"transactions (each attempt waited {lock_timeout_ms:g} ms)",
                    sqlstate="55P03",
                ) from exc
        # Jitter only spreads retries apart; no cryptographic quality needed.
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311
        delay = min(delay * 2, _MAX_RETRY_SECONDS)


@asynccontextmanager
async def _autocommit(
    connection: AsyncConnection, table: str, deadline: float
) -> AsyncIterator[None]:
    """AUTOCOMMIT and the table's maintenance lock for the block; settings restored after."""
    level = await connection.get_isolation_level()
    _ = await connection.execution_options(isolation_level="AUTOCOMMIT")  # in place
    previous = (await connection.execute(text("SHOW lock_timeout"))).scalar_one()
    try:
        while not (
            await connection.execute(
                text(f"SELECT pg_try_advisory_lock({lock_key_sql()})"), {"table": table}
            )
        ).scalar_one():
            if time.monotonic() >= deadline:
                raise LockTimeoutError(
                    f"another job kept maintaining the partitions of {table}", sqlstate="55P03"
                )
            await asyncio.sleep(_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            await connection.execute(
                text(f"SELECT pg_advisory_unlock({lock_key_sql()})"), {"table": table}
            )
    finally:
        await _set_lock_timeout(connection, str(previous))
        # SQLAlchemy keeps a (no-op) transaction object even in AUTOCOMMIT; end it first.
        await connection.rollback()
        _ = await connection.execution_options(isolation_level=level)
