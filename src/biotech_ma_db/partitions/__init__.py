"""Monthly partitions of ``signals``: create them ahead, list them, detach old ones.

Migration ``0003`` range-partitions ``signals`` on ``event_date``: one partition per UTC
calendar month (``signals_y2026m03``) and a DEFAULT partition (``signals_default``) that
takes any date no month partition covers, so an insert never fails for want of one.
These functions keep the months coming and the old ones going; each takes a
:class:`~biotech_ma_db.Database`, an ``AsyncEngine`` or an ``AsyncConnection`` of a role
that owns the table (the migration role)::

    from biotech_ma_db import partitions

    made = await partitions.ensure_partitions(db, months_ahead=3)     # idempotent
    for partition in await partitions.list_partitions(db):
        print(partition.name, partition.lower, partition.upper)
    gone = await partitions.detach_partitions(db, older_than=dt.date(2024, 1, 1))

The same from the command line: ``biotech-ma-db partitions ensure --months-ahead 3``,
``partitions list`` and ``partitions detach --older-than 2024-01-01 [--drop]``.  Run
``ensure`` from a daily job: several at once are safe (an advisory lock per table).
"""

from biotech_ma_db.partitions.catalog import (
    Partition,
    Target,
    list_partitions,
    partition_tables,
)
from biotech_ma_db.partitions.detach import (
    DEFAULT_DETACH_LOCK_TIMEOUT_MS,
    DEFAULT_DETACH_WAIT_SECONDS,
    detach_partitions,
)
from biotech_ma_db.partitions.ensure import (
    DEFAULT_MONTHS_AHEAD,
    MAX_MONTHS_AHEAD,
    EnsureResult,
    ensure_partitions,
)
from biotech_ma_db.partitions.naming import (
    Month,
    default_partition_name,
    is_partition_name,
    partitioned_tables,
)

__all__ = [
    "DEFAULT_DETACH_LOCK_TIMEOUT_MS",
    "DEFAULT_DETACH_WAIT_SECONDS",
    "DEFAULT_MONTHS_AHEAD",
    "MAX_MONTHS_AHEAD",
    "EnsureResult",
    "Month",
    "Partition",
    "Target",
    "default_partition_name",
    "detach_partitions",
    "ensure_partitions",
    "is_partition_name",
    "list_partitions",
    "partition_tables",
    "partitioned_tables",
]
