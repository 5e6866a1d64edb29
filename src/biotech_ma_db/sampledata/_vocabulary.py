"""The data tables the generators draw from: words, places, and how often each occurs.

Weights are relative frequencies for ``random.choices``; the ``(low, high)`` pairs are the
range an event's M&A impact is drawn from.  Order matters: the generators draw by position,
so reordering a table changes every dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

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


# --- acquirers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Acquirer:
    """One large pharmaceutical company of :data:`ACQUIRER_TABLE`."""

    ticker: str
    name: str
    exchange: str
    country: str
    market_cap_bn: int
    revenue_bn: int
    areas: tuple[str, ...]
    founded: int


# Short codes keep the table below readable; ACQUIRER_TABLE expands them.
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

ACQUIRER_TABLE: Final = tuple(
    Acquirer(
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
"""The large pharmaceutical acquirers, in the order they are written and drawn."""

ACQUIRERS: Final[tuple[str, ...]] = tuple(a.ticker for a in ACQUIRER_TABLE)
"""Tickers of the large pharmaceutical companies used as acquirers (stored as companies)."""


# --- companies -------------------------------------------------------------------------

NAME_STEMS = (
    "Acu", "Aer", "Alto", "Amp", "Arc", "Ardo", "Avid", "Axo", "Bio", "Cala", "Cel", "Cor",
    "Cyto", "Ely", "Exo", "Gala", "Gen", "Helio", "Immu", "Kara", "Kine", "Lumo", "Medi",
    "Nova", "Nyx", "Ocu", "Onco", "Orph", "Pyra", "Quil", "Reva", "Sera", "Sola", "Syn",
    "Tara", "Vira", "Xeno", "Zyme", "Vela", "Mira", "Nexo", "Pella", "Rhea", "Tessa",
)  # fmt: skip
NAME_ENDINGS = (
    "gen", "vant", "cyte", "genix", "nica", "lion", "lix", "mics", "nova", "thera", "vax",
    "tix", "dyn", "rion", "bio", "zen", "mab", "gent", "lyte", "phora",
)  # fmt: skip
NAME_SUFFIXES = (
    "Therapeutics", "Therapeutics", "Therapeutics", "Biosciences", "Pharmaceuticals",
    "Bio", "Biotherapeutics", "Medicines", "Genomics", "Biopharma", "Oncology", "Inc.",
)  # fmt: skip
COUNTRIES = {
    "US": 0.70, "GB": 0.05, "CH": 0.04, "DE": 0.03, "FR": 0.03, "DK": 0.02, "NL": 0.02,
    "CA": 0.03, "IL": 0.02, "CN": 0.03, "JP": 0.01, "BE": 0.01, "AU": 0.01,
}  # fmt: skip


# --- drug candidates -------------------------------------------------------------------

PHASES = {
    "preclinical": 0.24,
    "phase_1": 0.26,
    "phase_2": 0.25,
    "phase_3": 0.14,
    "nda_bla_submitted": 0.04,
    "approved": 0.07,
}
PEAK_SALES_MEDIAN = {
    "preclinical": 250e6,
    "phase_1": 350e6,
    "phase_2": 500e6,
    "phase_3": 800e6,
    "nda_bla_submitted": 1_000e6,
    "approved": 1_200e6,
}
STATUS = {
    "preclinical": "IND-enabling studies",
    "phase_1": "IND active",
    "phase_2": "IND active",
    "phase_3": "IND active",
    "nda_bla_submitted": "under FDA review",
    "approved": "marketed",
}
# fmt: off
INDICATIONS: Final[dict[str, tuple[str, ...]]] = {
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
MECHANISMS: Final[dict[str, tuple[str, ...]]] = {
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
DESIGNATIONS = ("orphan", "fast_track", "breakthrough", "priority_review", "rmat")


# --- signals ---------------------------------------------------------------------------

FIRST_NAMES = (
    "Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "James",
    "Kavya", "Liam", "Maria", "Nikhil", "Olivia", "Pablo", "Quinn", "Rachel", "Sven", "Tara",
)  # fmt: skip
LAST_NAMES = (
    "Anderson", "Baker", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
    "Johansson", "Kumar", "Lopez", "Muller", "Nakamura", "O'Brien", "Patel", "Rossi",
    "Schmidt", "Tanaka", "Weber",
)  # fmt: skip
PUBLISHERS = {
    "Endpoints News": "endpts.com",
    "Fierce Biotech": "fiercebiotech.com",
    "STAT News": "statnews.com",
    "BioPharma Dive": "biopharmadive.com",
    "Reuters": "reuters.com",
    "Bloomberg": "bloomberg.com",
}
# sentiment, M&A impact, headline
NEWS_HEADLINES = (
    (0.85, 70, "{name} explores strategic alternatives, including a sale"),
    (0.6, 45, "{name} draws takeover interest from big pharma, sources say"),
    (0.4, 20, "Analysts raise price target on {name} after pipeline update"),
    (0.1, 5, "{name} presents new data at medical conference"),
    (-0.3, -10, "{name} shares slide after competitor readout"),
    (-0.6, -30, "{name} cuts workforce to extend cash runway"),
)
# form, weight, impact range
FILINGS = (
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
# decision, weight, impact range
FDA_DECISIONS = (
    ("approved", 0.45, (30, 75)),
    ("accepted_for_review", 0.25, (10, 30)),
    ("priority_review_granted", 0.10, (15, 40)),
    ("crl", 0.15, (-85, -40)),
    ("refuse_to_file", 0.05, (-60, -25)),
)
# status, primary endpoint met (None: no readout), impact range
TRIAL_EVENTS = (
    ("initiated", None, (0, 15)),
    ("enrolling", None, (0, 10)),
    ("completed", True, (25, 65)),
    ("completed", False, (-75, -30)),
    ("terminated", None, (-50, -20)),
    ("clinical_hold", None, (-60, -25)),
)
DEALS = (
    "licensing",
    "co_development",
    "collaboration",
    "option_to_acquire",
    "co_commercialization",
)
FINANCINGS = (
    "follow_on_offering",
    "pipe",
    "atm_program",
    "convertible_notes",
    "term_loan",
    "royalty_financing",
)
INVESTORS = (
    "RA Capital", "Perceptive Advisors", "Baker Bros.", "Deerfield", "OrbiMed", "Fairmount",
    "Venrock", "Jefferies", "Goldman Sachs", "J.P. Morgan",
)  # fmt: skip
POSITIONS = ("CEO", "CFO", "CMO", "CSO", "Chief Business Officer", "General Counsel")


# --- acquirer matches ------------------------------------------------------------------

RATIONALES = (
    "adds a late-stage {area} asset to {acquirer}'s franchise ahead of its patent cliff",
    "fills a gap in {acquirer}'s {area} pipeline with a differentiated mechanism",
    "bolt-on for {acquirer}'s {area} commercial infrastructure",
    "platform technology extends {acquirer}'s reach in {area}",
)
