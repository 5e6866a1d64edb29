"""Loading: write a whole dataset through one unit of work, reporting progress per batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from biotech_ma_db.models import Company, DrugCandidate
from biotech_ma_db.sampledata._companies import acquirers, companies, drug_candidates
from biotech_ma_db.sampledata._matches import acquirer_matches
from biotech_ma_db.sampledata._scores import weekly_scores
from biotech_ma_db.sampledata._signals import signals
from biotech_ma_db.sampledata._spec import DatasetSpec
from biotech_ma_db.sampledata._vocabulary import ACQUIRER_TABLE

if TYPE_CHECKING:
    from biotech_ma_db.database import Database

ProgressCallback = Callable[[str, int], None]
"""``progress(phase, rows_done)``: called by :func:`load_dataset` after each batch."""


def phase_totals(spec: DatasetSpec) -> dict[str, int]:
    """Rows each phase of :func:`load_dataset` writes, in order (for progress bars)."""
    return {
        "companies": spec.companies + len(ACQUIRER_TABLE),
        "drug_candidates": spec.drug_candidates,
        "signals": spec.signals,
        "scores": spec.weeks * spec.companies,
        "acquirer_matches": min(spec.match_targets, spec.companies) * spec.matches_per_target,
        "percentile_ranks": spec.weeks,
    }


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
