"""A deterministic synthetic dataset: companies, pipelines, signals, scores, acquirers.

The generators yield plain dicts whose keys are the models' column names, ready for the
repositories (``upsert_many``, ``bulk_ingest`` …).  The same :class:`DatasetSpec` (seed,
sizes and ``today``) always produces the same rows; each kind of row draws from its own
``random.Random`` stream, so changing one size does not reshuffle the others.  Dates are
relative to ``spec.today`` (default :data:`ANCHOR_DATE`), never to the wall clock::

    spec = DatasetSpec(companies=50, signals=2_000, weeks=8)
    rows = companies(spec)                       # 50 biotech targets
    for batch in signals(spec, company_ids):     # streamed, never all in memory
        ...

:func:`load_dataset` writes the whole dataset through a unit of work, and is what the
``biotech-ma-db demo`` and ``seed`` commands use::

    async with Database.from_url(url) as db:
        summary = await load_dataset(db, DatasetSpec(companies=100, signals=10_000))
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import select

from biotech_ma_db.models import Company, DrugCandidate

if TYPE_CHECKING:
    from biotech_ma_db.database import Database

__all__ = [
    "ACQUIRERS",
    "ANCHOR_DATE",
    "MINIMUMS",
    "MODEL_VERSION",
    "SIGNAL_TYPE_WEIGHTS",
    "THERAPEUTIC_AREAS",
    "DatasetSpec",
    "LoadSummary",
    "ProgressCallback",
    "acquirer_matches",
    "acquirers",
    "companies",
    "drug_candidates",
    "load_dataset",
    "phase_totals",
    "signals",
    "weekly_scores",
]

ANCHOR_DATE: Final = dt.date(2025, 6, 30)
"""The default ``today`` of a dataset: every date is counted back from it."""

MODEL_VERSION: Final = "synthetic-1.0"
"""``model_version`` written on every synthetic score."""

THERAPEUTIC_AREAS: Final[dict[str, float]] = {
    "oncology": 0.24,
    "immunology": 0.11,
    "neurology": 0.10,
    "rare_disease": 0.10,
    "metabolic": 0.07,
    "cardiology": 0.06,
    "infectious_disease": 0.07,
    "hematology": 0.06,
    "ophthalmology": 0.04,
    "dermatology": 0.04,
    "gastroenterology": 0.04,
    "respiratory": 0.04,
    "psychiatry": 0.03,
}
"""Therapeutic areas and how often a company works in each (weights sum to 1)."""

SIGNAL_TYPE_WEIGHTS: Final[dict[str, float]] = {
    "news": 0.30,
    "sec_filing": 0.25,
    "clinical_trial": 0.12,
    "insider_trading": 0.12,
    "financing": 0.06,
    "partnership": 0.05,
    "executive_change": 0.04,
    "patent": 0.04,
    "fda_approval": 0.02,
}
"""How often each signal type occurs."""


@dataclass(frozen=True, slots=True)
class _Acquirer:
    ticker: str
    name: str
    exchange: str
    country: str
    market_cap_bn: int
    revenue_bn: int
    areas: tuple[str, ...]
    founded: int


# Short codes keep the tables below readable; _area() expands them.
_AREA_CODES: Final = {
    "onc": "oncology", "imm": "immunology", "neu": "neurology", "rare": "rare_disease",
    "met": "metabolic", "card": "cardiology", "inf": "infectious_disease",
    "hem": "hematology", "oph": "ophthalmology", "derm": "dermatology",
    "gi": "gastroenterology", "resp": "respiratory", "psy": "psychiatry",
}  # fmt: skip

# fmt: off
_ACQUIRER_ROWS: Final = (
    # ticker, name, exchange, country, market cap $B, revenue $B, founded, areas
    ("PFE", "Pfizer Inc.", "NYSE", "US", 160, 58, 1849, "onc inf rare card imm"),
    ("MRK", "Merck & Co., Inc.", "NYSE", "US", 250, 64, 1891, "onc inf card imm"),
    ("ABBV", "AbbVie Inc.", "NYSE", "US", 320, 56, 2013, "imm onc neu oph psy"),
    ("JNJ", "Johnson & Johnson", "NYSE", "US", 380, 88, 1886, "onc imm neu psy card"),
    ("LLY", "Eli Lilly and Company", "NYSE", "US", 700, 45, 1876, "met neu onc imm"),
    ("BMY", "Bristol-Myers Squibb Company", "NYSE", "US", 110, 48, 1887, "onc hem imm card psy"),
    ("AZN", "AstraZeneca PLC", "NASDAQ", "GB", 220, 54, 1999, "onc card resp rare met"),
    ("NVS", "Novartis AG", "NYSE", "CH", 210, 50, 1996, "onc card imm neu hem"),
    ("RHHBY", "Roche Holding AG", "OTC", "CH", 250, 66, 1896, "onc neu oph imm hem"),
    ("GSK", "GSK plc", "NYSE", "GB", 80, 39, 2000, "inf resp onc imm"),
    ("SNY", "Sanofi", "NASDAQ", "FR", 130, 47, 1973, "imm rare hem neu inf"),
    ("AMGN", "Amgen Inc.", "NASDAQ", "US", 160, 33, 1980, "onc card imm met rare"),
    ("GILD", "Gilead Sciences, Inc.", "NASDAQ", "US", 120, 28, 1987, "inf onc imm gi"),
    ("REGN", "Regeneron Pharmaceuticals, Inc.", "NASDAQ", "US", 80, 14, 1988, "oph imm onc hem"),
    ("VRTX", "Vertex Pharmaceuticals Inc.", "NASDAQ", "US", 115, 11, 1989, "rare resp neu hem"),
    ("BIIB", "Biogen Inc.", "NASDAQ", "US", 22, 10, 1978, "neu rare psy oph"),
    ("TAK", "Takeda Pharmaceutical Co., Ltd.", "NYSE", "JP", 45, 30, 1781, "gi rare onc neu hem"),
    ("NVO", "Novo Nordisk A/S", "NYSE", "DK", 400, 40, 1923, "met card hem rare"),
    ("BAYRY", "Bayer AG", "OTC", "DE", 30, 50, 1863, "card onc oph hem"),
    ("ALNY", "Alnylam Pharmaceuticals, Inc.", "NASDAQ", "US", 35, 2, 2002, "rare card neu met"),
    ("CSLLY", "CSL Limited", "OTC", "AU", 90, 15, 1916, "hem imm resp rare"),
    ("DSNKY", "Daiichi Sankyo Company, Limited", "OTC", "JP", 60, 12, 2005, "onc card hem"),
    ("TEVA", "Teva Pharmaceutical Industries Ltd.", "NYSE", "IL", 20, 16, 1901, "neu psy resp imm"),
    ("BHC", "Bausch Health Companies Inc.", "NYSE", "CA", 3, 9, 1959, "derm oph gi"),
)
# fmt: on

_ACQUIRER_TABLE: Final = tuple(
    _Acquirer(
        ticker,
        name,
        exchange,
        country,
        cap,
        revenue,
        tuple(_AREA_CODES[c] for c in areas.split()),
        founded,
    )
    for ticker, name, exchange, country, cap, revenue, founded, areas in _ACQUIRER_ROWS
)

ACQUIRERS: Final[tuple[str, ...]] = tuple(a.ticker for a in _ACQUIRER_TABLE)
"""Tickers of the large pharmaceutical companies used as acquirers (stored as companies)."""

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

ProgressCallback = Callable[[str, int], None]
"""``progress(phase, rows_done)``: called by :func:`load_dataset` after each batch."""


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
            "matches_per_target": (1, len(_ACQUIRER_TABLE)),
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


def _rng(spec: DatasetSpec, stream: str) -> random.Random:
    # A string seed is hashed with SHA-512, so streams are stable across runs and
    # independent of PYTHONHASHSEED.
    return random.Random(f"{spec.seed}:{stream}")  # noqa: S311 — synthetic data, not secrets


def _weighted(rng: random.Random, weights: Mapping[str, float], k: int = 1) -> list[str]:
    """``k`` distinct keys of ``weights``, drawn without replacement by weight."""
    pool = dict(weights)
    chosen: list[str] = []
    for _ in range(min(k, len(pool))):
        pick = rng.choices(list(pool), weights=list(pool.values()))[0]
        chosen.append(pick)
        del pool[pick]
    return chosen


def _usd(value: float, quantum: int = 1_000) -> Decimal:
    """Whole dollars rounded to ``quantum`` (financial statements are not cent-exact)."""
    return Decimal(round(value / quantum) * quantum)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


# --- companies -------------------------------------------------------------------------

_NAME_STEMS = (
    "Acu", "Aer", "Alto", "Amp", "Arc", "Ardo", "Avid", "Axo", "Bio", "Cala", "Cel", "Cor",
    "Cyto", "Ely", "Exo", "Gala", "Gen", "Helio", "Immu", "Kara", "Kine", "Lumo", "Medi",
    "Nova", "Nyx", "Ocu", "Onco", "Orph", "Pyra", "Quil", "Reva", "Sera", "Sola", "Syn",
    "Tara", "Vira", "Xeno", "Zyme", "Vela", "Mira", "Nexo", "Pella", "Rhea", "Tessa",
)  # fmt: skip
_NAME_ENDINGS = (
    "gen", "vant", "cyte", "genix", "nica", "lion", "lix", "mics", "nova", "thera", "vax",
    "tix", "dyn", "rion", "bio", "zen", "mab", "gent", "lyte", "phora",
)  # fmt: skip
_NAME_SUFFIXES = (
    "Therapeutics", "Therapeutics", "Therapeutics", "Biosciences", "Pharmaceuticals",
    "Bio", "Biotherapeutics", "Medicines", "Genomics", "Biopharma", "Oncology", "Inc.",
)  # fmt: skip
_COUNTRIES = {
    "US": 0.70, "GB": 0.05, "CH": 0.04, "DE": 0.03, "FR": 0.03, "DK": 0.02, "NL": 0.02,
    "CA": 0.03, "IL": 0.02, "CN": 0.03, "JP": 0.01, "BE": 0.01, "AU": 0.01,
}  # fmt: skip
_MIN_CAP, _MAX_CAP = 50e6, 50e9


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
    rng = _rng(spec, "companies")
    taken_tickers = set(ACQUIRERS)
    taken_names: set[str] = set()
    taken_stems: set[str] = set()
    # Distinct stems read best; past 60 % of the stem space only full names stay distinct.
    distinct_stems = spec.companies <= 0.6 * len(_NAME_STEMS) * len(_NAME_ENDINGS)
    rows: list[dict[str, Any]] = []
    while len(rows) < spec.companies:
        stem = rng.choice(_NAME_STEMS) + rng.choice(_NAME_ENDINGS)
        name = f"{stem} {rng.choice(_NAME_SUFFIXES)}"
        if name in taken_names or (distinct_stems and stem in taken_stems):
            continue
        taken_names.add(name)
        taken_stems.add(stem)
        ticker = _ticker(rng, stem, taken_tickers)
        taken_tickers.add(ticker)
        rows.append(_company_row(rng, spec, ticker, name))
    return rows


def _company_row(rng: random.Random, spec: DatasetSpec, ticker: str, name: str) -> dict[str, Any]:
    market_cap = 0.0
    while not _MIN_CAP <= market_cap <= _MAX_CAP:
        market_cap = math.exp(rng.gauss(math.log(900e6), 1.35))
    commercial = market_cap > 3e9 and rng.random() < 0.55
    cash = market_cap * _clamp(rng.lognormvariate(math.log(0.25), 0.6), 0.03, 0.9)
    constrained = rng.random() < 0.25
    runway_months = rng.uniform(3, 11.5) if constrained else rng.uniform(12.5, 72)
    quarterly_burn = cash / runway_months * 3
    revenue = market_cap * rng.uniform(0.05, 0.25) if commercial else 0.0
    if not commercial and rng.random() < 0.15:
        revenue = rng.uniform(1e6, 40e6)  # collaboration and royalty income
    debt = 0.0 if rng.random() < 0.45 else cash * rng.uniform(0.05, 0.6)
    areas = _weighted(rng, THERAPEUTIC_AREAS, k=rng.choices((1, 2, 3), weights=(5, 4, 2))[0])
    return {
        "ticker": ticker,
        "name": name,
        "exchange": "NASDAQ" if rng.random() < 0.86 else "NYSE",
        "market_cap_usd": _usd(market_cap),
        "cash_position_usd": _usd(cash),
        "quarterly_burn_usd": _usd(quarterly_burn),
        "total_debt_usd": _usd(debt),
        "revenue_ttm_usd": _usd(revenue),
        "employee_count": int(_clamp(market_cap / rng.uniform(2e6, 6e6), 8, 12_000)),
        "headquarters_country": _weighted(rng, _COUNTRIES)[0],
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
            "market_cap_usd": _usd(a.market_cap_bn * 1e9, 1_000_000),
            "cash_position_usd": _usd(a.market_cap_bn * 1e9 * 0.06, 1_000_000),
            "quarterly_burn_usd": Decimal(0),
            "total_debt_usd": _usd(a.market_cap_bn * 1e9 * 0.15, 1_000_000),
            "revenue_ttm_usd": _usd(a.revenue_bn * 1e9, 1_000_000),
            "employee_count": int(a.revenue_bn * 1_800),
            "headquarters_country": a.country,
            "founded_year": a.founded,
            "therapeutic_areas": list(a.areas),
        }
        for a in _ACQUIRER_TABLE
    ]


# --- drug candidates -------------------------------------------------------------------

_PHASES = {
    "preclinical": 0.24,
    "phase_1": 0.26,
    "phase_2": 0.25,
    "phase_3": 0.14,
    "nda_bla_submitted": 0.04,
    "approved": 0.07,
}
_PEAK_SALES_MEDIAN = {
    "preclinical": 250e6,
    "phase_1": 350e6,
    "phase_2": 500e6,
    "phase_3": 800e6,
    "nda_bla_submitted": 1_000e6,
    "approved": 1_200e6,
}
_STATUS = {
    "preclinical": "IND-enabling studies",
    "phase_1": "IND active",
    "phase_2": "IND active",
    "phase_3": "IND active",
    "nda_bla_submitted": "under FDA review",
    "approved": "marketed",
}
# fmt: off
_INDICATIONS: Final[dict[str, tuple[str, ...]]] = {
    "oncology": (
        "non-small cell lung cancer", "acute myeloid leukemia", "HER2+ breast cancer",
        "metastatic colorectal cancer", "multiple myeloma", "glioblastoma", "pancreatic cancer",
    ),
    "immunology": (
        "rheumatoid arthritis", "ulcerative colitis", "atopic dermatitis",
        "systemic lupus erythematosus", "psoriasis",
    ),
    "neurology": (
        "Alzheimer's disease", "Parkinson's disease", "amyotrophic lateral sclerosis",
        "migraine", "epilepsy",
    ),
    "rare_disease": (
        "Duchenne muscular dystrophy", "spinal muscular atrophy", "Fabry disease",
        "Huntington's disease", "phenylketonuria",
    ),
    "metabolic": ("obesity", "type 2 diabetes", "NASH/MASH", "hypertriglyceridemia"),
    "cardiology": (
        "heart failure", "hypertrophic cardiomyopathy", "pulmonary arterial hypertension",
        "hypercholesterolemia",
    ),
    "infectious_disease": ("RSV", "chronic hepatitis B", "HIV", "complicated UTI", "COVID-19"),
    "hematology": ("sickle cell disease", "beta thalassemia", "hemophilia A", "myelofibrosis"),
    "ophthalmology": ("wet AMD", "geographic atrophy", "diabetic macular edema", "glaucoma"),
    "dermatology": (
        "hidradenitis suppurativa", "vitiligo", "alopecia areata", "chronic spontaneous urticaria",
    ),
    "gastroenterology": ("Crohn's disease", "eosinophilic esophagitis", "celiac disease"),
    "respiratory": ("COPD", "idiopathic pulmonary fibrosis", "severe asthma", "cystic fibrosis"),
    "psychiatry": (
        "major depressive disorder", "schizophrenia", "PTSD", "generalized anxiety disorder",
    ),
}
_MECHANISMS: Final[dict[str, tuple[str, ...]]] = {
    "oncology": (
        "KRAS G12C inhibitor", "antibody-drug conjugate", "bispecific T-cell engager",
        "CAR-T cell therapy", "PD-1 inhibitor", "menin inhibitor",
    ),
    "immunology": (
        "TL1A antibody", "TYK2 inhibitor", "IL-23 antibody", "FcRn antagonist", "JAK1 inhibitor",
    ),
    "neurology": (
        "anti-amyloid antibody", "LRRK2 inhibitor", "antisense oligonucleotide",
        "CGRP antagonist",
    ),
    "rare_disease": (
        "AAV gene therapy", "exon-skipping oligonucleotide", "enzyme replacement therapy", "siRNA",
    ),
    "metabolic": (
        "GLP-1 receptor agonist", "GLP-1/GIP dual agonist", "amylin analogue", "FGF21 analogue",
    ),
    "cardiology": ("myosin inhibitor", "PCSK9 siRNA", "Lp(a) antisense", "sGC stimulator"),
    "infectious_disease": (
        "monoclonal antibody", "capsid inhibitor", "mRNA vaccine", "beta-lactamase inhibitor",
    ),
    "hematology": (
        "gene editing (CRISPR)", "HbF inducer", "factor VIII gene therapy", "JAK2 inhibitor",
    ),
    "ophthalmology": ("complement C3 inhibitor", "VEGF/Ang-2 bispecific", "gene therapy"),
    "dermatology": ("IL-17A/F antibody", "JAK inhibitor (topical)", "BTK inhibitor"),
    "gastroenterology": ("alpha4beta7 integrin antibody", "S1P modulator", "IL-13 antibody"),
    "respiratory": ("CFTR modulator", "TSLP antibody", "PDE4B inhibitor"),
    "psychiatry": ("psilocybin analogue", "muscarinic agonist", "NMDA antagonist"),
}
# fmt: on
_DESIGNATIONS = ("orphan", "fast_track", "breakthrough", "priority_review", "rmat")


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
    rng = _rng(spec, "drug_candidates")
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
    phase = _weighted(rng, _PHASES)[0]
    designations = [d for d in _DESIGNATIONS if rng.random() < 0.12]
    if area == "rare_disease" and "orphan" not in designations:
        designations.insert(0, "orphan")
    peak = _clamp(rng.lognormvariate(math.log(_PEAK_SALES_MEDIAN[phase]), 0.8), 20e6, 8e9)
    return {
        "company_id": company_id,
        "drug_name": drug_name,
        "phase": phase,
        "indication": rng.choice(_INDICATIONS[area]),
        "mechanism_of_action": rng.choice(_MECHANISMS[area]),
        "therapeutic_area": area,
        "patent_expiry_date": spec.today + dt.timedelta(days=rng.randint(3 * 365, 20 * 365)),
        "regulatory_designations": designations,
        "regulatory_status": "clinical hold" if rng.random() < 0.02 else _STATUS[phase],
        "peak_sales_estimate_usd": _usd(peak, 1_000_000),
    }


# --- signals ---------------------------------------------------------------------------

_FIRST_NAMES = (
    "Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "James",
    "Kavya", "Liam", "Maria", "Nikhil", "Olivia", "Pablo", "Quinn", "Rachel", "Sven", "Tara",
)  # fmt: skip
_LAST_NAMES = (
    "Anderson", "Baker", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
    "Johansson", "Kumar", "Lopez", "Muller", "Nakamura", "O'Brien", "Patel", "Rossi",
    "Schmidt", "Tanaka", "Weber",
)  # fmt: skip
_PUBLISHERS = {
    "Endpoints News": "endpts.com",
    "Fierce Biotech": "fiercebiotech.com",
    "STAT News": "statnews.com",
    "BioPharma Dive": "biopharmadive.com",
    "Reuters": "reuters.com",
    "Bloomberg": "bloomberg.com",
}
_NEWS_HEADLINES = (
    (0.85, 70, "{name} explores strategic alternatives, including a sale"),
    (0.6, 45, "{name} draws takeover interest from big pharma, sources say"),
    (0.4, 20, "Analysts raise price target on {name} after pipeline update"),
    (0.1, 5, "{name} presents new data at medical conference"),
    (-0.3, -10, "{name} shares slide after competitor readout"),
    (-0.6, -30, "{name} cuts workforce to extend cash runway"),
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
    rng = _rng(spec, "signals")
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
    impact = _clamp(impact, -100, 100)
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
    return f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"


_FILINGS = (
    ("8-K", 0.30, (-15, 25)),
    ("10-Q", 0.25, (-5, 5)),
    ("10-K", 0.08, (-5, 5)),
    ("4", 0.15, (-5, 10)),
    ("S-3", 0.07, (-25, -5)),
    ("13G", 0.06, (0, 20)),
    ("13D", 0.05, (35, 80)),
    ("DEF 14A", 0.03, (-5, 10)),
    ("SC TO-T", 0.01, (85, 100)),
)


def _sec_filing(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    form, _, (low, high) = rng.choices(_FILINGS, weights=[f[1] for f in _FILINGS])[0]
    cik = rng.randint(1_000_000, 1_999_999)
    accession = f"{cik:010d}-{when.year % 100:02d}-{rng.randint(1, 999_999):06d}"
    url = f"https://www.sec.gov/Archives/edgar/data/{cik}/{accession.replace('-', '')}.htm"
    data = {"filing_type": form, "url": url, "accession_number": accession}
    return _signal(
        f"{name} files Form {form}", rng.uniform(low, high), data, source="SEC EDGAR", url=url
    )


_FDA_DECISIONS = (
    ("approved", 0.45, (30, 75)),
    ("accepted_for_review", 0.25, (10, 30)),
    ("priority_review_granted", 0.10, (15, 40)),
    ("crl", 0.15, (-85, -40)),
    ("refuse_to_file", 0.05, (-60, -25)),
)


def _fda_approval(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    weights = [d[1] for d in _FDA_DECISIONS]
    decision, _, (low, high) = rng.choices(_FDA_DECISIONS, weights=weights)[0]
    area = _weighted(rng, THERAPEUTIC_AREAS)[0]
    drug = f"{name[:3].upper()}-{rng.randint(100, 999)}"
    kind = rng.choice(("NDA", "BLA"))
    data = {
        "decision": decision,
        "drug_name": drug,
        "application_number": f"{kind} {rng.randint(200_000, 799_999)}",
        "indication": rng.choice(_INDICATIONS[area]),
    }
    title = f"FDA {decision.replace('_', ' ')}: {name}'s {drug}"
    return _signal(
        title, rng.uniform(low, high), data, source="FDA", url="https://www.fda.gov/drugs"
    )


_TRIAL_EVENTS = (
    ("initiated", None, (0, 15)),
    ("enrolling", None, (0, 10)),
    ("completed", True, (25, 65)),
    ("completed", False, (-75, -30)),
    ("terminated", None, (-50, -20)),
    ("clinical_hold", None, (-60, -25)),
)


def _clinical_trial(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    status, met, (low_int, high_int) = rng.choice(_TRIAL_EVENTS)
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


_DEALS = (
    "licensing",
    "co_development",
    "collaboration",
    "option_to_acquire",
    "co_commercialization",
)


def _partnership(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    partner = rng.choice(_ACQUIRER_TABLE)
    deal = rng.choice(_DEALS)
    value = _usd(rng.lognormvariate(math.log(600e6), 0.9), 1_000_000)
    upfront = _usd(float(value) * rng.uniform(0.05, 0.25), 1_000_000)
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


_FINANCINGS = (
    "follow_on_offering",
    "pipe",
    "atm_program",
    "convertible_notes",
    "term_loan",
    "royalty_financing",
)
_INVESTORS = (
    "RA Capital", "Perceptive Advisors", "Baker Bros.", "Deerfield", "OrbiMed", "Fairmount",
    "Venrock", "Jefferies", "Goldman Sachs", "J.P. Morgan",
)  # fmt: skip


def _financing(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    kind = rng.choice(_FINANCINGS)
    amount = _usd(rng.lognormvariate(math.log(120e6), 0.8), 100_000)
    data = {
        "financing_type": kind,
        "amount_usd": int(amount),
        "lead_investor": rng.choice(_INVESTORS),
    }
    title = f"{name} raises ${amount / 1_000_000:,.1f}M ({kind.replace('_', ' ')})"
    return _signal(title, rng.uniform(-35, 10), data, source="press release", url=None)


_POSITIONS = ("CEO", "CFO", "CMO", "CSO", "Chief Business Officer", "General Counsel")


def _executive_change(rng: random.Random, name: str, when: dt.datetime) -> dict[str, Any]:
    position = rng.choice(_POSITIONS)
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
    sentiment, impact, template = rng.choices(_NEWS_HEADLINES, weights=weights)[0]
    publisher, domain = rng.choice(list(_PUBLISHERS.items()))
    slug = f"{when:%Y/%m/%d}/{rng.randint(10_000, 99_999)}"
    url = f"https://www.{domain}/{slug}"
    data = {
        "publisher": publisher,
        "sentiment": round(_clamp(sentiment + rng.gauss(0, 0.1), -1, 1), 2),
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


# --- scores ----------------------------------------------------------------------------

_AREA_DEMAND = {
    "oncology": 78, "immunology": 74, "neurology": 66, "rare_disease": 76, "metabolic": 88,
    "cardiology": 58, "infectious_disease": 42, "hematology": 68, "ophthalmology": 60,
    "dermatology": 52, "gastroenterology": 56, "respiratory": 50, "psychiatry": 62,
}  # fmt: skip
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
        financial += _clamp(15 * (1 - math.log10(market_cap / 50e6) / 3), 0, 15)
        base = {
            "pipeline": _clamp(22 + 16 * late + 7 * mid + rng.uniform(-10, 10), 5, 95),
            "financial": _clamp(financial + rng.uniform(-8, 8), 5, 95),
            "strategic": _clamp(
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
    rng = _rng(spec, "scores")
    profiles = _profiles(rng, company_rows, company_ids, drugs)
    history: list[list[tuple[dt.date, Decimal]]] = [[] for _ in company_ids]
    for score_date in spec.score_dates:
        batch = []
        for index, (profile, company_id) in enumerate(zip(profiles, company_ids, strict=True)):
            for name, base in profile.base.items():
                drift = base + 0.8 * (profile.state[name] - base) + rng.gauss(0, 3.5)
                profile.state[name] = _clamp(drift, 0, 100)
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


# --- acquirer matches ------------------------------------------------------------------

_RATIONALES = (
    "adds a late-stage {area} asset to {acquirer}'s franchise ahead of its patent cliff",
    "fills a gap in {acquirer}'s {area} pipeline with a differentiated mechanism",
    "bolt-on for {acquirer}'s {area} commercial infrastructure",
    "platform technology extends {acquirer}'s reach in {area}",
)


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
    rng = _rng(spec, "acquirer_matches")
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
                f"{_clamp(35 + 18 * len(overlap) + firepower + rng.uniform(-12, 12), 0, 100):.2f}"
            )
            scored.append((fit, buyer_id, buyer, overlap))
        scored.sort(key=lambda item: (-item[0], item[1]))
        matches = []
        for fit, buyer_id, buyer, overlap in scored[: spec.matches_per_target]:
            premium = rng.uniform(25, 95)
            low = market_cap * (1 + (premium - rng.uniform(5, 15)) / 100)
            high = market_cap * (1 + (premium + rng.uniform(5, 25)) / 100)
            area = (overlap or sorted(target_areas) or ["specialty"])[0].replace("_", " ")
            rationale = rng.choice(_RATIONALES).format(area=area, acquirer=buyer["name"])
            matches.append(
                {
                    "acquirer_company_id": buyer_id,
                    "match_date": spec.today,
                    "strategic_fit_score": fit,
                    "synergy_rationale": rationale[0].upper() + rationale[1:],
                    "therapeutic_overlap": overlap,
                    "estimated_value_low_usd": _usd(low, 1_000_000),
                    "estimated_value_high_usd": _usd(high, 1_000_000),
                    "estimated_premium_pct": Decimal(f"{premium:.2f}"),
                }
            )
        yield target_id, matches


def phase_totals(spec: DatasetSpec) -> dict[str, int]:
    """Rows each phase of :func:`load_dataset` writes, in order (for progress bars)."""
    return {
        "companies": spec.companies + len(_ACQUIRER_TABLE),
        "drug_candidates": spec.drug_candidates,
        "signals": spec.signals,
        "scores": spec.weeks * spec.companies,
        "acquirer_matches": min(spec.match_targets, spec.companies) * spec.matches_per_target,
        "percentile_ranks": spec.weeks,
    }


# --- loading ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """Row counts written by :func:`load_dataset`."""

    companies: int
    acquirers: int
    drug_candidates: int
    signals: int
    scores: int
    acquirer_matches: int


_DRUG_BATCH = 400


async def load_dataset(
    db: Database,
    spec: DatasetSpec | None = None,
    *,
    progress: ProgressCallback | None = None,
    actor: str = "biotech-ma-db sampledata",
) -> LoadSummary:
    """Write the whole dataset into ``db`` and rank every score date.

    Companies (targets and acquirers), drug candidates, signals (``COPY`` through
    ``SignalRepository.bulk_ingest``), weekly scores (``ScoreRepository.upsert_many``) and
    acquirer matches of the ``spec.match_targets`` best-scored targets are written in one
    unit of work and committed together, so an interrupted load leaves nothing behind.
    Percentile ranks are then computed per score date in a second transaction.

    Args:
        db: A migrated database; existing companies with the same tickers are updated.
        spec: What to generate (the defaults when omitted).
        progress: Called as ``progress(phase, rows)`` after each batch, with the phases
            of :func:`phase_totals`.
        actor: The audit actor of the writes.

    Returns:
        How many rows of each kind were written.
    """
    spec = spec or DatasetSpec()
    report = progress or (lambda _phase, _rows: None)
    reason = f"synthetic dataset (seed {spec.seed}, today {spec.today})"
    target_rows = companies(spec)
    buyer_rows = acquirers()
    async with db.unit_of_work(actor=actor, reason=reason) as uow:
        await uow.companies.upsert_many([*target_rows, *buyer_rows])
        report("companies", len(target_rows) + len(buyer_rows))
        id_by_ticker = dict((await uow.session.execute(select(Company.ticker, Company.id))).all())
        target_ids = [id_by_ticker[row["ticker"]] for row in target_rows]
        buyer_ids = [id_by_ticker[row["ticker"]] for row in buyer_rows]

        drugs = drug_candidates(spec, target_rows, target_ids)
        for start in range(0, len(drugs), _DRUG_BATCH):
            batch = drugs[start : start + _DRUG_BATCH]
            await uow.drug_candidates.add_many(DrugCandidate(**row) for row in batch)
            report("drug_candidates", len(batch))
        uow.session.expunge_all()  # the ORM objects are not needed again: free them

        signal_count = 0
        names = [row["name"] for row in target_rows]
        for batch in signals(spec, target_ids, names):
            signal_count += await uow.signals.bulk_ingest(batch)
            report("signals", len(batch))

        score_count = 0
        latest: list[dict[str, Any]] = []
        for week in weekly_scores(spec, target_rows, target_ids, drugs):
            score_count += await uow.scores.upsert_many(week)
            latest = week
            report("scores", len(week))

        row_by_id = dict(zip(target_ids, target_rows, strict=True))
        best = sorted(latest, key=lambda s: (-s["total_score"], s["company_id"]))
        targets = [(s["company_id"], row_by_id[s["company_id"]]) for s in best]
        buyers = list(zip(buyer_ids, buyer_rows, strict=True))
        match_count = 0
        for target_id, matches in acquirer_matches(spec, targets[: spec.match_targets], buyers):
            await uow.acquirer_matches.replace_matches_for_target(target_id, matches)
            match_count += len(matches)
            report("acquirer_matches", len(matches))
        uow.session.expunge_all()
        await uow.commit()

    async with db.unit_of_work(actor=actor, reason=reason) as uow:
        for score_date in spec.score_dates:
            await uow.scores.update_percentile_ranks(score_date)
            report("percentile_ranks", 1)
        await uow.commit()

    return LoadSummary(
        companies=len(target_rows),
        acquirers=len(buyer_rows),
        drug_candidates=len(drugs),
        signals=signal_count,
        scores=score_count,
        acquirer_matches=match_count,
    )
