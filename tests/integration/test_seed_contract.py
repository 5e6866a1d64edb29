"""The seed README's Usage and Common Patterns examples, run as written.

Each test body is the README example with ``from src.database import ...`` read as
``from biotech_ma_db import ...``; the ``seed`` fixture points ``DATABASE_URL`` at a fresh
database and runs the example's ``init_db``/``close_db`` around it.  Comments in the
bodies mark the only additions: values for the README's ``...`` placeholders, and
assertions after each example.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from biotech_ma_db import (
    Company,
    CompanyRepository,
    ConflictError,
    Database,
    ScoreRepository,
    SignalRepository,
    close_db,
    get_db_session,
    health_check,
    init_db,
)
from biotech_ma_db.models import FdaApprovalSignal, SecFilingSignal

logger = logging.getLogger(__name__)


@pytest.fixture(name="seed")
async def fixture_seed(
    fresh_database: Database, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Database]:
    """``DATABASE_URL`` set to a fresh database, initialised the README's way."""
    monkeypatch.setenv("DATABASE_URL", fresh_database.engine.url.render_as_string(False))
    # Initialize connection pool
    await init_db(pool_size=20, max_overflow=10)
    try:
        yield fresh_database
    finally:
        # Later, close connections
        await close_db()


async def _create_company() -> Company:
    async with get_db_session() as session:
        repo = CompanyRepository(session)
        return await repo.create(
            ticker="ABCD",
            name="ABC Therapeutics",
            market_cap_usd=1500000000,
            cash_position_usd=250000000,
        )


class TestUsage:
    """The Usage section."""

    async def test_initialize_database(self, seed: Database) -> None:
        assert await health_check() is True

    async def test_using_repositories(self, seed: Database) -> None:
        async with get_db_session() as session:
            repo = CompanyRepository(session)

            # Create company
            company = await repo.create(
                ticker="ABCD",
                name="ABC Therapeutics",
                market_cap_usd=1500000000,
                cash_position_usd=250000000,
            )

            # Get company
            company = await repo.get_by_ticker("ABCD")  # type: ignore[assignment]  # verbatim

            # Search companies
            companies = await repo.search(
                therapeutic_areas=["oncology"],
                min_market_cap=1000000000,
            )

            # Update company
            await repo.update(
                company.id,
                cash_position_usd=300000000,
            )
        assert company is not None
        assert companies == []  # the README's company lists no therapeutic areas
        async with get_db_session() as session:
            stored = await CompanyRepository(session).get_by_ticker("ABCD")
            assert stored is not None
            assert stored.cash_position_usd == 300000000
            assert stored.market_cap_usd == 1500000000

    async def test_signal_repository(self, seed: Database) -> None:
        company = await _create_company()

        async with get_db_session() as session:
            repo = SignalRepository(session)

            # Create signal
            signal = await repo.create(
                company_id=company.id,
                signal_type="sec_filing",
                event_date=datetime.utcnow(),  # noqa: DTZ003 — verbatim from the README
                title="8-K Filing: Material Agreement",
                severity="high",
                signal_data={
                    "filing_type": "8-K",
                    "url": "https://...",
                },
            )

            # Get signals for company
            signals = await repo.get_by_company(
                company.id,
                signal_types=["sec_filing", "fda_approval"],
                start_date=datetime(2025, 1, 1),  # noqa: DTZ001 — verbatim from the README
            )

            # Get signal counts
            counts = await repo.get_count_by_type(company_id=company.id)
        assert isinstance(signal, SecFilingSignal)
        assert [s.id for s in signals] == [signal.id]
        assert counts == {"sec_filing": 1}

    async def test_score_repository(self, seed: Database) -> None:
        company = await _create_company()

        async with get_db_session() as session:
            repo = ScoreRepository(session)

            # Create score
            score = await repo.create(
                company_id=company.id,
                total_score=85.5,
                pipeline_score=90.0,
                financial_score=75.0,
                key_drivers=["Late-stage pipeline", "Cash runway < 12mo"],
            )

            # Get latest score
            latest = await repo.get_latest_by_company(company.id)

            # Get score history
            history = await repo.get_history(company.id, days=90)

            # Get top scores
            top_companies = await repo.get_top_scores(limit=50)

            # Update percentile ranks
            await repo.update_percentile_ranks()
        assert latest is score
        assert history == [score]
        assert [s.id for s in top_companies] == [score.id]
        async with get_db_session() as session:
            ranked = await ScoreRepository(session).get_latest_by_company(company.id)
            assert ranked is not None
            assert ranked.percentile_rank == 0

    async def test_health_checks(self, seed: Database) -> None:
        # Check database connectivity
        is_healthy = await health_check()
        assert is_healthy is True

    async def test_testing_setup(self, seed: Database) -> None:
        # The README's fixtures, driven by hand (pytest fixtures cannot be nested here).
        async def db() -> AsyncIterator[None]:
            await init_db(echo=True)
            yield
            await close_db()

        async def session() -> AsyncIterator[object]:
            async with get_db_session() as session:
                yield session
                await session.rollback()

        database = db()
        await anext(database)
        sessions = session()
        opened = await anext(sessions)
        assert (await opened.execute(text("SELECT 1"))).scalar() == 1  # type: ignore[attr-defined]
        with pytest.raises(StopAsyncIteration):
            await anext(sessions)
        with pytest.raises(StopAsyncIteration):
            await anext(database)
        assert await health_check() is False


class TestCommonPatterns:
    """The Common Patterns and Troubleshooting sections."""

    async def test_bulk_insert(self, seed: Database) -> None:
        async with get_db_session() as session:
            companies = [
                Company(ticker="ABC", name="ABC Inc.", market_cap_usd=10**9),
                Company(ticker="XYZ", name="XYZ Corp.", market_cap_usd=2 * 10**9),
            ]
            session.add_all(companies)
            await session.flush()
        assert all(c.id for c in companies)
        async with get_db_session() as session:
            stored = await CompanyRepository(session).list(Company.ticker.in_(["ABC", "XYZ"]))
        assert [c.ticker for c in stored] == ["ABC", "XYZ"]

    async def test_transactions(self, seed: Database) -> None:
        async with get_db_session() as session:
            repo = CompanyRepository(session)
            signal_repo = SignalRepository(session)
            # All operations in same transaction
            company = await repo.create(ticker="TXN", name="Txn Bio")
            signal = await signal_repo.create(
                company_id=company.id,
                signal_type="fda_approval",
                event_date=datetime.utcnow(),  # noqa: DTZ003 — the README's style
                title="Approval",
            )
            # Auto-commits if no exception
        async with get_db_session() as session:
            stored = await SignalRepository(session).get_or_raise(signal.id)
        assert isinstance(stored, FdaApprovalSignal)

    async def test_transactions_roll_back_together(self, seed: Database) -> None:
        with pytest.raises(RuntimeError):
            async with get_db_session() as session:
                company = await CompanyRepository(session).create(ticker="HALF", name="Half")
                await SignalRepository(session).create(
                    company_id=company.id,
                    signal_type="news",
                    event_date=datetime.utcnow(),  # noqa: DTZ003 — the README's style
                    title="never kept",
                )
                raise RuntimeError("abort")
        async with get_db_session() as session:
            assert await CompanyRepository(session).get_by_ticker("HALF") is None

    async def test_error_handling(self, seed: Database) -> None:
        await _create_company()
        caught: list[IntegrityError] = []

        try:
            async with get_db_session() as session:
                # Database operations
                await CompanyRepository(session).create(ticker="ABCD", name="Duplicate")
        except IntegrityError as e:
            # Handle constraint violations
            logger.error(f"Database constraint violation: {e}")
            caught.append(e)

        assert len(caught) == 1
        assert isinstance(caught[0], ConflictError)
        assert caught[0].constraint == "ix_companies_ticker"

    async def test_troubleshooting(self, seed: Database) -> None:
        db = await init_db(pool_size=50, max_overflow=20)
        assert db.pool_status().size == 50
        db = await init_db(echo=True)
        assert db.engine.echo is True
        assert await health_check() is True
