"""The synchronous facade against a real database: every documented domain method, blocking.

Each test drives :class:`SyncDatabase` from plain synchronous code (no event loop in the
test's thread), except where a running loop or another thread is the point.  The
database is a fresh clone per test, so commits are real.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from biotech_ma_db import (
    Company,
    CompanyRepository,
    Database,
    DeliveryStatus,
    DuplicateKeyError,
    ReportStatus,
    SignalType,
    UnitOfWork,
    UnitOfWorkError,
    ValidationError,
)
from biotech_ma_db.sync import (
    BlockingRepository,
    RepositoryAttribute,
    SyncDatabase,
    SyncUnitOfWork,
)
from biotech_ma_db.unit_of_work import _RepositoryAttribute

TODAY = dt.datetime.now(dt.UTC).date()
WHEN = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)


@pytest.fixture(name="sync_db")
def fixture_sync_db(fresh_database: Database) -> Iterator[SyncDatabase]:
    """A synchronous database on the test's fresh clone."""
    url = fresh_database.engine.url.render_as_string(hide_password=False)
    with SyncDatabase.from_url(url, pool_size=2, max_overflow=2) as db:
        yield db


def _company(uow: SyncUnitOfWork, ticker: str, **values: object) -> Company:
    return uow.companies.create(ticker=ticker, name=f"{ticker} Therapeutics", **values)


class TestOriginalApi:
    """The original system's documented repository methods, called without ``await``."""

    def test_companies(self, sync_db: SyncDatabase) -> None:
        with sync_db.unit_of_work(actor="pytest", reason="sync") as uow:
            created = _company(
                uow,
                "ABCD",
                market_cap_usd=1_500_000_000,
                cash_position_usd=250_000_000,
                therapeutic_areas=["oncology"],
            )
            _company(uow, "SMAL", market_cap_usd=10_000_000, therapeutic_areas=["oncology"])
            uow.commit()
        with sync_db.unit_of_work(actor="pytest", reason="sync") as uow:
            found = uow.companies.get_by_ticker("ABCD")
            assert found is not None
            assert found.id == created.id
            assert uow.companies.get_by_ticker("NONE") is None
            hits = uow.companies.search(therapeutic_areas=["oncology"], min_market_cap=1e9)
            assert [c.ticker for c in hits] == ["ABCD"]
            updated = uow.companies.update(created.id, cash_position_usd=300_000_000)
            assert updated.cash_position_usd == Decimal("300000000.00")
            uow.commit()
        with sync_db.session() as session:
            again = session.companies.get_by_ticker("ABCD")
            assert again is not None
            assert again.cash_position_usd == Decimal("300000000.00")
            assert again.updated_by == "pytest"

    def test_signals(self, sync_db: SyncDatabase) -> None:
        with sync_db.unit_of_work(actor="pytest") as uow:
            company = _company(uow, "SIGN")
            filing = uow.signals.create(
                company_id=company.id,
                signal_type="sec_filing",
                event_date=WHEN,
                title="8-K Filing: Material Agreement",
                severity="high",
                signal_data={"filing_type": "8-K", "url": "https://example.com/8k"},
            )
            assert filing.signal_type is SignalType.SEC_FILING
            ingested = uow.signals.bulk_ingest(
                {
                    "company_id": company.id,
                    "signal_type": "news",
                    "event_date": WHEN - dt.timedelta(days=day),
                    "title": f"News {day}",
                }
                for day in range(1, 6)
            )
            assert ingested == 5
            uow.commit()
        with sync_db.session() as session:
            recent = session.signals.get_by_company(
                company.id,
                signal_types=["sec_filing", "fda_approval"],
                start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
            )
            assert [s.id for s in recent] == [filing.id]
            news = session.signals.get_by_company(company.id, signal_types=["news"])
            assert [s.title for s in news] == [f"News {day}" for day in range(1, 6)]
            assert session.signals.get_count_by_type(company_id=company.id) == {
                "news": 5,
                "sec_filing": 1,
            }

    def test_scores(self, sync_db: SyncDatabase) -> None:
        with sync_db.unit_of_work(actor="pytest") as uow:
            first, second = _company(uow, "SCRA"), _company(uow, "SCRB")
            old = uow.scores.create(
                company_id=first.id, total_score=70, score_date=TODAY - dt.timedelta(days=40)
            )
            score = uow.scores.create(
                company_id=first.id,
                total_score=85.5,
                pipeline_score=90.0,
                financial_score=75.0,
                key_drivers=["Late-stage pipeline", "Cash runway < 12mo"],
            )
            assert score.score_change_30d == Decimal("15.50")
            uow.scores.create(company_id=second.id, total_score=40)
            uow.commit()
        with sync_db.unit_of_work() as uow:
            latest = uow.scores.get_latest_by_company(first.id)
            assert latest is not None
            assert latest.id == score.id
            history = uow.scores.get_history(first.id, days=90)
            assert [s.id for s in history] == [old.id, score.id]
            top = uow.scores.get_top_scores(limit=50)
            assert [(s.company.ticker, s.total_score) for s in top] == [
                ("SCRA", Decimal("85.50")),
                ("SCRB", Decimal("40.00")),
            ]
            assert uow.scores.update_percentile_ranks() == 3
            uow.commit()
        with sync_db.session() as session:
            ranked = session.scores.get_latest_by_company(first.id)
            assert ranked is not None
            assert ranked.percentile_rank == Decimal("1.0000")

    def test_acquirer_matches(self, sync_db: SyncDatabase) -> None:
        with sync_db.unit_of_work(actor="pytest") as uow:
            target = _company(uow, "TRGT")
            buyers = [_company(uow, f"BUY{n}") for n in range(3)]
            ranked = uow.acquirer_matches.replace_matches_for_target(
                target.id,
                [
                    {"acquirer_company_id": buyers[0].id, "strategic_fit_score": 55},
                    {"acquirer_company_id": buyers[1].id, "strategic_fit_score": 91.5},
                    {"acquirer_company_id": buyers[2].id, "strategic_fit_score": 77},
                ],
            )
            assert [m.match_rank for m in ranked] == [1, 2, 3]
            uow.commit()
        with sync_db.session() as session:
            top = session.acquirer_matches.get_top_matches_for_target(target.id, limit=2)
            assert [m.acquirer_company_id for m in top] == [buyers[1].id, buyers[2].id]
            targets = session.acquirer_matches.get_targets_for_acquirer(buyers[0].id)
            assert [m.target_company_id for m in targets] == [target.id]

    def test_reports_alerts_webhooks_and_clients(self, sync_db: SyncDatabase) -> None:
        with sync_db.unit_of_work(actor="pytest") as uow:
            client, api_key = uow.clients.create_with_api_key("Notebook", scopes=["read"])
            report = uow.reports.create(
                report_type="weekly",
                report_date=dt.date(2025, 1, 6),
                period_start=dt.date(2024, 12, 30),
                period_end=dt.date(2025, 1, 5),
                title="Weekly report",
                storage_uri="file:///reports/weekly.pdf",
                content_type="application/pdf",
                size_bytes=1024,
                sha256="0" * 64,
            )
            alert = uow.alerts.create(
                client_id=client.id, name="Any news", alert_type="signal", channels=["email"]
            )
            webhook = uow.webhooks.create(
                client_id=client.id,
                url="https://hooks.example.com/sync",
                event_types=["signal.created"],
                secret="whsec_test_sync",
            )
            uow.commit()
        with sync_db.unit_of_work(actor="pytest") as uow:
            authenticated = uow.clients.authenticate(api_key)
            assert authenticated is not None
            assert authenticated.id == client.id
            assert uow.clients.authenticate(api_key + "x") is None
            latest = uow.reports.get_latest("weekly")
            assert latest is not None
            assert latest.id == report.id
            january = uow.reports.get_by_type("weekly", dt.date(2025, 1, 1), dt.date(2025, 1, 31))
            assert [r.id for r in january] == [report.id]
            assert uow.reports.get_by_type("weekly", dt.date(2025, 2, 1)) == []
            done = uow.reports.mark_distributed(report.id, ["a@example.com"])
            assert done.status is ReportStatus.DISTRIBUTED
            fired = uow.alerts.find_triggered(company_id=1, signal_type="news", severity="low")
            assert [a.id for a in fired] == [alert.id]
            first = uow.webhooks.enqueue_delivery(webhook.id, "signal.created", {"a": 1}, "e1")
            second = uow.webhooks.enqueue_delivery(webhook.id, "signal.created", {"a": 2}, "e2")
            assert first is not None
            assert second is not None
            assert uow.webhooks.enqueue_delivery(webhook.id, "signal.created", {}, "e1") is None
            claimed = uow.webhooks.claim_due_deliveries(limit=10)
            assert {d.id for d in claimed} == {first.id, second.id}
            delivered = uow.webhooks.mark_delivered(first.id, status_code=204)
            assert delivered.status is DeliveryStatus.DELIVERED
            failed = uow.webhooks.mark_failed(second.id, error="HTTP 503", status_code=503)
            assert failed.status is DeliveryStatus.FAILED  # retried after the backoff
            assert failed.attempts == 1
            uow.commit()
        with sync_db.session() as session:
            assert session.webhooks.claim_due_deliveries(limit=10) == []


class TestUnitOfWork:
    """Commit, rollback, errors and lifetime are those of the async unit of work."""

    def test_leaving_without_commit_rolls_back(self, sync_db: SyncDatabase) -> None:
        with sync_db.unit_of_work() as uow:
            _company(uow, "GONE")
        with sync_db.session() as session:
            assert session.companies.get_by_ticker("GONE") is None

    def test_an_exception_rolls_back_and_leaves_as_it_was(self, sync_db: SyncDatabase) -> None:
        with pytest.raises(DuplicateKeyError), sync_db.session() as session:
            _company(session, "TWIN")
            _company(session, "TWIN")
        with sync_db.session() as session:
            assert session.companies.get_by_ticker("TWIN") is None

    def test_validation_errors_come_through_typed(self, sync_db: SyncDatabase) -> None:
        with sync_db.session() as session, pytest.raises(ValidationError):
            session.scores.get_history(1, days=-1)

    def test_a_repository_outlives_its_unit_of_work_only_to_refuse(
        self, sync_db: SyncDatabase
    ) -> None:
        with sync_db.unit_of_work() as uow:
            companies = uow.companies
        with pytest.raises(UnitOfWorkError):
            companies.get_by_ticker("ABCD")

    def test_objects_are_readable_after_the_block(self, sync_db: SyncDatabase) -> None:
        with sync_db.session() as session:
            company = _company(session, "KEEP", therapeutic_areas=["rare disease"])
        assert company.therapeutic_areas == ["rare disease"]
        assert company.created_at.tzinfo is not None

    def test_run_takes_async_code(self, sync_db: SyncDatabase) -> None:
        async def count(uow: UnitOfWork) -> int:
            return await uow.companies.count()

        with sync_db.session() as session:
            _company(session, "RUNA")
            assert session.run(count) == 1
            scalar = session.run(lambda u: u.session.scalar(select(func.count(Company.id))))
            assert scalar == 1

    def test_run_in_transaction_through_run(self, sync_db: SyncDatabase) -> None:
        async def create(uow: UnitOfWork) -> int:
            return (await uow.companies.create(ticker="RTXN", name="Retried")).id

        created = sync_db.run(sync_db.database.run_in_transaction, create, actor="pytest")
        with sync_db.session() as session:
            found = session.companies.get_by_ticker("RTXN")
            assert found is not None
            assert found.id == created

    def test_only_coroutine_methods_are_offered(self, sync_db: SyncDatabase) -> None:
        with sync_db.session() as session:
            assert "get_by_ticker" in dir(session.companies)
            assert "rules" not in dir(session.companies)
            with pytest.raises(AttributeError, match="not a coroutine method"):
                session.companies.rules  # noqa: B018 — the access is the test

    def test_the_attributes_are_those_of_the_async_unit_of_work(
        self, sync_db: SyncDatabase
    ) -> None:
        """Same names, and each proxy wraps the class the async attribute builds."""
        async_names = {
            name
            for name, value in vars(UnitOfWork).items()
            if isinstance(value, _RepositoryAttribute)
        }
        sync_attributes = {
            name: value
            for name, value in vars(SyncUnitOfWork).items()
            if isinstance(value, RepositoryAttribute)
        }
        assert set(sync_attributes) == async_names
        with sync_db.session() as session:
            for name, attribute in sync_attributes.items():
                assert isinstance(getattr(session, name), BlockingRepository)
                built = session.run(lambda u, name=name: _attribute_type(u, name))
                assert attribute.repository is built, name


async def _attribute_type(uow: UnitOfWork, name: str) -> type[object]:
    return type(getattr(uow, name))


class TestWhereItRuns:
    """Inside a running event loop (Jupyter), from other threads, never on its own loop."""

    async def test_inside_a_running_loop(self, sync_db: SyncDatabase) -> None:
        running = asyncio.get_running_loop()
        with sync_db.session() as session:
            company = _company(session, "JUPY")
        with sync_db.session() as session:
            found = session.companies.get_by_ticker("JUPY")
        assert found is not None
        assert found.id == company.id
        assert sync_db.health().ok
        assert asyncio.get_running_loop() is running

    def test_from_other_threads_at_once(self, sync_db: SyncDatabase) -> None:
        errors: list[BaseException] = []
        barrier = threading.Barrier(3)

        def work(ticker: str) -> None:
            try:
                barrier.wait(timeout=10)
                with sync_db.session() as session:
                    _company(session, ticker)
            except BaseException as exc:  # noqa: BLE001 — reported to the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(f"THR{n}",)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert errors == []
        with sync_db.session() as session:
            assert session.companies.count() == 3

    def test_calling_it_from_its_own_loop_refuses_instead_of_deadlocking(
        self, sync_db: SyncDatabase
    ) -> None:
        async def nested(uow: UnitOfWork) -> None:
            sync_db.health()

        with sync_db.session() as session, pytest.raises(RuntimeError, match="own event-loop"):
            session.run(nested)

    def test_closed_database_refuses(self, fresh_database: Database) -> None:
        url = fresh_database.engine.url.render_as_string(hide_password=False)
        db = SyncDatabase.from_url(url)
        assert db.health().ok
        db.close()
        db.close()
        with pytest.raises(RuntimeError, match="closed"):
            db.health()

    def test_pool_status_and_repr(self, sync_db: SyncDatabase) -> None:
        assert sync_db.pool_status().size == 2
        assert "SyncDatabase" in repr(sync_db)
        assert isinstance(sync_db.database.unit_of_work(), UnitOfWork)
        assert SyncUnitOfWork.companies.repository is CompanyRepository
