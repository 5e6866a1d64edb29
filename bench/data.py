"""Deterministic benchmark data: companies, signals, scores and per-run workloads.

Signals come from the library's own synthetic generator
(:func:`biotech_ma_db.sampledata.signals`, realistic ``signal_data`` JSON per type);
companies and scores are drawn here because the benchmark needs more companies (10,000
for the upsert) than the demo dataset allows and a fixed 100,000-row score table.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from biotech_ma_db import sampledata

SEED = 20_261_122
ANCHOR = sampledata.ANCHOR_DATE
SINCE_90_DAYS = dt.datetime.combine(ANCHOR - dt.timedelta(days=90), dt.time(), tzinfo=dt.UTC)

AREAS = list(sampledata.THERAPEUTIC_AREAS)
AREA_WEIGHTS = list(sampledata.THERAPEUTIC_AREAS.values())
EXCHANGES = ("NASDAQ", "NYSE", "LSE", "SIX", "EURONEXT")
COUNTRIES = ("US", "US", "US", "GB", "CH", "DE", "FR", "CA", "CN", "IL")

COMPANY_COLUMNS = (
    "ticker",
    "name",
    "exchange",
    "market_cap_usd",
    "cash_position_usd",
    "quarterly_burn_usd",
    "total_debt_usd",
    "revenue_ttm_usd",
    "employee_count",
    "headquarters_country",
    "founded_year",
    "therapeutic_areas",
)

SIGNAL_COLUMNS = (
    "company_id",
    "signal_type",
    "event_date",
    "severity",
    "title",
    "description",
    "source",
    "source_url",
    "signal_data",
    "ma_impact_score",
)

SCORE_COLUMNS = (
    "company_id",
    "score_date",
    "total_score",
    "pipeline_score",
    "financial_score",
    "strategic_score",
    "signal_score",
    "score_change_30d",
    "score_change_90d",
    "key_drivers",
    "risk_factors",
    "model_version",
)


def rng(*stream: object) -> random.Random:
    """A random stream that depends only on the seed and the stream name."""
    return random.Random(":".join(str(s) for s in (SEED, *stream)))


def seed_ticker(index: int) -> str:
    return f"C{index:05d}"


def new_ticker(index: int) -> str:
    return f"N{index:05d}"


def _usd(value: float) -> Decimal:
    return Decimal(round(value / 1000) * 1000)


def company_row(r: random.Random, ticker: str, index: int) -> dict[str, Any]:
    """One ``companies`` row with the writable columns (no id, timestamps or generated)."""
    cap = min(50e9, max(50e6, r.lognormvariate(20.5, 1.4)))
    cash = cap * r.uniform(0.05, 0.4)
    burn = cash / r.uniform(1.0, 12.0)
    areas = set(r.choices(AREAS, weights=AREA_WEIGHTS, k=r.randint(1, 3)))
    if r.random() < 0.12:  # about half the companies work in oncology
        areas.add("oncology")
    return {
        "ticker": ticker,
        "name": f"Company {ticker} Therapeutics {index}",
        "exchange": r.choice(EXCHANGES),
        "market_cap_usd": _usd(cap),
        "cash_position_usd": _usd(cash),
        "quarterly_burn_usd": _usd(burn),
        "total_debt_usd": _usd(cap * r.uniform(0, 0.2)),
        "revenue_ttm_usd": _usd(cap * r.uniform(0, 0.3)),
        "employee_count": r.randint(10, 5_000),
        "headquarters_country": r.choice(COUNTRIES),
        "founded_year": r.randint(1980, 2023),
        "therapeutic_areas": sorted(areas),
    }


def seed_companies(count: int) -> list[dict[str, Any]]:
    r = rng("companies")
    return [company_row(r, seed_ticker(i), i) for i in range(count)]


def upsert_companies(count: int, existing: int, seed_count: int) -> list[dict[str, Any]]:
    """``count`` rows: ``existing`` of them reuse seed tickers (changed values), the rest new."""
    r = rng("upsert")
    rows = [company_row(r, seed_ticker(i), i) for i in r.sample(range(seed_count), existing)]
    rows += [company_row(r, new_ticker(i), i) for i in range(count - existing)]
    r.shuffle(rows)
    return rows


def signals(company_ids: Sequence[int], count: int, batch: int = 10_000) -> Iterator[list[dict]]:
    """Batches of signal dicts (the library generator; ``signal_data`` is a dict)."""
    spec = sampledata.DatasetSpec(
        companies=1, signals=count, seed=SEED, batch_size=batch, signal_days=730
    )
    yield from sampledata.signals(spec, list(company_ids))


def signal_record(row: dict[str, Any]) -> tuple[Any, ...]:
    """A COPY/INSERT record for raw drivers (JSON as text, the asyncpg jsonb default)."""
    return (
        row["company_id"],
        row["signal_type"],
        row["event_date"],
        row["severity"],
        row["title"],
        row.get("description"),
        row.get("source"),
        row.get("source_url"),
        json.dumps(row["signal_data"]),
        row.get("ma_impact_score"),
    )


def scores(company_ids: Sequence[int], weeks: int) -> list[tuple[Any, ...]]:
    """``len(company_ids) * weeks`` score records (COPY order of ``SCORE_COLUMNS``)."""
    r = rng("scores")
    dates = [ANCHOR - dt.timedelta(weeks=w) for w in range(weeks)]
    records = []
    for company_id in company_ids:
        base = r.uniform(20, 80)
        for day in dates:
            parts = [min(100.0, max(0.0, base + r.gauss(0, 10))) for _ in range(4)]
            total = Decimal(f"{sum(parts) / 4:.2f}")
            records.append(
                (
                    company_id,
                    day,
                    total,
                    *(Decimal(f"{p:.2f}") for p in parts),
                    Decimal(f"{r.uniform(-5, 5):.2f}"),
                    Decimal(f"{r.uniform(-10, 10):.2f}"),
                    ["late-stage asset", "cash runway"][: r.randint(0, 2)],
                    ["binary readout"][: r.randint(0, 1)],
                    "bench-1",
                )
            )
    return records


@dataclass(frozen=True)
class Seeded:
    """What the database holds before the timed runs."""

    company_ids: list[int]
    tickers: list[str]
    oncology_caps: list[Decimal]  # market caps of live oncology companies, descending
    signal_company_ids: list[int]  # companies with at least one signal in the last 90 days
    signal_tickers: list[str]  # their tickers, in the same order


def point_tickers(seeded: Seeded, count: int, run: str) -> list[str]:
    r = rng("tickers", run)
    return [r.choice(seeded.tickers) for _ in range(count)]


def page_thresholds(seeded: Seeded, count: int, run: str, page: int = 50) -> list[Decimal]:
    """Random market-cap floors that each still leave at least ``page`` oncology rows."""
    r = rng("caps", run)
    usable = seeded.oncology_caps[page - 1 :]
    return [r.choice(usable) for _ in range(count)]


def company_picks(seeded: Seeded, count: int, run: str) -> list[int]:
    r = rng("company", run)
    return [r.choice(seeded.signal_company_ids) for _ in range(count)]


def uow_tickers(seeded: Seeded, count: int, run: str) -> list[str]:
    """``count`` different companies with recent signals: one score each on the same day."""
    r = rng("uow", run)
    return r.sample(seeded.signal_tickers, min(count, len(seeded.signal_tickers)))


def big_company_signals(company_id: int, count: int) -> Iterator[list[dict[str, Any]]]:
    """``count`` signals of one company (the memory row's 100,000-row read), in batches."""
    spec = sampledata.DatasetSpec(
        companies=1, signals=count, seed=SEED + 1, batch_size=10_000, signal_days=730
    )
    yield from sampledata.signals(spec, [company_id])
