"""Signals: the streamed event rows, and one ``signal_data`` builder per signal type."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any, Final

from biotech_ma_db.sampledata._random import clamp, stream, usd, weighted
from biotech_ma_db.sampledata._spec import DatasetSpec
from biotech_ma_db.sampledata._vocabulary import (
    ACQUIRER_TABLE,
    DEALS,
    FDA_DECISIONS,
    FILINGS,
    FINANCINGS,
    FIRST_NAMES,
    INDICATIONS,
    INVESTORS,
    LAST_NAMES,
    NEWS_HEADLINES,
    POSITIONS,
    PUBLISHERS,
    SIGNAL_TYPE_WEIGHTS,
    THERAPEUTIC_AREAS,
    TRIAL_EVENTS,
)


def signals(
    spec: DatasetSpec, company_ids: Sequence[int], company_names: Sequence[str] | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Stream ``spec.signals`` signals over the last ``spec.signal_days`` days.

    Rows are yielded in batches of ``spec.batch_size`` and generated lazily, so a large
    dataset never sits in memory.  Every signal type of the schema occurs, each with the
    ``signal_data`` keys its model subclass reads.  Some companies are much noisier than
    others (news flow is skewed).

    Args:
        spec: The dataset.
        company_ids: Database ids of the companies the signals are about.
        company_names: Their names, for titles (ids are used when omitted).

    Yields:
        Lists of ``signals`` dicts (``event_date`` is a UTC ``datetime``).
    """
    if not company_ids:
        return
    names = list(company_names) if company_names is not None else [f"#{i}" for i in company_ids]
    if len(names) != len(company_ids):
        raise ValueError("company_ids and company_names must have the same length")
    rng = stream(spec, "signals")
    activity = [rng.lognormvariate(0, 0.7) for _ in company_ids]
    cumulative: list[float] = []
    total = 0.0
    for weight in activity:
        total += weight
        cumulative.append(total)
    types = list(SIGNAL_TYPE_WEIGHTS)
    type_weights = list(SIGNAL_TYPE_WEIGHTS.values())
    end = dt.datetime.combine(spec.today, dt.time(23, 59), tzinfo=dt.UTC)
    span_seconds = spec.signal_days * 86_400
    emitted = 0
    while emitted < spec.signals:
        size = min(spec.batch_size, spec.signals - emitted)
        picks = rng.choices(range(len(company_ids)), cum_weights=cumulative, k=size)
        kinds = rng.choices(types, weights=type_weights, k=size)
        batch = []
        for index, kind in zip(picks, kinds, strict=True):
            when = end - dt.timedelta(seconds=rng.randrange(span_seconds))
            row = _SIGNAL_BUILDERS[kind](rng, names[index], when)
            row["company_id"] = company_ids[index]
            row["signal_type"] = kind
            row["event_date"] = when
            batch.append(row)
        emitted += size
        yield batch


def _severity_for(impact: float) -> str:
    magnitude = abs(impact)
    if magnitude >= 70:
        return "critical"
    if magnitude >= 40:
        return "high"
    if magnitude >= 15:
        return "medium"
    return "low"


def _signal(
    title: str,
    impact: float,
    data: dict[str, Any],
    *,
    source: str,
    url: str | None,
    description: str | None = None,
) -> dict[str, Any]:
    impact = clamp(impact, -100, 100)
    return {
        "severity": _severity_for(impact),
        "title": title,
        "description": description,
        "source": source,
        "source_url": url,
        "signal_data": data,
        "ma_impact_score": Decimal(f"{impact:.2f}"),
    }


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def _sec_filing(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    form, _, (low, high) = rng.choices(FILINGS, weights=[f[1] for f in FILINGS])[0]
    cik = rng.randint(1_000_000, 1_999_999)
    accession = f"{cik:010d}-{when.year % 100:02d}-{rng.randint(1, 999_999):06d}"
    url = f"https://www.sec.gov/Archives/edgar/data/{cik}/{accession.replace('-', '')}.htm"
    data = {"filing_type": form, "url": url, "accession_number": accession}
    return _signal(
        f"{name} files Form {form}", rng.uniform(low, high), data, source="SEC EDGAR", url=url
    )


def _fda_approval(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    weights = [d[1] for d in FDA_DECISIONS]
    decision, _, (low, high) = rng.choices(FDA_DECISIONS, weights=weights)[0]
    area = weighted(rng, THERAPEUTIC_AREAS)[0]
    drug = f"{name[:3].upper()}-{rng.randint(100, 999)}"
    kind = rng.choice(("NDA", "BLA"))
    data = {
        "decision": decision,
        "drug_name": drug,
        "application_number": f"{kind} {rng.randint(200_000, 799_999)}",
        "indication": rng.choice(INDICATIONS[area]),
    }
    title = f"FDA {decision.replace('_', ' ')}: {name}'s {drug}"
    return _signal(
        title, rng.uniform(low, high), data, source="FDA", url="https://www.fda.gov/drugs"
    )


def _clinical_trial(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    status, met, (low_int, high_int) = rng.choice(TRIAL_EVENTS)
    low, high = float(low_int), float(high_int)
    phase = rng.choices(("phase_1", "phase_2", "phase_3"), weights=(3, 4, 2))[0]
    if phase == "phase_3":
        low, high = low * 1.3, high * 1.3
    nct = f"NCT0{rng.randint(1_000_000, 9_999_999)}"
    data: dict[str, Any] = {
        "nct_id": nct,
        "trial_phase": phase,
        "status": status,
        "enrollment": rng.randint(12, 1_200),
    }
    if met is not None:
        data["primary_endpoint_met"] = met
    if met is None:
        outcome = status
    else:
        outcome = "meets primary endpoint" if met else "misses primary endpoint"
    title = f"{name} {phase.replace('_', ' ').title()} trial {outcome.replace('_', ' ')}"
    url = f"https://clinicaltrials.gov/study/{nct}"
    return _signal(title, rng.uniform(low, high), data, source="ClinicalTrials.gov", url=url)


def _insider_trading(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    buy = rng.random() < 0.3
    shares = rng.randint(1_000, 250_000)
    price = round(rng.uniform(2, 120), 2)
    data = {
        "insider_name": _person(rng),
        "transaction_type": "buy" if buy else "sell",
        "shares": shares,
        "price_usd": price,
        "value_usd": round(shares * price, 2),
    }
    impact = rng.uniform(5, 30) if buy else rng.uniform(-15, 5)
    title = f"{data['insider_name']} {'buys' if buy else 'sells'} {shares:,} {name} shares"
    return _signal(title, impact, data, source="SEC Form 4", url=None)


def _partnership(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    partner = rng.choice(ACQUIRER_TABLE)
    deal = rng.choice(DEALS)
    value = usd(rng.lognormvariate(math.log(600e6), 0.9), 1_000_000)
    upfront = usd(float(value) * rng.uniform(0.05, 0.25), 1_000_000)
    data = {
        "partner_name": partner.name,
        "deal_type": deal,
        "deal_value_usd": int(value),
        "upfront_payment_usd": int(upfront),
    }
    impact = rng.uniform(50, 85) if deal == "option_to_acquire" else rng.uniform(15, 55)
    worth = f"${value / 1_000_000:,.0f}M"
    title = f"{name} signs {deal.replace('_', ' ')} deal with {partner.name} worth {worth}"
    return _signal(title, impact, data, source="press release", url=None)


def _financing(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    kind = rng.choice(FINANCINGS)
    amount = usd(rng.lognormvariate(math.log(120e6), 0.8), 100_000)
    data = {
        "financing_type": kind,
        "amount_usd": int(amount),
        "lead_investor": rng.choice(INVESTORS),
    }
    title = f"{name} raises ${amount / 1_000_000:,.1f}M ({kind.replace('_', ' ')})"
    return _signal(title, rng.uniform(-35, 10), data, source="press release", url=None)


def _executive_change(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    position = rng.choice(POSITIONS)
    appointed = rng.random() < 0.6
    person = _person(rng)
    data = {
        "executive_name": person,
        "position": position,
        "change_type": "appointed" if appointed else "departed",
    }
    impact = rng.uniform(-25, 10)
    if appointed and position in {"Chief Business Officer", "CFO"}:
        impact = rng.uniform(15, 45)  # deal-makers are hired before a sale process
    title = f"{name} {'appoints' if appointed else 'announces departure of'} {position} {person}"
    return _signal(title, impact, data, source="press release", url=None)


def _patent(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    jurisdiction = rng.choices(("US", "EP", "JP", "CN"), weights=(6, 3, 1, 1))[0]
    number = rng.randint(10_500_000, 12_500_000)
    label = f"US {number:,}" if jurisdiction == "US" else f"{jurisdiction} {number}"
    expiry = when.date() + dt.timedelta(days=rng.randint(12 * 365, 20 * 365))
    data = {"patent_number": label, "expiry_date": expiry.isoformat(), "jurisdiction": jurisdiction}
    title = f"{name} granted patent {label}"
    return _signal(title, rng.uniform(0, 20), data, source="patent office", url=None)


def _news(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    weights = (1, 2, 6, 12, 5, 3)
    sentiment, impact, template = rng.choices(NEWS_HEADLINES, weights=weights)[0]
    publisher, domain = rng.choice(list(PUBLISHERS.items()))
    slug = f"{when:%Y/%m/%d}/{rng.randint(10_000, 99_999)}"
    url = f"https://www.{domain}/{slug}"
    data = {
        "publisher": publisher,
        "sentiment": round(clamp(sentiment + rng.gauss(0, 0.1), -1, 1), 2),
        "url": url,
    }
    impact_value = impact + rng.gauss(0, 5)
    return _signal(template.format(name=name), impact_value, data, source=publisher, url=url)


_SIGNAL_BUILDERS: Final[dict[str, Callable[[random.Random, str, dt.datetime], dict[str, Any]]]] = {
    "sec_filing": _sec_filing,
    "fda_approval": _fda_approval,
    "clinical_trial": _clinical_trial,
    "insider_trading": _insider_trading,
    "partnership": _partnership,
    "financing": _financing,
    "executive_change": _executive_change,
    "patent": _patent,
    "news": _news,
}
