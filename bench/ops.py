"""The benchmark rows: what each measures, its counts, its target and its reset."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Op:
    """One benchmark row.

    Attributes:
        full: Units per timed run in a full run (``quick``: with ``--quick``).
        target: The library's throughput ratio to raw asyncpg to reach (None: no target).
        reset: What to restore before each run (see ``Harness.reset``).
        min_repeats: Timed runs per contender in a full run at least (short reads vary
            most from run to run, so they get more).
        reads: A read-only row: warmed on every pooled connection of a contender.
    """

    key: str
    title: str
    unit: str
    full: int
    quick: int
    target: float | None
    reset: str | None = None
    min_repeats: int = 5
    reads: bool = False


RANKING = frozenset({"7b", "7c"})  # update_percentile_ranks: one run, the end state checked
UNIT_OF_WORK = "8"
MEMORY = "9"

OPS: tuple[Op, ...] = (
    Op("1", "point read by ticker", "reads", 5_000, 300, 0.80, min_repeats=7, reads=True),
    Op(
        "2",
        "filtered page, rows (search_rows)",
        "pages",
        1_000,
        100,
        0.85,
        min_repeats=7,
        reads=True,
    ),
    Op(
        "2t",
        "filtered page, tracked (search)",
        "pages",
        1_000,
        100,
        0.75,
        min_repeats=7,
        reads=True,
    ),
    Op(
        "5",
        "concurrent reads, 8 tasks / pool 8",
        "reads",
        10_000,
        800,
        0.75,
        min_repeats=7,
        reads=True,
    ),
    Op("6", "get_by_company, last 90 days", "queries", 2_000, 200, 0.85, min_repeats=7, reads=True),
    Op("7a", "get_top_scores(50)", "queries", 30, 3, 0.60, min_repeats=7, reads=True),
    Op("7b", "update_percentile_ranks, new week", "scores", 1, 1, 0.60, reset="new week"),
    Op("7c", "update_percentile_ranks, all stale", "scores", 1, 1, None, reset="all ranks"),
    Op("8", "unit of work: read, read 90 days, write", "units", 500, 50, 0.70, reset="uow"),
    Op("3", "bulk insert signals with JSONB", "rows", 100_000, 10_000, 0.95, reset="signals"),
    Op("4", "upsert companies, 20% existing", "rows", 10_000, 1_000, 0.95, reset="companies"),
)
