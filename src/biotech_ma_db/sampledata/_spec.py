"""What a synthetic dataset holds: :class:`DatasetSpec`, its defaults and its floor."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any, Final

from biotech_ma_db.sampledata._vocabulary import ACQUIRER_TABLE

ANCHOR_DATE: Final = dt.date(2025, 6, 30)
"""The default ``today`` of a dataset: every date is counted back from it."""

MINIMUMS: Final[dict[str, int]] = {
    "companies": 500,
    "acquirers": 20,
    "drug_candidates": 1_500,
    "signals": 100_000,
    "signal_days": 730,
    "weeks": 52,
    "score_rows": 26_000,
}
"""The sizes the default :class:`DatasetSpec` must reach (the demo's promise)."""

_MAX_COMPANIES = 5_000


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """Sizes, seed and anchor date of a synthetic dataset.

    Attributes:
        companies: Biotech companies (the scored targets), at most 5,000.
        drug_candidates: Drug candidates spread over those companies (at least one each).
        signals: Signals over the last ``signal_days`` days.
        signal_days: How far back signals go.
        weeks: Weekly score snapshots per company, the newest dated ``today``.
        match_targets: How many top-scored targets get acquirer matches.
        matches_per_target: Acquirers kept per target (ranked by strategic fit).
        seed: Seed of every random stream.
        today: The anchor every date is counted back from.
        batch_size: Rows per batch of the streamed generators.
    """

    companies: int = 500
    drug_candidates: int = 1_600
    signals: int = 100_000
    signal_days: int = 730
    weeks: int = 52
    match_targets: int = 50
    matches_per_target: int = 5
    seed: int = 42
    today: dt.date = ANCHOR_DATE
    batch_size: int = 10_000

    def __post_init__(self) -> None:
        bounds = {
            "companies": (1, _MAX_COMPANIES),
            "drug_candidates": (0, 20 * _MAX_COMPANIES),
            "signals": (0, 100_000_000),
            "signal_days": (1, 36_500),
            "weeks": (0, 520),
            "match_targets": (0, _MAX_COMPANIES),
            "matches_per_target": (1, len(ACQUIRER_TABLE)),
            "batch_size": (1, 1_000_000),
        }
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low:,} and {high:,} (got {value:,})")

    def with_sizes(self, **sizes: Any) -> DatasetSpec:
        """A copy with some fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in sizes.items() if v is not None})

    @property
    def score_dates(self) -> list[dt.date]:
        """The weekly score dates, oldest first, the last one ``today``."""
        return [self.today - dt.timedelta(weeks=w) for w in range(self.weeks - 1, -1, -1)]
