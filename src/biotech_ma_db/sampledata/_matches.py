"""Acquirer matches: which big-pharma buyers fit a target best, and at what price."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from biotech_ma_db.sampledata._random import clamp, stream, usd
from biotech_ma_db.sampledata._spec import DatasetSpec
from biotech_ma_db.sampledata._vocabulary import RATIONALES


def acquirer_matches(
    spec: DatasetSpec,
    targets: Sequence[tuple[int, Mapping[str, Any]]],
    buyers: Sequence[tuple[int, Mapping[str, Any]]],
) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """The best ``spec.matches_per_target`` acquirers of each target, best fit first.

    Fit grows with therapeutic-area overlap and the acquirer's size; the value range is
    the target's market cap plus a drawn takeover premium (25-95 %), low <= high.

    Args:
        spec: The dataset.
        targets: ``(company id, company row)`` of each target.
        buyers: ``(company id, company row)`` of each acquirer.

    Yields:
        ``(target id, matches)``, the shape of
        ``AcquirerMatchRepository.replace_matches_for_target`` (which assigns
        ``match_rank`` and ``is_top_match`` from the fit order).
    """
    rng = stream(spec, "acquirer_matches")
    for target_id, target in targets:
        target_areas = set(target["therapeutic_areas"])
        market_cap = float(target["market_cap_usd"])
        scored = []
        for buyer_id, buyer in buyers:
            if buyer_id == target_id:
                continue
            overlap = sorted(target_areas & set(buyer["therapeutic_areas"]))
            firepower = math.log10(float(buyer["market_cap_usd"]) / 1e9) * 6
            fit = Decimal(
                f"{clamp(35 + 18 * len(overlap) + firepower + rng.uniform(-12, 12), 0, 100):.2f}"
            )
            scored.append((fit, buyer_id, buyer, overlap))
        scored.sort(key=lambda item: (-item[0], item[1]))
        matches = []
        for fit, buyer_id, buyer, overlap in scored[: spec.matches_per_target]:
            premium = rng.uniform(25, 95)
            low = market_cap * (1 + (premium - rng.uniform(5, 15)) / 100)
            high = market_cap * (1 + (premium + rng.uniform(5, 25)) / 100)
            area = (overlap or sorted(target_areas) or ["specialty"])[0].replace("_", " ")
            rationale = rng.choice(RATIONALES).format(area=area, acquirer=buyer["name"])
            matches.append(
                {
                    "acquirer_company_id": buyer_id,
                    "match_date": spec.today,
                    "strategic_fit_score": fit,
                    "synergy_rationale": rationale[0].upper() + rationale[1:],
                    "therapeutic_overlap": overlap,
                    "estimated_value_low_usd": usd(low, 1_000_000),
                    "estimated_value_high_usd": usd(high, 1_000_000),
                    "estimated_premium_pct": Decimal(f"{premium:.2f}"),
                }
            )
        yield target_id, matches
