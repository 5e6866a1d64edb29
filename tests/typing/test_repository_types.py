"""Static types of the repositories and the unit of work (checked by ``mypy --strict``).

Each ``assert_type`` is a claim mypy verifies; at run time it is a no-op, so this module
also runs as an ordinary test against the ``db_session`` and ``uow`` fixtures.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import assert_type

from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db import (
    AcquirerMatch,
    Alert,
    AuditLogEntry,
    Client,
    Company,
    CompanyRepository,
    CompanyRow,
    Database,
    DevelopmentPhase,
    DrugCandidate,
    MAScore,
    OffsetPage,
    Page,
    Report,
    ScoreRepository,
    Signal,
    SignalRepository,
    UnitOfWork,
    Webhook,
    WebhookDelivery,
)


class TestRepositoryTypes:
    """Repository methods return the model type, not ``Any``."""

    async def test_generic_core(self, db_session: AsyncSession) -> None:
        companies = CompanyRepository(db_session)
        assert_type(await companies.get(1), Company | None)
        assert_type(await companies.get_many([1, 2]), list[Company])
        assert_type(await companies.find_one(ticker="NONE"), Company | None)
        assert_type(await companies.list(limit=1), list[Company])
        assert_type(await companies.count(), int)
        assert_type(await companies.exists(), bool)
        assert_type(await companies.page(limit=1), Page[Company])
        assert_type(await companies.page_with_total(limit=1), OffsetPage[Company])
        assert_type(await companies.get_by_ticker("NONE"), Company | None)
        assert_type(await companies.search(query="x"), list[Company])
        rows = await companies.search_rows(query="x")
        assert_type(rows, list[CompanyRow])
        assert_type([row.market_cap_usd for row in rows], list[Decimal | None])
        created = await companies.create(ticker="TYPE", name="Typed")
        assert_type(created, Company)
        assert_type(await companies.update(created.id, name="Re-typed"), Company)
        assert_type(await companies.get_or_raise(created.id), Company)
        assert_type(await companies.upsert_many([]), int)

    async def test_domain_methods(self, db_session: AsyncSession) -> None:
        signals = SignalRepository(db_session)
        scores = ScoreRepository(db_session)
        assert_type(await signals.get_by_company(1), list[Signal])
        assert_type(await signals.get_count_by_type(), dict[str, int])
        assert_type(await signals.bulk_ingest([]), int)
        assert_type(await scores.get_latest_by_company(1), MAScore | None)
        assert_type(await scores.get_history(1, days=7), list[MAScore])
        assert_type(
            await scores.get_top_scores(limit=1, score_date=dt.date(2000, 1, 1)), list[MAScore]
        )
        assert_type(await scores.update_percentile_ranks(), int)


class TestUnitOfWorkTypes:
    """``uow.<aggregate>`` attributes are typed repositories."""

    async def test_attributes(self, uow: UnitOfWork) -> None:
        assert_type(await uow.companies.get(1), Company | None)
        assert_type(await uow.drug_candidates.get_by_company(1), list[DrugCandidate])
        assert_type(await uow.drug_candidates.pipeline_summary(1), dict[DevelopmentPhase, int])
        assert_type(await uow.signals.get(1), Signal | None)
        assert_type(await uow.scores.get(1), MAScore | None)
        assert_type(await uow.acquirer_matches.get_top_matches_for_target(1), list[AcquirerMatch])
        assert_type(await uow.reports.get_by_type("weekly"), list[Report])
        assert_type(await uow.alerts.find_triggered(company_id=1, signal_type="news"), list[Alert])
        assert_type(await uow.webhooks.claim_due_deliveries(1), list[WebhookDelivery])
        assert_type(await uow.webhooks.list_for_client(1), list[Webhook])
        assert_type(await uow.clients.authenticate("bmap_live_x"), Client | None)
        assert_type(await uow.audit_log.for_row("companies", 1), list[AuditLogEntry])

    async def test_database_factory(self, database: Database) -> None:
        assert_type(database.unit_of_work(read_only=True), UnitOfWork)
