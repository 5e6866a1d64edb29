"""Random streams and the small numeric helpers every generator shares."""

from __future__ import annotations

import random
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from biotech_ma_db.sampledata._spec import DatasetSpec


def stream(spec: DatasetSpec, name: str) -> random.Random:
    """The random stream ``name`` of ``spec``: one per kind of row, so sizes stay apart."""
    # A string seed is hashed with SHA-512, so streams are stable across runs and
    # independent of PYTHONHASHSEED.
    return random.Random(f"{spec.seed}:{name}")  # noqa: S311 — synthetic data, not secrets


def weighted(rng: random.Random, weights: Mapping[str, float], k: int = 1) -> list[str]:
    """``k`` distinct keys of ``weights``, drawn without replacement by weight."""
    pool = dict(weights)
    chosen: list[str] = []
    for _ in range(min(k, len(pool))):
        pick = rng.choices(list(pool), weights=list(pool.values()))[0]
        chosen.append(pick)
        del pool[pick]
    return chosen


def usd(value: float, quantum: int = 1_000) -> Decimal:
    """Whole dollars rounded to ``quantum`` (financial statements are not cent-exact)."""
    return Decimal(round(value / quantum) * quantum)


def clamp(value: float, low: float, high: float) -> float:
    """``value`` limited to ``[low, high]``."""
    return max(low, min(high, value))
