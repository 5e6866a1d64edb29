"""Signals partitioned by month: the migration keeps every row, partitions are managed online.

Migration ``0003`` up and down with rows in place; the DEFAULT partition; ``ensure`` (moving
rows out of DEFAULT, idempotent, four jobs at once); ``detach`` while writers keep writing
(the plain DETACH a DEFAULT partition forces, and CONCURRENTLY without one); and the plan
of ``get_by_company`` over 90 days touching only the partitions of those months.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from biotech_ma_db import Database, LockTimeoutError, MigrationError, ValidationError, migrations
from biotech_ma_db.models import Company, Signal
from biotech_ma_db.partitions import (
    EnsureResult,
    Month,
    detach_partitions,
    ensure_partitions,
    list_partitions,
)

UTC = dt.UTC
CHECKSUM = "SELECT count(*), sum(hashtextextended(s::text, 0)) FROM signals AS s"
LOCK_KEY = "hashtextextended('biotech_ma_db.partitions:signals', 0)"
WAIT_LIMIT = 20.0


async def _scalar(url: str, sql: str, **params: object) -> Any:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).scalar()
    finally:
        await engine.dispose()


async def _execute(url: str, *statements: str) -> list[tuple[Any, ...]]:
    """Run ``statements`` in one committed transaction; the last one's rows."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            rows: list[tuple[Any, ...]] = []
            for sql in statements:
                result = await conn.execute(text(sql))
                rows = [tuple(row) for row in result] if result.returns_rows else []
            return rows
    finally:
        await engine.dispose()


async def _wait_until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``condition`` until it holds (a state of the server, not a duration)."""
    deadline = time.monotonic() + WAIT_LIMIT
    while not await condition():
        assert time.monotonic() < deadline, f"never saw: {what}"
        await asyncio.sleep(0.01)


def _url(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


async def _company(db: Database, ticker: str = "PART") -> int:
    async with db.unit_of_work(actor="pytest") as uow:
        company = await uow.companies.create(ticker=ticker, name=f"{ticker} Therapeutics")
        await uow.commit()
        return company.id


async def _insert(db: Database, company_id: int, *moments: dt.datetime) -> list[int]:
    """One committed signal per moment; their ids."""
    async with db.unit_of_work(actor="pytest") as uow:
        ids = [
            (
                await uow.signals.create(
                    company_id=company_id, signal_type="news", event_date=moment, title="t"
                )
            ).id
            for moment in moments
        ]
        await uow.commit()
        return ids


async def _partition_of(db: Database, signal_id: int) -> str:
    async with db.engine.connect() as conn:
        found = await conn.execute(
            text("SELECT tableoid::regclass::text FROM signals WHERE id = :id"), {"id": signal_id}
        )
        return str(found.scalar_one())


async def _is_partition(db: Database, name: str) -> bool:
    async with db.engine.connect() as conn:
        found = await conn.execute(
            text("SELECT relispartition FROM pg_class WHERE oid = to_regclass(:name)"),
            {"name": name},
        )
        return bool(found.scalar())


def _months(first: Month, count: int) -> list[str]:
    return [first.plus(offset).partition_name("signals") for offset in range(count)]


# --- the migration -------------------------------------------------------------------------

ROWS_AT_0002 = """
INSERT INTO companies (ticker, name)
SELECT 'M' || n, 'Company ' || n FROM generate_series(1, 5) AS n;
INSERT INTO signals (company_id, signal_type, event_date, severity, title, signal_data,
                     ma_impact_score, created_by)
SELECT 1 + n % 5, (ARRAY['news', 'patent', 'sec_filing'])[1 + n % 3],
       timestamptz '2024-01-01 00:00:00+00' + n * interval '7 hours',
       (ARRAY['low', 'medium', 'high'])[1 + n % 3], 'title ' || n,
       jsonb_build_object('n', n), (n % 200) - 100, 'seed'
FROM generate_series(1, 1500) AS n;
INSERT INTO signals (company_id, signal_type, event_date, title)
VALUES (1, 'news', '1999-12-31 23:30:00+00', 'last of a century'),
       (2, 'patent', '2031-07-04 12:00:00+00', 'far ahead'),
       (3, 'news', '2024-02-01 00:00:00+00', 'deleted');
DELETE FROM signals WHERE title = 'deleted'
"""


@pytest.fixture(name="role")
async def fixture_role(postgres_url: str) -> AsyncIterator[str]:
    """A throwaway role (roles are cluster-wide: dropped after the test)."""
    name = f"part_{uuid.uuid4().hex[:10]}"
    await _execute(postgres_url, f"CREATE ROLE {name}")
    try:
        yield name
    finally:
        await _execute(postgres_url, f"DROP ROLE IF EXISTS {name}")


class TestMigration:
    """``0003`` up and down keeps every row, the ids' sequence and the grants."""

    async def test_up_and_down_with_rows(self, empty_database_url: str, role: str) -> None:
        url = empty_database_url
        await asyncio.to_thread(migrations.upgrade, url, "0002")
        await _execute(url, *ROWS_AT_0002.split(";\n"))
        await _execute(url, f"GRANT SELECT, INSERT ON signals TO {role}")
        before = (await _execute(url, CHECKSUM))[0]
        next_id = await _scalar(url, "SELECT last_value + 1 FROM signals_id_seq")
        assert before[0] == 1502
        assert next_id == 1504  # the deleted row's id (1503) stays used

        await asyncio.to_thread(migrations.upgrade, url, "0003")
        assert (await _execute(url, CHECKSUM))[0] == before
        assert (
            await _scalar(url, "SELECT relkind::text FROM pg_class WHERE relname = 'signals'")
            == "p"
        )
        # Every row sits in the partition of its month; DEFAULT holds none of them.
        misplaced = await _scalar(
            url,
            "SELECT count(*) FROM signals WHERE tableoid::regclass::text <> 'signals_' ||"
            " to_char(event_date AT TIME ZONE 'UTC', '\"y\"YYYY\"m\"MM')",
        )
        assert misplaced == 0
        assert await _scalar(url, "SELECT count(*) FROM signals_default") == 0
        assert await _scalar(url, "SELECT to_regclass('signals_y1999m12') IS NOT NULL")
        assert await _scalar(url, f"SELECT has_table_privilege('{role}', 'signals', 'INSERT')")
        assert await asyncio.to_thread(migrations.check_schema, url) == []
        # Ids carry on from the old sequence (the deleted row's id is not reused).
        rows = await _execute(
            url,
            "INSERT INTO signals (company_id, signal_type, event_date, title)"
            " VALUES (3, 'news', now(), 'after') RETURNING id",
        )
        assert rows == [(next_id,)]
        after = (await _execute(url, CHECKSUM))[0]

        await asyncio.to_thread(migrations.downgrade, url, "0002")
        assert (await _execute(url, CHECKSUM))[0] == after
        assert (
            await _scalar(url, "SELECT relkind::text FROM pg_class WHERE relname = 'signals'")
            == "r"
        )
        assert await _scalar(url, "SELECT to_regclass('signals_default')") is None
        assert await _scalar(url, f"SELECT has_table_privilege('{role}', 'signals', 'INSERT')")
        assert await _scalar(url, "SELECT last_value FROM signals_id_seq") == next_id
        await asyncio.to_thread(migrations.upgrade, url)
        assert (await _execute(url, CHECKSUM))[0] == after
        await _execute(url, f"REVOKE ALL ON signals FROM {role}")

    async def test_refuses_a_foreign_key_into_signals(self, empty_database_url: str) -> None:
        url = empty_database_url
        await asyncio.to_thread(migrations.upgrade, url, "0002")
        await _execute(
            url, "CREATE TABLE signal_notes (signal_id bigint REFERENCES signals (id), note text)"
        )
        with pytest.raises(MigrationError) as caught:
            await asyncio.to_thread(migrations.upgrade, url)
        assert "foreign keys reference signals" in str(caught.value.__cause__)
        assert await asyncio.to_thread(migrations.current, url) == "0002"
        assert (
            await _scalar(url, "SELECT relkind::text FROM pg_class WHERE relname = 'signals'")
            == "r"
        )


# --- DEFAULT and the repositories ------------------------------------------------------------


class TestDefaultPartition:
    """Out-of-range dates land in DEFAULT; the key is (id, event_date) but get(id) works."""

    async def test_out_of_range_insert_lands_in_default(self, fresh_database: Database) -> None:
        company = await _company(fresh_database)
        (old,) = await _insert(fresh_database, company, dt.datetime(1901, 2, 3, tzinfo=UTC))
        assert await _partition_of(fresh_database, old) == "signals_default"

    async def test_get_by_id_and_moving_a_row_between_partitions(
        self, fresh_database: Database
    ) -> None:
        db = fresh_database
        await ensure_partitions(db, start=dt.date(2030, 1, 1), months_ahead=2)
        company = await _company(db)
        (signal_id,) = await _insert(db, company, dt.datetime(2030, 1, 5, tzinfo=UTC))
        assert await _partition_of(db, signal_id) == "signals_y2030m01"
        async with db.unit_of_work(actor="pytest") as uow:
            signal = await uow.signals.get(signal_id)
            assert signal is not None
            await uow.signals.update(signal_id, event_date=dt.datetime(2030, 3, 9, tzinfo=UTC))
            await uow.commit()
        assert await _partition_of(db, signal_id) == "signals_y2030m03"
        async with db.unit_of_work() as uow:
            moved = await uow.signals.get(signal_id)
            assert moved is not None
            assert moved.event_date == dt.datetime(2030, 3, 9, tzinfo=UTC)


# --- ensure ----------------------------------------------------------------------------------


class TestEnsure:
    """``ensure_partitions``: the months asked for, once, whoever asks and how often."""

    async def test_creates_the_months_then_nothing(self, fresh_database: Database) -> None:
        first = Month(2030, 11)
        made = await ensure_partitions(fresh_database, start=dt.date(2030, 11, 20), months_ahead=2)
        assert made == EnsureResult(tuple(_months(first, 3)), 0)
        again = await ensure_partitions(fresh_database, start=dt.date(2030, 11, 1), months_ahead=2)
        assert again == EnsureResult((), 0)
        listed = {p.name: p for p in await list_partitions(fresh_database)}
        january = listed["signals_y2031m01"]
        assert (january.lower, january.upper) == (
            dt.datetime(2031, 1, 1, tzinfo=UTC),
            dt.datetime(2031, 2, 1, tzinfo=UTC),
        )
        assert list(listed)[-1] == "signals_default"
        assert listed["signals_default"].is_default

    async def test_moves_rows_out_of_default(self, fresh_database: Database) -> None:
        db = fresh_database
        company = await _company(db)
        in_may = [dt.datetime(2031, 5, day, 23, 59, tzinfo=UTC) for day in (1, 15, 31)]
        edges = [dt.datetime(2031, 4, 30, 23, 59, tzinfo=UTC), dt.datetime(2031, 6, 1, tzinfo=UTC)]
        ids = await _insert(db, company, *in_may, *edges)
        assert {await _partition_of(db, i) for i in ids} == {"signals_default"}
        made = await ensure_partitions(db, start=dt.date(2031, 5, 1), months_ahead=0)
        assert made == EnsureResult(("signals_y2031m05",), 3)
        assert [await _partition_of(db, i) for i in ids] == [
            *["signals_y2031m05"] * 3,
            "signals_default",
            "signals_default",
        ]
        assert await _is_partition(db, "signals_y2031m05")

    async def test_four_jobs_at_once(self, fresh_database: Database) -> None:
        db = fresh_database
        expected = _months(Month(2032, 1), 6)

        async def job() -> EnsureResult:
            async with db.engine.connect() as conn:
                return await ensure_partitions(
                    conn, start=dt.date(2032, 1, 1), months_ahead=5, lock_timeout_ms=60_000
                )

        async def waiting_jobs() -> bool:
            async with db.engine.connect() as conn:
                found = await conn.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    )
                )
                return found.scalar_one() == 4

        # Hold the maintenance lock so all four are provably running (queued) at once.
        async with db.engine.connect() as holder:
            await holder.execute(text(f"SELECT pg_advisory_lock({LOCK_KEY})"))
            jobs = [asyncio.create_task(job()) for _ in range(4)]
            await _wait_until(waiting_jobs, "four ensure jobs waiting for the lock")
            await holder.execute(text(f"SELECT pg_advisory_unlock({LOCK_KEY})"))
            results = await asyncio.gather(*jobs)
            await holder.rollback()
        created = sorted(name for result in results for name in result.created)
        assert created == expected  # each month once, by whichever job came first
        assert all(await asyncio.gather(*(_is_partition(db, name) for name in expected)))

    @pytest.mark.parametrize(
        ("arguments", "field"),
        [
            ({"months_ahead": -1}, "months_ahead"),
            ({"months_ahead": 121}, "months_ahead"),
            ({"months_ahead": True}, "months_ahead"),
            ({"months_ahead": "3"}, "months_ahead"),
            ({"start": dt.datetime(2030, 1, 1, tzinfo=UTC)}, "start"),
            ({"start": "2030-01-01"}, "start"),
            ({"table": "companies"}, "table"),
            ({"lock_timeout_ms": 0}, "lock_timeout_ms"),
        ],
    )
    async def test_bad_arguments(
        self, database: Database, arguments: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(ValidationError) as caught:
            await ensure_partitions(database, **arguments)
        assert caught.value.field == field


# --- detach ----------------------------------------------------------------------------------


async def _lock_waiters(db: Database, sql_fragment: str) -> int:
    """Backends whose current statement contains ``sql_fragment`` and wait for a lock."""
    async with db.engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND position(:fragment IN query) > 0 AND pid <> pg_backend_pid()"
            ),
            {"fragment": sql_fragment},
        )
        return int(found.scalar_one())


async def _hold_signals(conn: AsyncConnection, company: int) -> None:
    """Leave a transaction open that has written to ``signals`` (ROW EXCLUSIVE held)."""
    await conn.execute(
        text(
            "INSERT INTO signals (company_id, signal_type, event_date, title)"
            " VALUES (:c, 'news', '2020-03-15 00:00:00+00', 'held')"
        ),
        {"c": company},
    )


class TestDetach:
    """Retention: old months detached (or dropped) while writers keep writing."""

    async def test_writer_waits_at_most_one_attempt(self, fresh_database: Database) -> None:
        db = fresh_database
        await ensure_partitions(db, start=dt.date(2020, 1, 1), months_ahead=2)
        company = await _company(db)
        january, _ = await _insert(
            db, company, dt.datetime(2020, 1, 10, tzinfo=UTC), dt.datetime(2020, 3, 2, tzinfo=UTC)
        )
        async with db.engine.connect() as holder:
            await _hold_signals(holder, company)
            detach = asyncio.create_task(
                detach_partitions(db, older_than=dt.date(2020, 3, 1), lock_timeout_ms=200)
            )

            async def detach_waits() -> bool:
                return await _lock_waiters(db, "DETACH PARTITION") == 1

            await _wait_until(detach_waits, "DETACH waiting for its lock")
            started = time.monotonic()
            # Queued behind the waiting DETACH until that attempt gives up (200 ms).
            await asyncio.wait_for(
                _insert(db, company, dt.datetime(2020, 1, 11, tzinfo=UTC)), timeout=10
            )
            writer_seconds = time.monotonic() - started
            assert not detach.done()
            await holder.commit()
        assert writer_seconds < 2.0
        assert await asyncio.wait_for(detach, WAIT_LIMIT) == [
            "signals_y2020m01",
            "signals_y2020m02",
        ]
        assert not await _is_partition(db, "signals_y2020m01")
        rows = await _execute(_url(db), "SELECT id FROM signals_y2020m01 ORDER BY id")
        assert rows[0] == (january,)  # kept, with its rows
        assert len(rows) == 2
        names = [p.name for p in await list_partitions(db)]
        assert "signals_y2020m01" not in names
        assert "signals_y2020m03" in names
        (later,) = await _insert(db, company, dt.datetime(2020, 1, 12, tzinfo=UTC))
        assert await _partition_of(db, later) == "signals_default"

    async def test_gives_up_when_the_table_stays_locked(self, fresh_database: Database) -> None:
        db = fresh_database
        await ensure_partitions(db, start=dt.date(2020, 1, 1), months_ahead=0)
        company = await _company(db)
        async with db.engine.connect() as holder:
            await _hold_signals(holder, company)
            with pytest.raises(LockTimeoutError, match="gave up detaching signals_y2020m01"):
                await detach_partitions(
                    db, older_than=dt.date(2020, 2, 1), lock_timeout_ms=50, wait_seconds=1
                )
            await holder.rollback()
        assert await _is_partition(db, "signals_y2020m01")

    async def test_concurrently_without_default(self, fresh_database: Database) -> None:
        db = fresh_database
        await _execute(
            _url(db),
            "ALTER TABLE signals DETACH PARTITION signals_default",
            "DROP TABLE signals_default",
        )
        await ensure_partitions(db, start=dt.date(2020, 1, 1), months_ahead=2)
        company = await _company(db)
        await _insert(db, company, dt.datetime(2020, 1, 10, tzinfo=UTC))
        async with db.engine.connect() as reader:
            await reader.execute(text("SELECT count(*) FROM signals"))  # a snapshot in use
            detach = asyncio.create_task(
                detach_partitions(db, older_than=dt.date(2020, 3, 1), drop=True)
            )

            async def detach_waits() -> bool:
                return await _lock_waiters(db, "CONCURRENTLY") == 1

            await _wait_until(detach_waits, "DETACH CONCURRENTLY waiting for the reader")
            started = time.monotonic()
            await asyncio.wait_for(
                _insert(db, company, dt.datetime(2020, 3, 3, tzinfo=UTC)), timeout=10
            )
            writer_seconds = time.monotonic() - started
            assert not detach.done()  # still waiting for the reader, and the writer did not
            await reader.rollback()
        assert writer_seconds < 1.0
        assert await asyncio.wait_for(detach, WAIT_LIMIT) == [
            "signals_y2020m01",
            "signals_y2020m02",
        ]
        assert await _scalar(_url(db), "SELECT to_regclass('signals_y2020m01')") is None

    async def test_nothing_old_enough(self, fresh_database: Database) -> None:
        assert await detach_partitions(fresh_database, older_than=dt.date(2001, 1, 1)) == []

    @pytest.mark.parametrize(
        ("arguments", "field"),
        [
            ({"older_than": dt.datetime.now(UTC).date() + dt.timedelta(days=40)}, "older_than"),
            ({"older_than": dt.datetime(2020, 1, 1, tzinfo=UTC)}, "older_than"),
            ({"older_than": "2020-01-01"}, "older_than"),
            ({"older_than": dt.date(2020, 1, 1), "lock_timeout_ms": 0}, "lock_timeout_ms"),
            ({"older_than": dt.date(2020, 1, 1), "table": "alerts"}, "table"),
        ],
    )
    async def test_bad_arguments(
        self, database: Database, arguments: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(ValidationError) as caught:
            await detach_partitions(database, **arguments)
        assert caught.value.field == field

    async def test_refuses_a_connection_inside_a_transaction(self, database: Database) -> None:
        async with database.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            with pytest.raises(ValidationError, match="inside a transaction"):
                await detach_partitions(conn, older_than=dt.date(2020, 1, 1))


# --- partition pruning -----------------------------------------------------------------------


def _relations(plan: object) -> set[str]:
    """Every ``Relation Name`` in an ``EXPLAIN (FORMAT JSON)`` plan."""
    if isinstance(plan, dict):
        found = {str(plan["Relation Name"])} if "Relation Name" in plan else set()
        return found.union(*(_relations(value) for value in plan.values()))
    if isinstance(plan, list):
        return set().union(*(_relations(item) for item in plan))
    return set()


class TestPruning:
    """``get_by_company`` over 90 days reads only the partitions of those months."""

    @pytest.mark.parametrize("plan_cache_mode", ["auto", "force_generic_plan"])
    @pytest.mark.parametrize("path", ["fast", "orm"])
    async def test_ninety_days_touch_their_months_only(
        self, fresh_database: Database, plan_cache_mode: str, path: str
    ) -> None:
        db = fresh_database
        await ensure_partitions(db, start=dt.date(2030, 1, 1), months_ahead=6)
        company = await _company(db)
        await _insert(
            db, company, *(dt.datetime(2030, month, 14, tzinfo=UTC) for month in range(1, 8))
        )
        start = dt.datetime(2030, 2, 10, tzinfo=UTC)
        end = start + dt.timedelta(days=90)  # 11 May
        captured: list[tuple[str, str, Sequence[Any]]] = []

        def on_orm(*args: Any) -> None:  # before_cursor_execute(conn, cursor, sql, params, ...)
            captured.append(("orm", args[2], args[3]))

        def on_driver(record: Any) -> None:  # what the fast path sends asyncpg directly
            captured.append(("fast", record.query, record.args))

        async with db.unit_of_work() as uow:
            raw = await (await uow.session.connection()).get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.execute(f"SET plan_cache_mode = {plan_cache_mode}")
            if path == "orm":
                uow.session.add(Company(ticker="PEND", name="Pending"))  # the fast path declines
            event.listen(db.engine.sync_engine, "before_cursor_execute", on_orm)
            driver.add_query_logger(on_driver)
            try:
                found = await uow.signals.get_by_company(company, start_date=start, end_date=end)
                await asyncio.sleep(0)  # asyncpg hands its log records over on the next turn
            finally:
                driver.remove_query_logger(on_driver)
                event.remove(db.engine.sync_engine, "before_cursor_execute", on_orm)
            assert [s.event_date.month for s in found] == [4, 3, 2]
            (query,) = [item for item in captured if "FROM signals" in item[1]]
            assert query[0] == path
            # Six times: past the five custom plans of a prepared statement.  (SQLAlchemy
            # installs a json codec on the connection; without one the plan is text.)
            plans = [
                await driver.fetchval(f"EXPLAIN (FORMAT JSON) {query[1]}", *query[2])
                for _ in range(6)
            ]
            await driver.execute("RESET plan_cache_mode")
        expected = set(_months(Month(2030, 2), 4))
        for plan in plans:
            assert _relations(json.loads(plan) if isinstance(plan, str) else plan) == expected
        assert isinstance(found[0], Signal)
