"""``biotech_ma_db.tracing`` on real PostgreSQL: unit spans, statement spans under them, logs.

Spans go to the OpenTelemetry SDK's ``InMemorySpanExporter`` through a tracer provider of
the test's own (the global one is never touched).  A retry is provoked for real: the
unit reads a row under SERIALIZABLE, another connection updates and commits it, and the
unit's own update then fails with 40001.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from biotech_ma_db import CompanyRepository, Database
from biotech_ma_db.errors import ConflictError, SerializationFailureError
from biotech_ma_db.testing import databases, replica
from biotech_ma_db.tracing import UNIT_SPAN_NAME, JsonLogFormatter, instrument, uninstrument
from biotech_ma_db.unit_of_work import UnitOfWork

PREFIX = "biotech_ma_db.unit_of_work."


@dataclass
class Traced:
    """An instrumented database and the spans it exported."""

    db: Database
    exporter: InMemorySpanExporter
    provider: TracerProvider

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def units(self) -> list[ReadableSpan]:
        return [span for span in self.spans() if span.name == UNIT_SPAN_NAME]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        return [
            span
            for span in self.spans()
            if span.parent is not None and span.parent.span_id == parent.context.span_id
        ]


@pytest_asyncio.fixture(loop_scope="session", name="traced")
async def fixture_traced(fresh_database: Database) -> AsyncIterator[Traced]:
    """``fresh_database`` instrumented with an in-memory exporter; uninstrumented after."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(fresh_database, tracer_provider=provider)
    try:
        yield Traced(fresh_database, exporter, provider)
    finally:
        uninstrument(fresh_database)
        provider.shutdown()


@pytest.fixture(name="cursor_statements")
def fixture_cursor_statements(traced: Traced) -> Iterator[list[str]]:
    """Every statement SQLAlchemy's cursor events see (the fast path's do not pass there)."""
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    engine = traced.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


async def _company(db: Database, ticker: str) -> int:
    async with db.unit_of_work(actor="test") as uow:
        company = await uow.companies.create(ticker=ticker, name=f"{ticker} Therapeutics")
        await uow.commit()
        return company.id


async def _connect(db: Database) -> asyncpg.Connection:
    """A raw asyncpg connection to ``db``'s database: untraced, outside every unit."""
    url = make_url(db.engine.url.render_as_string(hide_password=False))
    params: dict[str, object] = {"user": url.username, "database": url.database}
    host = url.query.get("host", url.host)
    if host:
        params["host"] = host
    if url.port:
        params["port"] = url.port
    if url.password:
        params["password"] = url.password
    return await asyncpg.connect(**params, timeout=10)


class TestUnitSpans:
    """One span per unit of work, its statements as children."""

    async def test_statements_are_children_of_the_unit_span(
        self, traced: Traced, cursor_statements: list[str]
    ) -> None:
        await _company(traced.db, "TRC")
        traced.exporter.clear()
        cursor_statements.clear()

        async with traced.db.unit_of_work() as uow:
            found = await uow.companies.get_by_ticker("TRC")  # the fast path
            assert found is not None
            assert await uow.companies.count() >= 1  # the ORM path

        (unit,) = traced.units()
        statements = traced.children(unit)
        texts = [str((span.attributes or {}).get("db.statement")) for span in statements]
        assert len(statements) == 2, texts
        fast = [t for t in texts if t not in cursor_statements]
        assert len(fast) == 1, (texts, cursor_statements)
        assert "ticker" in fast[0]
        assert all(span.kind.name == "CLIENT" for span in statements)
        assert all((span.attributes or {}).get("db.system") == "postgresql" for span in statements)
        assert unit.status.status_code is StatusCode.UNSET
        attributes = unit.attributes or {}
        assert attributes[PREFIX + "outcome"] == "rolled_back"  # left without commit()
        assert attributes[PREFIX + "attempt"] == 1
        assert attributes[PREFIX + "read_only"] is False
        assert len(str(attributes[PREFIX + "id"])) == 16
        assert float(str(attributes[PREFIX + "duration_ms"])) > 0

    async def test_attributes_of_a_committed_read_only_unit(self, traced: Traced) -> None:
        async with traced.db.unit_of_work(
            read_only=True, client_id=42, isolation_level="REPEATABLE READ"
        ) as uow:
            await uow.session.execute(text("SELECT 1"))
            await uow.commit()

        (unit,) = traced.units()
        attributes = unit.attributes or {}
        assert attributes[PREFIX + "outcome"] == "committed"
        assert attributes[PREFIX + "read_only"] is True
        assert attributes[PREFIX + "isolation_level"] == "REPEATABLE READ"
        assert attributes["biotech_ma_db.client_id"] == 42
        texts = [str((s.attributes or {}).get("db.statement")) for s in traced.children(unit)]
        assert any("SET TRANSACTION" in t for t in texts), texts
        assert any("set_config" in t for t in texts), texts
        assert "SELECT 1" in texts

    async def test_a_failing_unit_records_the_typed_error(self, traced: Traced) -> None:
        await _company(traced.db, "DUP")
        traced.exporter.clear()

        with pytest.raises(ConflictError) as raised:
            async with traced.db.unit_of_work() as uow:
                await uow.companies.create(ticker="DUP", name="Second")
                await uow.commit()

        (unit,) = traced.units()
        assert unit.status.status_code is StatusCode.ERROR
        assert (unit.attributes or {})[PREFIX + "outcome"] == type(raised.value).__name__
        (exception,) = [e for e in unit.events if e.name == "exception"]
        event_attributes = exception.attributes or {}
        assert str(event_attributes["exception.type"]).startswith("biotech_ma_db.errors.")
        assert "SQLSTATE 23505" in str(event_attributes["exception.message"])
        assert "test_a_failing_unit_records_the_typed_error" in str(
            event_attributes["exception.stacktrace"]
        )
        failed = [s for s in traced.children(unit) if s.status.status_code is StatusCode.ERROR]
        assert len(failed) == 1
        assert "SQLSTATE 23505" in str(failed[0].status.description)

    async def test_a_retried_unit_has_a_span_per_attempt(self, traced: Traced) -> None:
        company_id = await _company(traced.db, "RETRY")
        other = await _connect(traced.db)
        calls = 0

        async def rename(uow: UnitOfWork) -> None:
            nonlocal calls
            calls += 1
            company = await uow.companies.get(company_id)  # the snapshot is taken here
            assert company is not None
            if calls == 1:
                # Committed after the snapshot: the update below must fail with 40001.
                await other.execute(
                    "UPDATE companies SET name = 'Elsewhere' WHERE id = $1", company_id
                )
            await uow.companies.update(company_id, name=f"Renamed {calls}")

        traced.exporter.clear()
        try:
            await traced.db.run_in_transaction(
                rename, isolation_level="SERIALIZABLE", base_delay=0.001
            )
        finally:
            await other.close()

        assert calls == 2
        first, second = sorted(
            traced.units(), key=lambda s: (s.attributes or {})[PREFIX + "attempt"]
        )
        assert (first.attributes or {})[PREFIX + "attempt"] == 1
        assert (first.attributes or {})[PREFIX + "outcome"] == SerializationFailureError.__name__
        assert first.status.status_code is StatusCode.ERROR
        assert (second.attributes or {})[PREFIX + "attempt"] == 2
        assert (second.attributes or {})[PREFIX + "outcome"] == "committed"
        assert second.status.status_code is StatusCode.UNSET

    async def test_a_fast_read_outside_a_unit_nests_under_the_callers_span(
        self, traced: Traced, cursor_statements: list[str]
    ) -> None:
        await _company(traced.db, "PLAIN")
        traced.exporter.clear()
        cursor_statements.clear()
        tracer = traced.provider.get_tracer("test")
        with tracer.start_as_current_span("request") as request:
            async with traced.db.session() as session:
                assert await CompanyRepository(session).get_by_ticker("PLAIN") is not None
        (statement,) = [s for s in traced.spans() if s.name != "request"]
        assert statement.parent is not None
        assert statement.parent.span_id == request.get_span_context().span_id
        assert cursor_statements == []  # a borrowed connection, past SQLAlchemy's cursor

    async def test_a_unit_on_a_read_replica_is_traced(
        self, fresh_database: Database, replica_url: str
    ) -> None:
        primary = fresh_database.engine.url
        standby = databases.database_url(replica_url, primary.database or "")
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        db = Database.from_url(
            primary.render_as_string(hide_password=False),
            read_replica_urls=standby,
            replica_retry_s=0.0,
            pool_size=2,
            max_overflow=0,
        )
        try:
            await replica.wait_replayed(standby, str(await db.consistency_token()))
            instrument(db, tracer_provider=provider)
            async with db.unit_of_work(read_only=True) as uow:
                bind = uow.session.sync_session.bind
                assert bind is not None
                assert bind.engine is db.router.replicas[0].engine.sync_engine
                await uow.companies.get_by_ticker("NONE")  # the fast path, on the replica
                await uow.companies.count()
        finally:
            uninstrument(db)
            await db.dispose()
        spans = exporter.get_finished_spans()
        (unit,) = [span for span in spans if span.name == UNIT_SPAN_NAME]
        assert unit.context is not None
        children = [s for s in spans if s.parent and s.parent.span_id == unit.context.span_id]
        texts = [str((s.attributes or {}).get("db.statement")) for s in children]
        assert any("ticker" in t for t in texts), texts
        assert any("count" in t for t in texts), texts

    async def test_uninstrument_stops_every_span(self, traced: Traced) -> None:
        instrument(traced.db, tracer_provider=traced.provider)  # twice: still one of each
        async with traced.db.unit_of_work() as uow:
            await uow.companies.get_by_ticker("NONE")
        assert len(traced.units()) == 1
        assert len(traced.spans()) == 2

        uninstrument(traced.db)
        traced.exporter.clear()
        async with traced.db.unit_of_work() as uow:
            await uow.companies.get_by_ticker("NONE")
            await uow.companies.count()
        assert traced.spans() == []


class TestLogs:
    """One DEBUG record per unit, and the retry's INFO record, as JSON with their fields."""

    async def test_unit_and_retry_records_as_json(
        self, fresh_database: Database, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="biotech_ma_db")
        secret = "sk_live_parameter_never_logged"
        attempts = 0

        async def flaky(uow: UnitOfWork) -> None:
            nonlocal attempts
            attempts += 1
            await uow.companies.create(ticker=f"LOG{attempts}", name=secret)
            if attempts == 1:
                raise SerializationFailureError("provoked", sqlstate="40001")

        await fresh_database.run_in_transaction(flaky, client_id=None, base_delay=0.001)
        async with fresh_database.unit_of_work(client_id=7, read_only=True) as uow:
            await uow.companies.get_by_ticker(secret)

        formatter = JsonLogFormatter()
        lines = [
            formatter.format(record)
            for record in caplog.records
            if record.name in {"biotech_ma_db.unit_of_work", "biotech_ma_db.retry"}
        ]
        assert all(secret not in line for line in lines)
        entries = [json.loads(line) for line in lines]
        units = [e for e in entries if e["logger"] == "biotech_ma_db.unit_of_work"]
        assert [(e["attempt"], e["outcome"]) for e in units] == [
            (1, "SerializationFailureError"),
            (2, "committed"),
            (1, "rolled_back"),
        ]
        for entry in units:
            assert entry["level"] == "DEBUG"
            assert {"unit_id", "client_id", "read_only", "duration_ms"} <= entry.keys()
            assert entry["duration_ms"] >= 0
        assert units[2]["client_id"] == 7
        assert units[2]["read_only"] is True
        (retry,) = [e for e in entries if e["logger"] == "biotech_ma_db.retry"]
        assert retry["level"] == "INFO"
        assert retry["attempt"] == 1
        assert retry["attempts"] == 4
        assert retry["outcome"] == "SerializationFailureError"
        assert retry["sqlstate"] == "40001"
        assert retry["message"].startswith("retrying unit of work")


class TestMissingExtra:
    """Without OpenTelemetry, the import says which extra to install."""

    def test_import_error_names_the_extra(self) -> None:
        script = (
            "import sys\n"
            "sys.modules['opentelemetry'] = None\n"
            "try:\n"
            "    import biotech_ma_db.tracing\n"
            "except ImportError as exc:\n"
            "    print(exc)\n"
            "else:\n"
            "    print('imported')\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
        )
        assert "pip install 'biotech-ma-db[tracing]'" in result.stdout, result
