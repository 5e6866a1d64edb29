"""Weekly M&A scores: a profile per company, drifting week to week around it."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from biotech_ma_db.sampledata._random import clamp, stream
from biotech_ma_db.sampledata._spec import DatasetSpec

MODEL_VERSION: Final = "synthetic-1.0"
"""``model_version`` written on every synthetic score."""

# How much buyers want each area (0-100): the base of the strategic component.
_AREA_DEMAND = {
    "oncology": 78, "immunology": 74, "neurology": 66, "rare_disease": 76, "metabolic": 88,
    "cardiology": 58, "infectious_disease": 42, "hematology": 68, "ophthalmology": 60,
    "dermatology": 52, "gastroenterology": 56, "respiratory": 50, "psychiatry": 62,
}  # fmt: skip
# Component weights of total_score.
_WEIGHTS = {"pipeline": 0.30, "financial": 0.25, "strategic": 0.25, "signal": 0.20}
_LATE_STAGE = frozenset({"phase_3", "nda_bla_submitted", "approved"})


@dataclass(slots=True)
class _Profile:
    """What a company's scores are built from."""

    base: dict[str, float]
    late_stage: int
    mid_stage: int
    runway_months: float | None
    lead_area: str
    has_debt: bool
    single_asset: bool
    state: dict[str, float] = field(default_factory=dict)


def _runway(company: Mapping[str, Any]) -> float | None:
    burn = float(company.get("quarterly_burn_usd") or 0)
    if burn <= 0:
        return None
    return float(company.get("cash_position_usd") or 0) / burn * 3


def _profiles(
    rng: random.Random,
    company_rows: Sequence[Mapping[str, Any]],
    company_ids: Sequence[int],
    drugs: Sequence[Mapping[str, Any]],
) -> list[_Profile]:
    phases: dict[int, list[str]] = {}
    for drug in drugs:
        phases.setdefault(drug["company_id"], []).append(str(drug["phase"]))
    profiles = []
    for company, company_id in zip(company_rows, company_ids, strict=True):
        own = phases.get(company_id, [])
        late = sum(p in _LATE_STAGE for p in own)
        mid = sum(p == "phase_2" for p in own)
        runway = _runway(company)
        areas = list(company["therapeutic_areas"]) or ["oncology"]
        market_cap = float(company["market_cap_usd"])
        if runway is None:
            financial = 25.0
        elif runway < 12:
            financial = 82 - runway
        elif runway < 24:
            financial = 65 - (runway - 12)
        else:
            financial = 45 - min(runway - 24, 40) / 2
        # Smaller companies are easier to buy: up to +15 below a $1B cap.
        financial += clamp(15 * (1 - math.log10(market_cap / 50e6) / 3), 0, 15)
        base = {
            "pipeline": clamp(22 + 16 * late + 7 * mid + rng.uniform(-10, 10), 5, 95),
            "financial": clamp(financial + rng.uniform(-8, 8), 5, 95),
            "strategic": clamp(
                sum(_AREA_DEMAND[a] for a in areas) / len(areas) + rng.uniform(-12, 12), 5, 95
            ),
            "signal": rng.uniform(20, 80),
        }
        profiles.append(
            _Profile(
                base=base,
                late_stage=late,
                mid_stage=mid,
                runway_months=runway,
                lead_area=max(areas, key=lambda a: _AREA_DEMAND[a]),
                has_debt=float(company.get("total_debt_usd") or 0) > 0,
                single_asset=len(own) <= 1,
                state=dict(base),
            )
        )
    return profiles


def _drivers(profile: _Profile, components: Mapping[str, float]) -> list[str]:
    lines: list[tuple[float, str]] = []
    if profile.late_stage:
        lines.append((components["pipeline"], f"{profile.late_stage} late-stage asset(s)"))
    elif profile.mid_stage:
        lines.append((components["pipeline"], f"{profile.mid_stage} Phase 2 asset(s) maturing"))
    if profile.runway_months is not None and profile.runway_months < 18:
        lines.append((components["financial"], f"cash runway {profile.runway_months:.0f} months"))
    else:
        lines.append((components["financial"] * 0.8, "valuation below pipeline value"))
    lines.append(
        (components["strategic"], f"high buyer demand in {profile.lead_area.replace('_', ' ')}")
    )
    if components["signal"] >= 60:
        lines.append((components["signal"], "elevated deal-related signal flow"))
    elif components["signal"] >= 45:
        lines.append((components["signal"], "partnering activity with large pharma"))
    lines.sort(key=lambda item: item[0], reverse=True)
    return [text for _, text in lines[:3]]


def _risks(profile: _Profile, components: Mapping[str, float]) -> list[str]:
    risks = []
    if profile.single_asset:
        risks.append("single-asset pipeline")
    if profile.late_stage == 0:
        risks.append("no late-stage data yet")
    if profile.runway_months is not None and profile.runway_months < 12:
        risks.append("dilutive financing likely within a year")
    if profile.has_debt:
        risks.append("debt would need refinancing on a change of control")
    if components["signal"] < 35:
        risks.append("quiet news flow")
    return risks[:3]


def weekly_scores(
    spec: DatasetSpec,
    company_rows: Sequence[Mapping[str, Any]],
    company_ids: Sequence[int],
    drugs: Sequence[Mapping[str, Any]] = (),
) -> Iterator[list[dict[str, Any]]]:
    """Weekly score snapshots, one batch per week, oldest week first.

    Components (pipeline, financial, strategic, signal; each 0-100) start from a profile
    of the company (late-stage assets, cash runway, demand for its therapeutic areas)
    and drift week to week with mean reversion; ``total_score`` is their weighted sum.
    ``score_change_30d``/``score_change_90d`` are the differences to the newest earlier
    snapshot at least 30 and 90 days older (``None`` before one exists).
    ``percentile_rank`` is left for the database to rank.

    Args:
        spec: The dataset (``weeks`` and ``today`` set the dates).
        company_rows: Rows of :func:`companies`.
        company_ids: Their database ids, same order.
        drugs: Rows of :func:`drug_candidates` (they make the pipeline component).

    Yields:
        ``len(company_ids)`` ``ma_scores`` dicts per week.
    """
    if len(company_rows) != len(company_ids):
        raise ValueError("company_rows and company_ids must have the same length")
    rng = stream(spec, "scores")
    profiles = _profiles(rng, company_rows, company_ids, drugs)
    history: list[list[tuple[dt.date, Decimal]]] = [[] for _ in company_ids]
    for score_date in spec.score_dates:
        batch = []
        for index, (profile, company_id) in enumerate(zip(profiles, company_ids, strict=True)):
            for name, base in profile.base.items():
                drift = base + 0.8 * (profile.state[name] - base) + rng.gauss(0, 3.5)
                profile.state[name] = clamp(drift, 0, 100)
            components = profile.state
            total = Decimal(f"{sum(_WEIGHTS[n] * components[n] for n in _WEIGHTS):.2f}")
            past = history[index]
            batch.append(
                {
                    "company_id": company_id,
                    "score_date": score_date,
                    "total_score": total,
                    "pipeline_score": Decimal(f"{components['pipeline']:.2f}"),
                    "financial_score": Decimal(f"{components['financial']:.2f}"),
                    "strategic_score": Decimal(f"{components['strategic']:.2f}"),
                    "signal_score": Decimal(f"{components['signal']:.2f}"),
                    "score_change_30d": _change(past, score_date, total, 30),
                    "score_change_90d": _change(past, score_date, total, 90),
                    "key_drivers": _drivers(profile, components),
                    "risk_factors": _risks(profile, components),
                    "model_version": MODEL_VERSION,
                }
            )
            past.append((score_date, total))
        yield batch


def _change(
    past: Sequence[tuple[dt.date, Decimal]], today: dt.date, total: Decimal, days: int
) -> Decimal | None:
    cutoff = today - dt.timedelta(days=days)
    for when, value in reversed(past):
        if when <= cutoff:
            return total - value
    return None
