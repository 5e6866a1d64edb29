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

The modules behind this package are private; import from ``biotech_ma_db.sampledata``.
"""

from biotech_ma_db.sampledata._companies import acquirers, companies, drug_candidates
from biotech_ma_db.sampledata._loader import (
    LoadSummary,
    ProgressCallback,
    load_dataset,
    phase_totals,
)
from biotech_ma_db.sampledata._matches import acquirer_matches
from biotech_ma_db.sampledata._scores import MODEL_VERSION, weekly_scores
from biotech_ma_db.sampledata._signals import signals
from biotech_ma_db.sampledata._spec import ANCHOR_DATE, MINIMUMS, DatasetSpec
from biotech_ma_db.sampledata._vocabulary import ACQUIRERS, SIGNAL_TYPE_WEIGHTS, THERAPEUTIC_AREAS

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
