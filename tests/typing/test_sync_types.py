"""Static types of the synchronous facade (checked by ``mypy --strict tests/typing``).

Each ``assert_type`` is a claim mypy verifies: the blocking calls return the awaited type
of the async method, not ``Any`` and not a coroutine.  Each ``# type: ignore[...]`` is one
too: with ``warn_unused_ignores`` (strict), mypy fails if the call it marks were accepted,
so wrong arguments are caught.  At run time the module is an ordinary test on a fresh
database.
"""

from __future__ import annotations

import datetime as dt
from typing import assert_type

import pytest

from biotech_ma_db import (
    AcquirerMatch,
    Alert,
    Client,
    Company,
    Database,
    HealthReport,
    MAScore,
    OffsetPage,
    Page,
    PoolStatus,
    Report,
    Signal,
    UnitOfWork,
    ValidationError,
    Webhook,
    WebhookDelivery,
)
from biotech_ma_db.sync import (
    SyncCompanyRepository,
    SyncDatabase,
    SyncSignalRepository,
    SyncUnitOfWork,
)


async def _count(uow: UnitOfWork) -> int:
    return await uow.companies.count()


def test_sync_facade_types(fresh_database: Database) -> None:
    """The facade's calls carry the async API's types."""
    url = fresh_database.engine.url.render_as_string(hide_password=False)
    with SyncDatabase.from_url(url, pool_size=1, max_overflow=0) as db:
        assert_type(db, SyncDatabase)
        assert_type(db.health(), HealthReport)
        assert_type(db.pool_status(), PoolStatus)
        assert_type(db.run(db.database.health), HealthReport)
        with db.unit_of_work(actor="typing") as uow:
            assert_type(uow, SyncUnitOfWork)
            assert_type(uow.companies, SyncCompanyRepository)
            assert_type(uow.signals, SyncSignalRepository)
            company = uow.companies.create(ticker="TYPE", name="Typed")
            assert_type(company, Company)
            assert_type(uow.companies.get_by_ticker("TYPE"), Company | None)
            assert_type(uow.companies.get(company.id), Company | None)
            assert_type(uow.companies.get_or_raise(company.id), Company)
            assert_type(uow.companies.search(query="Typed"), list[Company])
            assert_type(uow.companies.update(company.id, name="Re-typed"), Company)
            assert_type(uow.companies.page(limit=1), Page[Company])
            assert_type(uow.companies.page_with_total(limit=1), OffsetPage[Company])
            assert_type(uow.companies.count(), int)
            signal = uow.signals.create(
                company_id=company.id,
                signal_type="news",
                event_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
                title="Typed news",
            )
            assert_type(signal, Signal)
            assert_type(uow.signals.get_by_company(company.id), list[Signal])
            assert_type(uow.signals.get_count_by_type(), dict[str, int])
            assert_type(uow.signals.bulk_ingest([]), int)
            score = uow.scores.create(company_id=company.id, total_score=50)
            assert_type(score, MAScore)
            assert_type(uow.scores.get_latest_by_company(company.id), MAScore | None)
            assert_type(uow.scores.get_history(company.id, days=30), list[MAScore])
            assert_type(uow.scores.get_top_scores(limit=5), list[MAScore])
            assert_type(uow.scores.update_percentile_ranks(), int)
            matches = uow.acquirer_matches.get_top_matches_for_target(company.id)
            assert_type(matches, list[AcquirerMatch])
            assert_type(uow.reports.get_latest("weekly"), Report | None)
            assert_type(uow.alerts.find_triggered(signal), list[Alert])
            client, key = uow.clients.create_with_api_key("Typed client")
            assert_type(client, Client)
            assert_type(key, str)
            assert_type(uow.clients.authenticate(key), Client | None)
            assert_type(uow.webhooks.list_for_client(client.id), list[Webhook])
            assert_type(uow.webhooks.claim_due_deliveries(), list[WebhookDelivery])
            assert_type(uow.run(_count), int)
            with pytest.raises(ValidationError):
                uow.companies.get_by_ticker(42)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                uow.scores.get_history(company.id, weeks=3)  # type: ignore[call-arg]
            assert_type(uow.commit(), None)
        with db.session() as session:
            assert_type(session, SyncUnitOfWork)
            assert_type(session.companies.get_by_ticker("TYPE"), Company | None)
