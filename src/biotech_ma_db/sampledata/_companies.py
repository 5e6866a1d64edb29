"""Companies: the biotech targets, the big-pharma acquirers, and the targets' pipelines."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from biotech_ma_db.sampledata._random import clamp, stream, usd, weighted
from biotech_ma_db.sampledata._spec import DatasetSpec
from biotech_ma_db.sampledata._vocabulary import (
    ACQUIRER_TABLE,
    ACQUIRERS,
    COUNTRIES,
    DESIGNATIONS,
    INDICATIONS,
    MECHANISMS,
    NAME_ENDINGS,
    NAME_STEMS,
    NAME_SUFFIXES,
    PEAK_SALES_MEDIAN,
    PHASES,
    STATUS,
    THERAPEUTIC_AREAS,
)

_MIN_CAP, _MAX_CAP = 50e6, 50e9


def companies(spec: DatasetSpec | None = None) -> list[dict[str, Any]]:
    """The biotech companies (acquisition targets) of the dataset.

    Market caps are log-normal between $50M and $50B; cash, quarterly burn, debt and
    revenue follow from the cap and a drawn cash runway, so about a quarter of the
    companies are cash constrained (runway under 12 months).

    Returns:
        ``spec.companies`` dicts with the ``companies`` columns, unique tickers (1-5
        upper-case letters, never an acquirer's) and unique names.
    """
    spec = spec or DatasetSpec()
    rng = stream(spec, "companies")
    taken_tickers = set(ACQUIRERS)
    taken_names: set[str] = set()
    taken_stems: set[str] = set()
    # Distinct stems read best; past 60 % of the stem space only full names stay distinct.
    distinct_stems = spec.companies <= 0.6 * len(NAME_STEMS) * len(NAME_ENDINGS)
    rows: list[dict[str, Any]] = []
    while len(rows) < spec.companies:
        stem = rng.choice(NAME_STEMS) + rng.choice(NAME_ENDINGS)
        name = f"{stem} {rng.choice(NAME_SUFFIXES)}"
        if name in taken_names or (distinct_stems and stem in taken_stems):
            continue
        taken_names.add(name)
        taken_stems.add(stem)
        ticker = _ticker(rng, stem, taken_tickers)
        taken_tickers.add(ticker)
        rows.append(_company_row(rng, spec, ticker, name))
    return rows


def _ticker(rng: random.Random, name: str, taken: set[str]) -> str:
    letters = "".join(ch for ch in name.upper() if "A" <= ch <= "Z")
    candidates = [letters[:4], letters[:3] + letters[-1], letters[:2] + letters[-2:]]
    for candidate in candidates:
        if candidate not in taken:
            return candidate
    while True:
        length = rng.choice((3, 4, 4, 5))
        candidate = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(length))
        if candidate not in taken:
            return candidate


def _company_row(rng: random.Random, spec: DatasetSpec, ticker: str, name: str) -> dict[str, Any]:
    market_cap = 0.0
    while not _MIN_CAP <= market_cap <= _MAX_CAP:
        market_cap = math.exp(rng.gauss(math.log(900e6), 1.35))
    commercial = market_cap > 3e9 and rng.random() < 0.55
    cash = market_cap * clamp(rng.lognormvariate(math.log(0.25), 0.6), 0.03, 0.9)
    constrained = rng.random() < 0.25
    runway_months = rng.uniform(3, 11.5) if constrained else rng.uniform(12.5, 72)
    quarterly_burn = cash / runway_months * 3
    revenue = market_cap * rng.uniform(0.05, 0.25) if commercial else 0.0
    if not commercial and rng.random() < 0.15:
        revenue = rng.uniform(1e6, 40e6)  # collaboration and royalty income
    debt = 0.0 if rng.random() < 0.45 else cash * rng.uniform(0.05, 0.6)
    areas = weighted(rng, THERAPEUTIC_AREAS, k=rng.choices((1, 2, 3), weights=(5, 4, 2))[0])
    return {
        "ticker": ticker,
        "name": name,
        "exchange": "NASDAQ" if rng.random() < 0.86 else "NYSE",
        "market_cap_usd": usd(market_cap),
        "cash_position_usd": usd(cash),
        "quarterly_burn_usd": usd(quarterly_burn),
        "total_debt_usd": usd(debt),
        "revenue_ttm_usd": usd(revenue),
        "employee_count": int(clamp(market_cap / rng.uniform(2e6, 6e6), 8, 12_000)),
        "headquarters_country": weighted(rng, COUNTRIES)[0],
        "founded_year": rng.randint(1985, min(spec.today.year - 2, 2022)),
        "therapeutic_areas": areas,
    }


def acquirers() -> list[dict[str, Any]]:
    """The large pharmaceutical acquirers, as ``companies`` rows (no burn: cash positive)."""
    return [
        {
            "ticker": a.ticker,
            "name": a.name,
            "exchange": a.exchange,
            "market_cap_usd": usd(a.market_cap_bn * 1e9, 1_000_000),
            "cash_position_usd": usd(a.market_cap_bn * 1e9 * 0.06, 1_000_000),
            "quarterly_burn_usd": Decimal(0),
            "total_debt_usd": usd(a.market_cap_bn * 1e9 * 0.15, 1_000_000),
            "revenue_ttm_usd": usd(a.revenue_bn * 1e9, 1_000_000),
            "employee_count": int(a.revenue_bn * 1_800),
            "headquarters_country": a.country,
            "founded_year": a.founded,
            "therapeutic_areas": list(a.areas),
        }
        for a in ACQUIRER_TABLE
    ]


def drug_candidates(
    spec: DatasetSpec, company_rows: Sequence[Mapping[str, Any]], company_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """``spec.drug_candidates`` pipeline assets, at least one per company.

    Args:
        spec: The dataset.
        company_rows: The rows of :func:`companies` (for therapeutic areas and tickers).
        company_ids: The database id of each of those rows, in the same order.

    Returns:
        ``drug_candidates`` dicts; names are unique within a company.
    """
    if len(company_rows) != len(company_ids):
        raise ValueError("company_rows and company_ids must have the same length")
    rng = stream(spec, "drug_candidates")
    per_company = [1] * len(company_rows) if spec.drug_candidates >= len(company_rows) else []
    if not per_company:
        per_company = [0] * len(company_rows)
        for index in rng.sample(range(len(company_rows)), spec.drug_candidates):
            per_company[index] = 1
    for _ in range(spec.drug_candidates - sum(per_company)):
        per_company[rng.randrange(len(company_rows))] += 1
    rows: list[dict[str, Any]] = []
    for company, company_id, count in zip(company_rows, company_ids, per_company, strict=True):
        prefix = "".join(ch for ch in company["ticker"] if ch.isalpha())[:3]
        numbers = rng.sample(range(100, 1000), count)
        for number in sorted(numbers):
            rows.append(_drug_row(rng, spec, company, company_id, f"{prefix}-{number}"))
    return rows


def _drug_row(
    rng: random.Random,
    spec: DatasetSpec,
    company: Mapping[str, Any],
    company_id: int,
    drug_name: str,
) -> dict[str, Any]:
    area = rng.choice(company["therapeutic_areas"])
    phase = weighted(rng, PHASES)[0]
    designations = [d for d in DESIGNATIONS if rng.random() < 0.12]
    if area == "rare_disease" and "orphan" not in designations:
        designations.insert(0, "orphan")
    peak = clamp(rng.lognormvariate(math.log(PEAK_SALES_MEDIAN[phase]), 0.8), 20e6, 8e9)
    return {
        "company_id": company_id,
        "drug_name": drug_name,
        "phase": phase,
        "indication": rng.choice(INDICATIONS[area]),
        "mechanism_of_action": rng.choice(MECHANISMS[area]),
        "therapeutic_area": area,
        "patent_expiry_date": spec.today + dt.timedelta(days=rng.randint(3 * 365, 20 * 365)),
        "regulatory_designations": designations,
        "regulatory_status": "clinical hold" if rng.random() < 0.02 else STATUS[phase],
        "peak_sales_estimate_usd": usd(peak, 1_000_000),
    }
