"""``biotech_ma_db.frames``: the repositories' rows as polars DataFrames, row for row."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal

import polars as pl
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from biotech_ma_db import (
    Company,
    Database,
    InvalidQueryError,
    MAScore,
    Signal,
    SignalType,
    ValidationError,
)
from biotech_ma_db.frames import score_history_frame, signals_frame, top_scores_frame
from biotech_ma_db.sync import SyncDatabase

TODAY = dt.datetime.now(dt.UTC).date()
WHEN = dt.datetime(2025, 6, 30, 12, tzinfo=dt.UTC)
TYPES = ("news", "sec_filing", "fda_approval", "patent")
SEVERITIES = ("low", "medium", "high", "critical")
UTC = pl.Datetime("us", "UTC")

SIGNAL_SCHEMA = pl.Schema(
    {
        "id": pl.Int64(),
        "company_id": pl.Int64(),
        "signal_type": pl.Enum([kind.value for kind in SignalType]),
        "event_date": UTC,
        "severity": pl.Enum(list(SEVERITIES)),
        "title": pl.String(),
        "description": pl.String(),
        "source": pl.String(),
        "source_url": pl.String(),
        "signal_data": pl.String(),
        "ma_impact_score": pl.Float64(),
        "created_at": UTC,
    }
)
SCORE_SCHEMA = pl.Schema(
    {
        "id": pl.Int64(),
        "company_id": pl.Int64(),
        "score_date": pl.Date(),
        "total_score": pl.Float64(),
        "pipeline_score": pl.Float64(),
        "financial_score": pl.Float64(),
        "strategic_score": pl.Float64(),
        "signal_score": pl.Float64(),
        "percentile_rank": pl.Float64(),
        "score_change_30d": pl.Float64(),
        "score_change_90d": pl.Float64(),
        "key_drivers": pl.List(pl.String()),
        "risk_factors": pl.List(pl.String()),
        "model_version": pl.String(),
    }
)
TOP_SCHEMA = pl.Schema(
    {
        **SCORE_SCHEMA,
        "ticker": pl.String(),
        "name": pl.String(),
        "market_cap_usd": pl.Decimal(20, 2),
    }
)


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _signal_row(signal: Signal) -> dict[str, object]:
    return {
        "id": signal.id,
        "company_id": signal.company_id,
        "signal_type": signal.signal_type.value,
        "event_date": signal.event_date,
        "severity": signal.severity.value,
        "title": signal.title,
        "description": signal.description,
        "source": signal.source,
        "source_url": signal.source_url,
        "signal_data": signal.signal_data,
        "ma_impact_score": _number(signal.ma_impact_score),
        "created_at": signal.created_at,
    }


def _frame_signal_rows(frame: pl.DataFrame) -> list[dict[str, object]]:
    rows = frame.to_dicts()
    for row in rows:
        row["signal_data"] = json.loads(row["signal_data"])
    return rows


async def _server_transaction_open(session: AsyncSession) -> bool:
    """Whether ``BEGIN`` has reached the server on the session's connection."""
    raw = await (await session.connection()).get_raw_connection()
    return bool(raw.driver_connection.is_in_transaction())  # type: ignore[union-attr]


def _score_row(score: MAScore) -> dict[str, object]:
    return {
        "id": score.id,
        "company_id": score.company_id,
        "score_date": score.score_date,
        **{
            name: _number(getattr(score, name))
            for name in (
                "total_score",
                "pipeline_score",
                "financial_score",
                "strategic_score",
                "signal_score",
                "percentile_rank",
                "score_change_30d",
                "score_change_90d",
            )
        },
        "key_drivers": score.key_drivers,
        "risk_factors": score.risk_factors,
        "model_version": score.model_version,
    }


async def _seed(database: Database) -> tuple[Company, Company]:
    """Two companies; 40 signals of mixed types and severities for the first; scores."""
    async with database.unit_of_work(actor="pytest", reason="frames") as uow:
        first = await uow.companies.create(
            ticker="FRMA", name="Frame A", market_cap_usd=Decimal("1234567890.12")
        )
        second = await uow.companies.create(ticker="FRMB", name="Frame B")
        rows = [
            {
                "company_id": first.id,
                "signal_type": TYPES[n % len(TYPES)],
                "event_date": WHEN - dt.timedelta(days=n, minutes=n),
                "severity": SEVERITIES[(n // 4) % len(SEVERITIES)],
                "title": f"Signal {n}",
                "description": None if n % 3 else f"About {n}",
                "source": "wire" if n % 2 else None,
                "ma_impact_score": Decimal(n * 2 - 40) + Decimal("0.25"),
                "signal_data": {"n": n, "tags": ["a", "b"][: n % 3], "ok": n % 2 == 0},
            }
            for n in range(40)
        ]
        await uow.signals.bulk_ingest(rows)
        for weeks in range(6):
            await uow.scores.create(
                company_id=first.id,
                total_score=Decimal(60 + weeks) + Decimal("0.5"),
                pipeline_score=70,
                score_date=TODAY - dt.timedelta(weeks=5 - weeks),
                key_drivers=["pipeline", f"week {weeks}"],
                model_version="v1",
            )
        await uow.scores.create(company_id=second.id, total_score=42.25, risk_factors=["cash"])
        await uow.scores.update_percentile_ranks()
        await uow.commit()
    return first, second


class TestSignalsFrame:
    """The frame has the rows of ``get_by_company``, in its order, with typed columns."""

    async def test_rows_equal_the_repository(self, fresh_database: Database) -> None:
        first, _ = await _seed(fresh_database)
        filters: list[dict[str, object]] = [
            {},
            {"signal_types": ["news", "patent"]},
            {"start_date": dt.date(2025, 6, 1), "end_date": dt.date(2025, 6, 20)},
            {"end_date": WHEN - dt.timedelta(days=10)},
            {"min_severity": "high"},
            {"signal_types": "sec_filing", "min_severity": "critical"},
        ]
        async with fresh_database.unit_of_work() as uow:
            for options in filters:
                signals = await uow.signals.get_by_company(first.id, **options)  # type: ignore[arg-type]
                frame = await signals_frame(fresh_database, first.id, **options)  # type: ignore[call-overload]
                assert frame.schema == SIGNAL_SCHEMA
                assert _frame_signal_rows(frame) == [_signal_row(s) for s in signals], options
                assert frame.height == len(signals) > 0

    async def test_every_source_gives_the_same_frame(self, fresh_database: Database) -> None:
        first, _ = await _seed(fresh_database)
        reference = await signals_frame(fresh_database, first.id)
        async with fresh_database.unit_of_work() as uow:
            assert (await signals_frame(uow, first.id)).equals(reference)
            assert (await signals_frame(uow.session, first.id)).equals(reference)
        url = fresh_database.engine.url.render_as_string(hide_password=False)
        with SyncDatabase.from_url(url, pool_size=1, max_overflow=0) as db:
            assert signals_frame(db, first.id).equals(reference)
            with db.session() as session:
                assert signals_frame(session, first.id).equals(reference)

    async def test_a_session_of_another_engine_reads_in_a_transaction(
        self, fresh_database: Database
    ) -> None:
        """An engine without the library's options: the frame begins a transaction first."""
        first, _ = await _seed(fresh_database)
        reference = await signals_frame(fresh_database, first.id)
        engine = create_async_engine(fresh_database.engine.url)
        try:
            async with AsyncSession(engine) as session:
                frame = await signals_frame(session, first.id)
                assert await _server_transaction_open(session)
            assert frame.equals(reference)
        finally:
            await engine.dispose()
        async with fresh_database.session() as session:  # Database: one lone statement
            assert (await signals_frame(session, first.id)).equals(reference)
            assert not await _server_transaction_open(session)

    async def test_a_unit_of_work_sees_its_own_uncommitted_rows(
        self, fresh_database: Database
    ) -> None:
        async with fresh_database.unit_of_work() as uow:
            company = await uow.companies.create(ticker="UNCM", name="Uncommitted")
            await uow.signals.create(
                company_id=company.id, signal_type="news", event_date=WHEN, title="Pending"
            )
            frame = await signals_frame(uow, company.id)
            assert frame["title"].to_list() == ["Pending"]
        assert (await signals_frame(fresh_database, company.id)).height == 0

    async def test_no_rows_give_an_empty_frame_of_the_same_schema(
        self, fresh_database: Database
    ) -> None:
        frame = await signals_frame(fresh_database, 987654321)
        assert frame.height == 0
        assert frame.schema == SIGNAL_SCHEMA

    async def test_bad_input_is_refused_before_sql(self, fresh_database: Database) -> None:
        with pytest.raises(ValidationError):
            await signals_frame(fresh_database, 1, signal_types=["gossip"])
        with pytest.raises(ValidationError):
            await signals_frame(fresh_database, "1")  # type: ignore[call-overload]
        with pytest.raises(TypeError):
            await signals_frame(object(), 1)  # type: ignore[call-overload]


class TestScoreFrames:
    """History and ranking: the rows of ``get_history`` and ``get_top_scores``."""

    async def test_history_equals_the_repository(self, fresh_database: Database) -> None:
        first, _ = await _seed(fresh_database)
        async with fresh_database.unit_of_work() as uow:
            for days in (0, 14, 90):
                history = await uow.scores.get_history(first.id, days=days)
                frame = await score_history_frame(fresh_database, first.id, days=days)
                assert frame.schema == SCORE_SCHEMA
                assert frame.to_dicts() == [_score_row(s) for s in history], days
        assert (await score_history_frame(fresh_database, first.id, days=90)).height == 6

    async def test_top_scores_equal_the_repository(self, fresh_database: Database) -> None:
        await _seed(fresh_database)
        async with fresh_database.unit_of_work() as uow:
            for limit, day in ((50, None), (1, None), (50, TODAY), (50, dt.date(2000, 1, 1))):
                top = await uow.scores.get_top_scores(limit=limit, score_date=day)
                frame = await top_scores_frame(fresh_database, limit=limit, score_date=day)
                assert frame.schema == TOP_SCHEMA
                expected = [
                    {
                        **_score_row(s),
                        "ticker": s.company.ticker,
                        "name": s.company.name,
                        "market_cap_usd": s.company.market_cap_usd,
                    }
                    for s in top
                ]
                assert frame.to_dicts() == expected, (limit, day)
        ranking = await top_scores_frame(fresh_database)
        assert ranking["ticker"].to_list() == ["FRMA", "FRMB"]
        assert ranking["market_cap_usd"].to_list() == [Decimal("1234567890.12"), None]

    async def test_bad_input_is_refused(self, fresh_database: Database) -> None:
        with pytest.raises(ValidationError):
            await score_history_frame(fresh_database, 1, days=-1)
        with pytest.raises(InvalidQueryError):
            await top_scores_frame(fresh_database, limit=0)


class TestTheExtra:
    """Without polars, importing the module says which extra to install."""

    def test_missing_polars_names_the_extra(self) -> None:
        code = (
            "import sys; sys.modules['polars'] = None\n"
            "try:\n"
            "    import biotech_ma_db.frames\n"
            "except ImportError as exc:\n"
            "    print(exc)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        assert "pip install 'biotech-ma-db[frames]'" in result.stdout, result.stderr
