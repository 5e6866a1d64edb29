"""``SignalRepository.stream_by_company``: the rows of ``get_by_company``, in bounded batches."""

from __future__ import annotations

import datetime as dt
import gc
import tracemalloc
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db import Database, SignalRepository, SignalType, ValidationError
from biotech_ma_db.models import NewsSignal, Signal
from biotech_ma_db.testing.factories import make_company

UTC = dt.UTC
START = dt.datetime(2024, 1, 1, tzinfo=UTC)


def _rows(company_id: int, count: int) -> list[dict[str, object]]:
    kinds = list(SignalType)
    return [
        {
            "company_id": company_id,
            "signal_type": kinds[i % len(kinds)],
            "event_date": START + dt.timedelta(hours=i // 3),  # ties: ordered by id then
            "severity": ("low", "medium", "high", "critical")[i % 4],
            "title": f"Event {i}",
            "signal_data": {"n": i, "text": "x" * 200},
            "ma_impact_score": Decimal(i % 200 - 100),
        }
        for i in range(count)
    ]


async def _collect(batches: AsyncIterator[list[Signal]]) -> list[list[Signal]]:
    return [batch async for batch in batches]


class TestSameRowsAsGetByCompany:
    """Every filter of ``get_by_company`` gives the same signals, newest first."""

    @pytest.mark.parametrize(
        "filters",
        [
            {},
            {"signal_types": ["news", "sec_filing"]},
            {"start_date": START + dt.timedelta(days=1)},
            {"end_date": dt.date(2024, 1, 2)},
            {"start_date": dt.datetime(2024, 1, 1, 6), "end_date": START + dt.timedelta(days=2)},  # noqa: DTZ001
            {"min_severity": "high"},
        ],
    )
    async def test_filters(self, db_session: AsyncSession, filters: dict[str, object]) -> None:
        company = await make_company(db_session)
        other = await make_company(db_session)
        repo = SignalRepository(db_session)
        await repo.bulk_ingest(_rows(company.id, 230) + _rows(other.id, 20))
        expected = await repo.get_by_company(company.id, limit=500, **filters)  # type: ignore[arg-type]
        batches = await _collect(
            repo.stream_by_company(company.id, batch_size=40, **filters)  # type: ignore[arg-type]
        )
        assert expected, "the filter matches something"
        assert all(len(batch) == 40 for batch in batches[:-1])
        assert 1 <= len(batches[-1]) <= 40
        streamed = [signal for batch in batches for signal in batch]
        assert [s.id for s in streamed] == [s.id for s in expected]
        # The same objects: the session's identity map holds one per row.
        assert all(a is b for a, b in zip(streamed, expected, strict=True))

    async def test_subclasses_and_values(self, db_session: AsyncSession) -> None:
        company = await make_company(db_session)
        repo = SignalRepository(db_session)
        await repo.bulk_ingest(_rows(company.id, 30))
        db_session.expunge_all()
        streamed = [s for b in await _collect(repo.stream_by_company(company.id)) for s in b]
        assert len(streamed) == 30
        assert any(isinstance(s, NewsSignal) for s in streamed)
        assert {type(s).__name__ for s in streamed} == {
            type(s).__name__ for s in await repo.get_by_company(company.id, limit=500)
        }
        first = streamed[0]
        assert first.signal_data["text"] == "x" * 200
        assert isinstance(first.ma_impact_score, Decimal)

    async def test_no_rows_and_early_close(self, db_session: AsyncSession) -> None:
        company = await make_company(db_session)
        repo = SignalRepository(db_session)
        assert await _collect(repo.stream_by_company(company.id)) == []
        await repo.bulk_ingest(_rows(company.id, 100))
        stream = repo.stream_by_company(company.id, batch_size=10)
        first = await anext(stream)
        assert len(first) == 10
        await stream.aclose()  # the cursor is closed; the session goes on
        assert len(await repo.get_by_company(company.id, limit=500)) == 100


class TestArguments:
    @pytest.mark.parametrize("size", [0, 10_001, True, 2.5, "10"])
    async def test_bad_batch_size(self, db_session: AsyncSession, size: object) -> None:
        stream = SignalRepository(db_session).stream_by_company(1, batch_size=size)  # type: ignore[arg-type]
        with pytest.raises(ValidationError) as caught:
            await anext(stream)
        assert caught.value.field == "batch_size"

    async def test_bad_filters(self, db_session: AsyncSession) -> None:
        repo = SignalRepository(db_session)
        with pytest.raises(ValidationError):
            await anext(repo.stream_by_company("1"))  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await anext(repo.stream_by_company(1, signal_types=["no_such_type"]))


class TestMemory:
    """Streaming holds one batch, not the whole result."""

    @pytest.mark.slow
    async def test_peak_is_a_batch_not_the_result(self, fresh_database: Database) -> None:
        async with fresh_database.unit_of_work() as uow:
            company = await uow.companies.create(ticker="STRM", name="Stream Bio")
            await uow.signals.bulk_ingest(_rows(company.id, 20_000))
            await uow.commit()

        async def peak(keep: bool) -> tuple[int, int]:
            kept: list[Signal] = []
            seen = 0
            gc.collect()
            tracemalloc.start()
            try:
                async with fresh_database.session(read_only=True) as session:
                    stream = SignalRepository(session).stream_by_company(company.id, batch_size=500)
                    async for batch in stream:
                        seen += len(batch)
                        if keep:
                            kept.extend(batch)
                return seen, tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

        seen_all, holding_all = await peak(keep=True)
        seen, streaming = await peak(keep=False)
        assert seen == seen_all == 20_000
        # Holding 20,000 signals takes tens of MB; a stream of 500-row batches a fraction.
        assert streaming < holding_all / 5, (streaming, holding_all)
