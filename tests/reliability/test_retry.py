"""``Database.run_in_transaction``: what is retried, how often, how long, and what is not."""

from __future__ import annotations

import asyncio
import time

import pytest

from biotech_ma_db import Database
from biotech_ma_db.errors import (
    CommitOutcomeUnknownError,
    ConcurrencyError,
    ConflictError,
    DatabaseUnavailableError,
    DeadlockDetectedError,
    QueryTimeoutError,
    SerializationFailureError,
    TransientDatabaseError,
    is_transient,
)
from biotech_ma_db.unit_of_work import RetryEvent, UnitOfWork

from .harness import MakeDb


class Flaky:
    """A unit of work body that raises ``errors`` one by one, then writes a company."""

    def __init__(self, *errors: BaseException, ticker: str = "FLAKY") -> None:
        self.errors = list(errors)
        self.calls = 0
        self.ticker = ticker

    async def __call__(self, uow: UnitOfWork) -> str:
        self.calls += 1
        await uow.companies.create(ticker=f"{self.ticker}{self.calls}", name="Flaky")
        if self.errors:
            raise self.errors.pop(0)
        return "done"


async def _tickers(db: Database) -> list[str]:
    async with db.unit_of_work(read_only=True) as uow:
        return [c.ticker for c in await uow.companies.list()]


@pytest.fixture(name="db")
def fixture_db(make_db: MakeDb) -> Database:
    return make_db(via_proxy=False, pool_size=2)


class TestClassification:
    """``is_transient`` draws the line of RELIABILITY.md §5.2 in one place."""

    @pytest.mark.parametrize(
        "error",
        [
            SerializationFailureError("x", sqlstate="40001"),
            DeadlockDetectedError("x", sqlstate="40P01"),
            DatabaseUnavailableError("x", sqlstate="57P01"),
            DatabaseUnavailableError("x", sqlstate="08006"),
            TransientDatabaseError("x", sqlstate="0A000"),
            ConnectionRefusedError(111, "refused"),
            ConnectionResetError(104, "reset"),
        ],
    )
    def test_transient(self, error: BaseException) -> None:
        assert is_transient(error)

    @pytest.mark.parametrize(
        "error",
        [
            ConflictError("x", sqlstate="23505"),
            QueryTimeoutError("x", sqlstate="57014"),
            QueryTimeoutError("x"),
            CommitOutcomeUnknownError("x"),
            ConcurrencyError("stale version"),
            ValueError("not a database error"),
        ],
    )
    def test_not_transient(self, error: BaseException) -> None:
        assert not is_transient(error)

    def test_typed_errors_are_transient_markers(self) -> None:
        for cls in (SerializationFailureError, DeadlockDetectedError, DatabaseUnavailableError):
            assert issubclass(cls, TransientDatabaseError)


class TestRunInTransaction:
    """The retry loop around a whole unit of work."""

    async def test_commits_and_returns_the_result(self, db: Database) -> None:
        assert await db.run_in_transaction(Flaky()) == "done"
        assert await _tickers(db) == ["FLAKY1"]

    async def test_transient_errors_rerun_the_whole_unit(self, db: Database) -> None:
        body = Flaky(
            SerializationFailureError("x", sqlstate="40001"),
            DeadlockDetectedError("x", sqlstate="40P01"),
        )
        events: list[RetryEvent] = []
        assert await db.run_in_transaction(body, on_retry=events.append) == "done"
        assert body.calls == 3
        assert [e.attempt for e in events] == [1, 2]
        assert await _tickers(db) == ["FLAKY3"], "failed attempts must leave nothing behind"

    async def test_other_errors_are_not_retried(self, db: Database) -> None:
        body = Flaky(ConflictError("x", sqlstate="23505"))
        with pytest.raises(ConflictError):
            await db.run_in_transaction(body)
        assert body.calls == 1
        assert await _tickers(db) == []

    async def test_gives_up_after_attempts_with_the_last_error(self, db: Database) -> None:
        body = Flaky(*(SerializationFailureError("x", sqlstate="40001") for _ in range(10)))
        with pytest.raises(SerializationFailureError) as caught:
            await db.run_in_transaction(body, attempts=4, base_delay=0.001)
        assert body.calls == 4
        assert any("4 attempts" in note for note in caught.value.__notes__)

    async def test_deadline_bounds_the_whole_call(self, db: Database) -> None:
        body = Flaky(*(DatabaseUnavailableError("x") for _ in range(1000)))
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailableError):
            await db.run_in_transaction(
                body, attempts=1000, deadline=0.5, base_delay=0.05, max_delay=0.1
            )
        assert 0.4 <= time.monotonic() - started <= 0.8

    async def test_backoff_is_exponential_with_full_jitter(self, db: Database) -> None:
        body = Flaky(*(DatabaseUnavailableError("x") for _ in range(6)))
        events: list[RetryEvent] = []
        await db.run_in_transaction(
            body, attempts=7, base_delay=0.01, max_delay=0.04, on_retry=events.append
        )
        caps = [min(0.04, 0.01 * 2**n) for n in range(6)]
        assert all(0 <= e.delay <= cap for e, cap in zip(events, caps, strict=True))

    async def test_commit_outcome_unknown_needs_idempotent(self, db: Database) -> None:
        body = Flaky(CommitOutcomeUnknownError("x"))
        with pytest.raises(CommitOutcomeUnknownError):
            await db.run_in_transaction(body)
        assert body.calls == 1
        body = Flaky(CommitOutcomeUnknownError("x"), ticker="IDEM")
        assert await db.run_in_transaction(body, idempotent=True) == "done"
        assert body.calls == 2

    async def test_retry_on_widens_the_transient_class(self, db: Database) -> None:
        body = Flaky(ConcurrencyError("stale version"))
        assert await db.run_in_transaction(body, retry_on=(ConcurrencyError,)) == "done"
        assert body.calls == 2

    async def test_cancellation_is_never_retried(self, db: Database) -> None:
        calls = 0

        async def slow(uow: UnitOfWork) -> None:
            nonlocal calls
            calls += 1
            await uow.companies.count()
            await asyncio.sleep(10)

        task = asyncio.create_task(db.run_in_transaction(slow))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert calls == 1

    async def test_isolation_level_and_read_only_apply(self, db: Database) -> None:
        async def levels(uow: UnitOfWork) -> tuple[str, str]:
            from sqlalchemy import text  # noqa: PLC0415

            row = (
                await uow.session.execute(
                    text(
                        "SELECT current_setting('transaction_isolation'),"
                        " current_setting('transaction_read_only')"
                    )
                )
            ).one()
            return str(row[0]), str(row[1])

        assert await db.run_in_transaction(levels) == ("read committed", "off")
        assert await db.run_in_transaction(
            levels, isolation_level="SERIALIZABLE", read_only=True
        ) == ("serializable", "on")

    @pytest.mark.parametrize("attempts", [0, -1])
    async def test_bad_arguments(self, db: Database, attempts: int) -> None:
        with pytest.raises(ValueError, match="attempts"):
            await db.run_in_transaction(Flaky(), attempts=attempts)
