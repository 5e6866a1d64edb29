"""Read replicas on a real streaming replica: routing, rotation, read-your-writes, guards.

The standby is the plugin's ``replica_url`` (``pg_basebackup -R`` of the embedded primary,
a second postmaster, a physical slot); a second one is started for the tests that need
two.  Which server answered is asked inside the routed session itself:
``pg_is_in_recovery()`` and ``current_setting('port')``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from biotech_ma_db import (
    Company,
    ConsistencyToken,
    Database,
    PermissionDeniedError,
    ReadOnlyViolationError,
    UnitOfWork,
    ValidationError,
)
from biotech_ma_db.testing import databases, replica
from tests.sent_statements import SentStatements, driver_of

_POOL = {"pool_size": 2, "max_overflow": 2, "pool_timeout": 10.0}
_BOUND_S = 30.0  # every poll below gives up after this long


def _on(url: str, database: str) -> str:
    return databases.database_url(url, database)


async def _where(session: AsyncSession) -> tuple[bool, str]:
    """(in recovery, port) of the server running ``session``."""
    row = (await session.execute(text("SELECT pg_is_in_recovery(), current_setting('port')"))).one()
    return bool(row[0]), str(row[1])


async def _company_count(db: Database, ticker: str) -> int:
    async with db.session() as session:
        query = select(func.count()).select_from(Company).where(Company.ticker == ticker)
        return int(await session.scalar(query) or 0)


async def _admin(url: str, sql: str) -> object:
    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.query.get("host"), port=parsed.query.get("port"), user="postgres"
    )
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _sent(db: Database, *held: object) -> SentStatements:
    """The statements ``db`` sends to any of its servers (primary or replica) in the block.

    ``held``: asyncpg connections already checked out (see :func:`driver_of`).
    """
    engines = [db.engine, *(replica.engine for replica in db.router.replicas)]
    return SentStatements(*engines, connections=held)


async def _poll(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Await ``check()`` until it is true, at most ``_BOUND_S`` seconds."""
    deadline = time.monotonic() + _BOUND_S
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)


async def _replicated(primary_url: str, replica_urls: list[str], **settings: object) -> Database:
    """A ``Database`` on ``primary_url`` with these replicas, once they have replayed it."""
    db = Database.from_url(
        primary_url,
        read_replica_urls=",".join(replica_urls),
        replica_retry_s=0.0,
        **(_POOL | settings),
    )
    token = str(await db.consistency_token())
    for url in replica_urls:
        await replica.wait_replayed(url, token)
    return db


@pytest.fixture(scope="module", name="second_replica")
def fixture_second_replica(replica_url: str, postgres_url: str) -> Iterator[replica.ReplicaServer]:
    """Another standby of the same primary (``replica_url`` skips for us when impossible)."""
    primary = replica.primary_of(postgres_url)
    assert primary is not None
    standby = replica.start_replica(primary)
    try:
        yield standby
    finally:
        standby.close()


@pytest_asyncio.fixture(loop_scope="session", name="replicated")
async def fixture_replicated(
    fresh_database: Database, replica_url: str
) -> AsyncIterator[tuple[Database, str]]:
    """(a Database whose one replica is the standby, that replica's URL for this database)."""
    url = fresh_database.engine.url
    replica_db = _on(replica_url, url.database or "")
    db = await _replicated(url.render_as_string(hide_password=False), [replica_db])
    try:
        yield db, replica_db
    finally:
        await db.dispose()


@pytest_asyncio.fixture(loop_scope="session", name="paused_replay")
async def fixture_paused_replay(replica_url: str) -> AsyncIterator[None]:
    """WAL replay paused on the standby for the test (resumed afterwards, whatever happens)."""
    await _admin(replica_url, "SELECT pg_wal_replay_pause()")
    try:
        await _poll(
            lambda: _is(replica_url, "SELECT pg_get_wal_replay_pause_state() = 'paused'"),
            "replay did not pause",
        )
        yield
    finally:
        await _admin(replica_url, "SELECT pg_wal_replay_resume()")


async def _is(url: str, sql: str) -> bool:
    return bool(await _admin(url, sql))


async def _commit_company(db: Database, ticker: str) -> ConsistencyToken:
    async with db.unit_of_work(actor="test") as uow:
        await uow.companies.create(ticker=ticker, name=f"{ticker} Bio")
        before = uow.consistency_token
        await uow.commit()
        token = uow.consistency_token
    assert before is None  # nothing committed yet
    assert isinstance(token, ConsistencyToken)
    return token


class TestStreamingReplica:
    """The plugin's standby is a real hot standby of the primary."""

    async def test_a_committed_row_becomes_readable_on_the_replica(
        self, fresh_database: Database, replica_url: str
    ) -> None:
        async with fresh_database.unit_of_work(actor="test") as uow:
            await uow.companies.create(ticker="RPL1", name="Replicated")
            await uow.commit()
            assert uow.consistency_token is None  # no replicas configured here
        token = await fresh_database.consistency_token()
        replica_db = _on(replica_url, fresh_database.engine.url.database or "")
        await replica.wait_replayed(replica_db, str(token))
        async with Database.from_url(replica_db, **_POOL) as standby:
            assert await _company_count(standby, "RPL1") == 1
            async with standby.session() as session:
                assert (await _where(session))[0] is True

    async def test_health_reports_in_recovery_on_the_replica_only(
        self, replica_url: str, postgres_url: str
    ) -> None:
        async with Database.from_url(replica_url, **_POOL) as standby:
            report = await standby.health()
        async with Database.from_url(postgres_url, **_POOL) as primary:
            primary_report = await primary.health()
        assert report.ok is True
        assert report.in_recovery is True
        assert primary_report.in_recovery is False

    async def test_the_server_refuses_writes_on_the_replica(self, replica_url: str) -> None:
        async with Database.from_url(replica_url, **_POOL) as standby:
            with pytest.raises(PermissionDeniedError) as caught:
                async with standby.session() as session:
                    await session.execute(text("CREATE TABLE nope (id int)"))
        assert caught.value.sqlstate == "25006"


class TestReadRouting:
    """Read-only sessions and units run on a replica; everything else on the primary."""

    async def test_read_only_sessions_and_units_run_on_the_replica(
        self, replicated: tuple[Database, str]
    ) -> None:
        db, _ = replicated
        async with db.session(read_only=True) as session:
            assert (await _where(session))[0] is True
        async with db.unit_of_work(read_only=True) as uow:
            assert (await _where(uow.session))[0] is True
            assert await uow.companies.count() == 0  # repositories work there too
        async with db.session() as session:
            assert (await _where(session))[0] is False
        async with db.unit_of_work() as uow:
            assert (await _where(uow.session))[0] is False
        assert db.pool_status().replicas[0].pool.checked_out == 0

    async def test_round_robin_over_two_replicas(
        self,
        fresh_database: Database,
        replica_url: str,
        second_replica: replica.ReplicaServer,
    ) -> None:
        url = fresh_database.engine.url
        name = url.database or ""
        urls = [_on(replica_url, name), second_replica.url(name)]
        db = await _replicated(url.render_as_string(hide_password=False), urls)
        try:
            ports = []
            for _ in range(4):
                async with db.unit_of_work(read_only=True) as uow:
                    in_recovery, port = await _where(uow.session)
                    assert in_recovery is True
                    ports.append(port)
        finally:
            await db.dispose()
        assert len(set(ports)) == 2
        assert all(a != b for a, b in itertools.pairwise(ports))

    async def test_a_replica_that_stops_answering_leaves_rotation_and_comes_back(
        self,
        fresh_database: Database,
        replica_url: str,
        second_replica: replica.ReplicaServer,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        url = fresh_database.engine.url
        name = url.database or ""
        urls = [_on(replica_url, name), second_replica.url(name)]
        db = await _replicated(url.render_as_string(hide_password=False), urls)
        second_port = str(second_replica.port)
        try:
            for _ in range(2):  # both in use, connections pooled
                async with db.session(read_only=True) as session:
                    await _where(session)
            second_replica.stop()
            seen = []
            with caplog.at_level(logging.WARNING, logger="biotech_ma_db.replicas"):
                for _ in range(4):
                    async with db.session(read_only=True) as session:
                        seen.append(await _where(session))
            assert all(in_recovery for in_recovery, _ in seen)
            assert second_port not in {port for _, port in seen}
            status = db.pool_status().replicas[1]
            assert status.in_rotation is False
            assert status.error
            assert "taken out of rotation" in caplog.text

            second_replica.start()
            ports = []
            for _ in range(4):
                async with db.session(read_only=True) as session:
                    ports.append((await _where(session))[1])
            assert second_port in ports
            assert db.pool_status().replicas[1].in_rotation is True
        finally:
            await db.dispose()
            if not second_replica.running:
                second_replica.start()

    async def test_without_a_healthy_replica_reads_run_on_the_primary(
        self, fresh_database: Database, tmp_path: Path
    ) -> None:
        url = fresh_database.engine.url
        gone = _on(f"postgresql+asyncpg://postgres@/x?host={tmp_path}&port=1", url.database or "")
        db = Database.from_url(
            url.render_as_string(hide_password=False), read_replica_urls=gone, **_POOL
        )
        try:
            for _ in range(2):
                async with db.unit_of_work(read_only=True) as uow:
                    assert (await _where(uow.session))[0] is False
            assert db.pool_status().replicas[0].in_rotation is False
        finally:
            await db.dispose()

    async def test_an_unreachable_replica_at_start_up_is_a_warning(
        self, fresh_database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        url = fresh_database.engine.url
        gone = f"postgresql+asyncpg://postgres@/{url.database}?host={tmp_path}&port=1"
        with caplog.at_level(logging.WARNING, logger="biotech_ma_db.replicas"):
            async with Database.from_url(
                url.render_as_string(hide_password=False), read_replica_urls=gone, **_POOL
            ) as db:
                assert db.pool_status().replicas[0].in_rotation is False
                async with db.session(read_only=True) as session:
                    assert (await _where(session))[0] is False
        assert "taken out of rotation" in caplog.text

    async def test_health_and_pool_status_report_each_replica(
        self, fresh_database: Database, replica_url: str
    ) -> None:
        url = fresh_database.engine.url
        # Trust authentication ignores the password: it is here to be hidden.
        with_password = make_url(_on(replica_url, url.database or "")).set(password="s3cret")
        db = await _replicated(
            url.render_as_string(hide_password=False),
            [with_password.render_as_string(hide_password=False)],
        )
        try:
            report = await db.health()
            assert report.ok is True
            assert report.in_recovery is False
            (status,) = report.replicas
            assert status.in_rotation is True
            assert isinstance(status.lag_bytes, int)
            assert status.lag_bytes >= 0
            assert status.lag_seconds is not None
            assert "s3cret" not in status.url
            assert "***" in status.url
            pooled = db.pool_status()
            assert pooled.size == 2  # the primary's fields are unchanged
            assert pooled.replicas[0].pool.size == 2
            assert pooled.replicas[0].pool.checked_out == 0
        finally:
            await db.dispose()


class TestReadOnlyWrites:
    """A write on a read-only session raises on the client, and nothing is written."""

    @pytest.fixture(params=["replica", "primary"], name="reader")
    def fixture_reader(self, request: pytest.FixtureRequest, fresh_database: Database) -> Database:
        """A database whose read-only units run on the replica, or one without replicas."""
        if request.param == "primary":
            return fresh_database
        db: Database = request.getfixturevalue("replicated")[0]
        return db

    async def _refused(
        self, db: Database, write: Callable[[UnitOfWork], Awaitable[object]], ticker: str
    ) -> None:
        async with db.unit_of_work(read_only=True, actor="test") as uow:
            await uow.companies.count()  # the transaction has begun: only the write is left
            held = await driver_of(uow.session)
            async with _sent(db, held) as recorder:
                with pytest.raises(ReadOnlyViolationError) as caught:
                    await write(uow)
            assert caught.value.sqlstate == "25006"
            assert recorder.sent == []  # refused before any SQL
            uow.session.expunge_all()  # drop the refused objects, if any
            async with _sent(db, held) as control:
                await uow.session.execute(text("SELECT 1"))
            assert control.sent  # ... which this recorder would have seen
        assert await _company_count(db, ticker) == 0

    async def test_orm_flush(self, reader: Database) -> None:
        async def write(uow: UnitOfWork) -> None:
            await uow.companies.create(ticker="RO01", name="Refused")

        await self._refused(reader, write, "RO01")

    async def test_core_dml(self, reader: Database) -> None:
        async with reader.unit_of_work(actor="test") as uow:
            await uow.companies.create(ticker="RO02", name="Kept")
            await uow.commit()

        async def write(uow: UnitOfWork) -> None:
            await uow.session.execute(update(Company).values(name="Changed"))

        async def insert_one(uow: UnitOfWork) -> None:
            await uow.session.execute(insert(Company).values(ticker="RO03", name="Refused"))

        await self._refused(reader, write, "RO03")
        await self._refused(reader, insert_one, "RO03")
        async with reader.session() as session:
            assert await session.scalar(select(Company.name).where(Company.ticker == "RO02")) == (
                "Kept"
            )

    async def test_copy_ingest(self, reader: Database) -> None:
        async with reader.unit_of_work(actor="test") as uow:
            company = await uow.companies.create(ticker="RO04", name="Has signals")
            await uow.commit()

        async def write(uow: UnitOfWork) -> None:
            await uow.signals.bulk_ingest(
                [
                    {
                        "company_id": company.id,
                        "signal_type": "news",
                        "event_date": dt.datetime(2025, 1, 2, tzinfo=dt.UTC),
                        "title": "refused",
                    }
                ]
            )

        await self._refused(reader, write, "RO05")
        async with reader.unit_of_work() as uow:
            assert await uow.signals.count() == 0

    async def test_upsert(self, reader: Database) -> None:
        async def write(uow: UnitOfWork) -> None:
            await uow.companies.upsert_many(
                [{"ticker": "RO06", "name": "Refused", "market_cap_usd": Decimal("1.00")}]
            )

        await self._refused(reader, write, "RO06")

    async def test_read_only_session_refuses_before_any_sql(self, reader: Database) -> None:
        async with reader.session(read_only=True) as session:
            session.add(Company(ticker="RO07", name="Refused"))
            async with _sent(reader) as recorder:
                with pytest.raises(ReadOnlyViolationError):
                    await session.flush()
            assert recorder.sent == []
            session.expunge_all()
        assert await _company_count(reader, "RO07") == 0


class TestReadYourWrites:
    """A consistency token makes a read see the commit, on the replica or the primary."""

    async def test_the_token_is_the_commits_wal_position(
        self, replicated: tuple[Database, str]
    ) -> None:
        db, replica_db = replicated
        token = await _commit_company(db, "RYW1")
        assert ConsistencyToken.parse(str(token)) == token
        await replica.wait_replayed(replica_db, str(token))
        async with db.unit_of_work(read_only=True, consistency=token) as uow:
            assert (await _where(uow.session))[0] is True
            assert await uow.companies.count() == 1
            assert uow.consistency_token is None  # read-only units make no token

    async def test_paused_replay(
        self, replicated: tuple[Database, str], replica_url: str, paused_replay: None
    ) -> None:
        db, replica_db = replicated
        token = await _commit_company(db, "RYW2")
        # The standby has received the commit, it just does not replay it.
        await _poll(
            lambda: _is(replica_db, f"SELECT pg_last_wal_receive_lsn() >= '{token}'::pg_lsn"),
            "the standby did not receive the commit",
        )

        async with db.unit_of_work(read_only=True, consistency=token, consistency_wait=0.05) as uow:
            assert (await _where(uow.session))[0] is False  # the primary
            assert await uow.companies.count() == 1
        async with db.unit_of_work(read_only=True) as uow:
            assert (await _where(uow.session))[0] is True  # the replica, allowed to be stale
            assert await uow.companies.count() == 0

        strict = Database.from_url(
            db.engine.url.render_as_string(hide_password=False),
            read_replica_urls=replica_db,
            max_replica_lag_s=0.001,
            **_POOL,
        )
        try:
            async with strict.session(read_only=True) as session:
                assert (await _where(session))[0] is False  # lags too much: the primary
            lag = strict.pool_status().replicas[0].lag_seconds
            assert lag is not None
            assert lag > 0.001

            await _admin(replica_url, "SELECT pg_wal_replay_resume()")
            async with db.unit_of_work(
                read_only=True, consistency=token, consistency_wait=_BOUND_S
            ) as uow:
                assert (await _where(uow.session))[0] is True  # back on the replica
                assert await uow.companies.count() == 1
            async with strict.session(read_only=True) as session:
                assert (await _where(session))[0] is True
            assert strict.pool_status().replicas[0].lag_seconds == 0
        finally:
            await strict.dispose()

    async def test_a_token_read_waits_for_the_replay(
        self, replicated: tuple[Database, str], replica_url: str, paused_replay: None
    ) -> None:
        db, _ = replicated
        token = await _commit_company(db, "RYW3")

        async def read() -> tuple[bool, int]:
            async with db.unit_of_work(
                read_only=True, consistency=token, consistency_wait=_BOUND_S
            ) as uow:
                return (await _where(uow.session))[0], await uow.companies.count()

        waiting = asyncio.create_task(read())

        async def holds_a_replica_connection() -> bool:
            return db.pool_status().replicas[0].pool.checked_out == 1

        await _poll(holds_a_replica_connection, "the read did not start waiting")
        assert not waiting.done()
        await _admin(replica_url, "SELECT pg_wal_replay_resume()")
        assert await waiting == (True, 1)

    async def test_bad_consistency_arguments_are_refused(self, fresh_database: Database) -> None:
        with pytest.raises(ValidationError):
            fresh_database.unit_of_work(read_only=True, consistency="0/1")  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            fresh_database.unit_of_work(read_only=True, consistency_wait=float("nan"))
        with pytest.raises(ValidationError):
            ConsistencyToken.parse("nonsense")
