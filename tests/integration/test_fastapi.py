"""The FastAPI integration on a real app, driven through httpx, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import func, select, text

from biotech_ma_db import Company, Database, UnitOfWork
from biotech_ma_db.fastapi import (
    DatabaseDep,
    ReadOnlyUnitOfWorkDep,
    UnitOfWorkDep,
    database_lifespan,
    install_error_handlers,
    unit_of_work,
)

DEFERRED_TABLE = "fastapi_deferred_keys"
# Module level: with `from __future__ import annotations`, FastAPI resolves the handlers'
# annotations in the module's globals.
LabelledUnitOfWork = Annotated[
    UnitOfWork, unit_of_work(actor="importer@api", reason="nightly import")
]


class NewCompany(BaseModel):
    """Body of ``POST /companies``."""

    ticker: str
    name: str


class Probe:
    """What the handlers saw: pool use while they held a unit of work, and a gate."""

    def __init__(self) -> None:
        self.checked_out: list[int] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()


def build_app(source: Database, probe: Probe) -> FastAPI:
    """An app with one route per behaviour under test."""
    app = FastAPI(lifespan=database_lifespan(source))
    install_error_handlers(app)

    @app.post("/companies", status_code=201)
    async def create_company(
        body: NewCompany, uow: UnitOfWorkDep, db: DatabaseDep
    ) -> dict[str, int]:
        company = await uow.companies.create(ticker=body.ticker, name=body.name)
        probe.checked_out.append(db.pool_status().checked_out)
        return {"id": company.id}

    @app.get("/companies/{company_id}")
    async def read_company(company_id: int, uow: ReadOnlyUnitOfWorkDep) -> dict[str, str]:
        company = await uow.companies.get_or_raise(company_id)
        return {"ticker": company.ticker}

    @app.post("/companies/refused", status_code=201)
    async def create_then_refuse(body: NewCompany, uow: UnitOfWorkDep) -> dict[str, int]:
        company = await uow.companies.create(ticker=body.ticker, name=body.name)
        raise HTTPException(status_code=400, detail=f"refused after writing {company.id}")

    @app.post("/companies/crash", status_code=201)
    async def create_then_crash(body: NewCompany, uow: UnitOfWorkDep) -> dict[str, int]:
        await uow.companies.create(ticker=body.ticker, name=body.name)
        raise RuntimeError("the handler failed after writing")

    @app.post("/companies/unflushed", status_code=201)
    async def add_unflushed(body: NewCompany, uow: UnitOfWorkDep) -> dict[str, str]:
        uow.session.add(Company(ticker=body.ticker, name=body.name))  # flushed by the commit
        return {"status": "accepted"}

    @app.post("/deferred/{key}", status_code=201)
    async def deferred_duplicate(key: int, uow: UnitOfWorkDep) -> dict[str, str]:
        insert = text(f"INSERT INTO {DEFERRED_TABLE} (k) VALUES (:k)")
        await uow.session.execute(insert, {"k": key})
        await uow.session.execute(insert, {"k": key})  # checked only at COMMIT
        return {"status": "accepted"}

    @app.post("/companies/read-only", status_code=201)
    async def write_read_only(body: NewCompany, uow: ReadOnlyUnitOfWorkDep) -> dict[str, int]:
        company = await uow.companies.create(ticker=body.ticker, name=body.name)
        return {"id": company.id}

    @app.get("/slow")
    async def slow(uow: ReadOnlyUnitOfWorkDep) -> dict[str, str]:
        await uow.session.execute(text("SET LOCAL statement_timeout = 50"))
        await uow.session.execute(text("SELECT pg_sleep(5)"))
        return {"status": "done"}

    @app.get("/held")
    async def held(uow: UnitOfWorkDep) -> dict[str, str]:
        await uow.companies.count()  # the unit of work now holds a connection
        probe.entered.set()
        await probe.release.wait()
        return {"status": "released"}

    return app


@asynccontextmanager
async def serve(
    app: FastAPI, *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and an httpx client that talks to it in process."""
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(
                app=manager.app, raise_app_exceptions=raise_app_exceptions
            ),
            base_url="http://api.test",
        ) as client,
    ):
        yield client


def url_of(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


async def count_companies(db: Database, prefix: str) -> int:
    """Companies whose ticker starts with ``prefix``, seen from ``db``'s own connection."""
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Company).where(Company.ticker.startswith(prefix))
        )
    return int(count or 0)


@pytest.fixture(name="probe")
def fixture_probe() -> Probe:
    return Probe()


@pytest.fixture(name="app_db")
async def fixture_app_db(fresh_database: Database) -> AsyncIterator[Database]:
    """The app's own ``Database`` on the fresh database: 5 connections, no overflow."""
    db = Database.from_url(url_of(fresh_database), pool_size=5, max_overflow=0, pool_timeout=30.0)
    try:
        yield db
    finally:
        await db.dispose()


class TestUnitOfWorkPerRequest:
    """One unit of work per request: committed on return, rolled back on raise, never leaked."""

    async def test_200_concurrent_requests_on_a_pool_of_5(
        self, app_db: Database, fresh_database: Database, probe: Probe
    ) -> None:
        """Writes, reads, misses and refusals at once; the pool ends idle, only writes stay."""
        async with fresh_database.unit_of_work() as uow:
            existing = await uow.companies.create(ticker="EXIST", name="Existing Bio")
            await uow.commit()
        async with serve(build_app(app_db, probe)) as client:

            async def one(i: int) -> tuple[int, int]:
                kind = i % 4
                if kind == 0:
                    body = {"ticker": f"W{i}", "name": f"Written {i}"}
                    response = await client.post("/companies", json=body)
                elif kind == 1:
                    response = await client.get(f"/companies/{existing.id}")
                elif kind == 2:
                    response = await client.get(f"/companies/{existing.id + 10_000 + i}")
                else:
                    body = {"ticker": f"R{i}", "name": f"Refused {i}"}
                    response = await client.post("/companies/refused", json=body)
                return kind, response.status_code

            results = await asyncio.gather(*(one(i) for i in range(200)))
            status_by_kind = {kind: {s for k, s in results if k == kind} for kind in range(4)}
            assert status_by_kind == {0: {201}, 1: {200}, 2: {404}, 3: {400}}
            status = app_db.pool_status()
            assert (status.checked_out, status.size, status.overflow) == (0, 5, 0)
        assert max(probe.checked_out) == 5  # the pool was saturated, never exceeded
        assert await count_companies(fresh_database, "W") == 50
        assert await count_companies(fresh_database, "R") == 0

    async def test_a_handler_that_raises_leaves_nothing_written(
        self, app_db: Database, fresh_database: Database, probe: Probe
    ) -> None:
        """An unexpected exception after a flushed insert: 500, and the insert is gone."""
        async with serve(build_app(app_db, probe), raise_app_exceptions=False) as client:
            response = await client.post(
                "/companies/crash", json={"ticker": "CRASH", "name": "Crashed Bio"}
            )
            assert response.status_code == 500
            assert app_db.pool_status().checked_out == 0
        assert await count_companies(fresh_database, "CRASH") == 0

    async def test_a_commit_that_fails_is_the_answer(
        self, app_db: Database, fresh_database: Database, probe: Probe
    ) -> None:
        """A unique key checked only at COMMIT fails there: the client gets 409, not 201."""
        async with fresh_database.session() as session:
            await session.execute(
                text(
                    f"CREATE TABLE {DEFERRED_TABLE} (k integer, CONSTRAINT {DEFERRED_TABLE}_k "
                    "UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)"
                )
            )
        async with serve(build_app(app_db, probe)) as client:
            response = await client.post("/deferred/7")
            assert response.status_code == 409, response.text
            assert response.json()["error"] == "conflict"
            assert app_db.pool_status().checked_out == 0
        async with fresh_database.session() as session:
            left = await session.scalar(text(f"SELECT count(*) FROM {DEFERRED_TABLE}"))
        assert left == 0

    async def test_a_conflict_found_by_the_commit_flush_is_409(
        self, app_db: Database, fresh_database: Database, probe: Probe
    ) -> None:
        """An object the handler only added is flushed by the commit; its conflict is 409."""
        async with serve(build_app(app_db, probe)) as client:
            first = await client.post("/companies", json={"ticker": "TWICE", "name": "First"})
            second = await client.post(
                "/companies/unflushed", json={"ticker": "TWICE", "name": "Second"}
            )
        assert first.status_code == 201
        assert second.status_code == 409, second.text
        assert second.json()["columns"] == ["ticker"]
        assert await count_companies(fresh_database, "TWICE") == 1

    async def test_the_read_only_unit_refuses_writes(
        self, app_db: Database, fresh_database: Database, probe: Probe
    ) -> None:
        """``ReadOnlyUnitOfWorkDep`` starts READ ONLY transactions: a write is 403."""
        async with serve(build_app(app_db, probe)) as client:
            response = await client.post(
                "/companies/read-only", json={"ticker": "RO", "name": "Read Only"}
            )
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "permission_denied"
        assert await count_companies(fresh_database, "RO") == 0

    async def test_a_cancelled_request_gives_its_connection_back(
        self, app_db: Database, probe: Probe
    ) -> None:
        """The client goes away while the handler holds a connection: it is returned."""
        async with serve(build_app(app_db, probe)) as client:
            request = asyncio.create_task(client.get("/held"))
            await probe.entered.wait()
            assert app_db.pool_status().checked_out == 1
            request.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await request
            assert app_db.pool_status().checked_out == 0
            probe.release.set()
            probe.entered.clear()
            again = await client.get("/held")  # the pool still serves
            assert again.status_code == 200


class TestAuditLabels:
    """``unit_of_work(actor=..., reason=...)`` labels what the request changes."""

    async def test_actor_and_reason_reach_the_audit_log(
        self, app_db: Database, fresh_database: Database
    ) -> None:
        app = FastAPI(lifespan=database_lifespan(app_db))

        @app.post("/labelled", status_code=201)
        async def create(body: NewCompany, uow: LabelledUnitOfWork) -> dict[str, int]:
            company = await uow.companies.create(ticker=body.ticker, name=body.name)
            return {"id": company.id}

        async with serve(app) as client:
            response = await client.post("/labelled", json={"ticker": "LBL", "name": "Label"})
        assert response.status_code == 201
        async with fresh_database.unit_of_work(read_only=True) as uow:
            history = await uow.audit_log.for_row("companies", response.json()["id"])
        assert [(h.actor, h.reason, h.action) for h in history] == [
            ("importer@api", "nightly import", "insert")
        ]


class TestErrors:
    """Typed errors become HTTP answers whose bodies hold no bound value."""

    async def test_not_found_conflict_and_invalid_input(
        self, app_db: Database, probe: Probe
    ) -> None:
        async with serve(build_app(app_db, probe)) as client:
            missing = await client.get("/companies/987654321")
            created = await client.post("/companies", json={"ticker": "SECRT", "name": "Kept"})
            duplicate = await client.post(
                "/companies", json={"ticker": "SECRT", "name": "Private Name Ltd"}
            )
            invalid = await client.post(
                "/companies", json={"ticker": "lower case!", "name": "Nope"}
            )
        assert missing.status_code == 404
        assert missing.json() == {"error": "not_found", "detail": "Company not found"}
        assert created.status_code == 201
        assert duplicate.status_code == 409
        assert duplicate.json()["error"] == "conflict"
        assert duplicate.json()["columns"] == ["ticker"]
        assert "SECRT" not in duplicate.text
        assert "Private Name" not in duplicate.text
        assert invalid.status_code == 422
        assert invalid.json()["error"] == "validation"
        assert invalid.json()["field"] == "ticker"
        assert "does not match" in invalid.json()["detail"]  # the sender's own value may show

    async def test_pool_exhausted_is_503_with_retry_after(self, fresh_database: Database) -> None:
        """Every connection is taken and none frees up within pool_timeout."""
        db = Database.from_url(
            url_of(fresh_database), pool_size=1, max_overflow=0, pool_timeout=0.2
        )
        async with serve(build_app(db, Probe())) as client, db.engine.connect() as taken:
            await taken.execute(text("SELECT 1"))
            response = await client.get("/companies/1")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json()["error"] == "pool_exhausted"
        assert "pool" not in response.json()["detail"]  # no internals in the answer

    async def test_query_timeout_is_503_with_retry_after(
        self, app_db: Database, probe: Probe
    ) -> None:
        """A statement cancelled by statement_timeout (57014)."""
        async with serve(build_app(app_db, probe)) as client:
            response = await client.get("/slow")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json()["error"] == "query_timeout"
        assert app_db.pool_status().checked_out == 0


class TestLifespan:
    """The lifespan opens one Database for the app and disposes it at shutdown."""

    async def test_shutdown_closes_every_connection(
        self, fresh_database: Database, probe: Probe
    ) -> None:
        label = f"fastapi-life-{uuid.uuid4().hex[:8]}"
        db = Database.from_url(url_of(fresh_database), application_name=label, pool_size=3)
        sql = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :label")
        async with serve(build_app(db, probe)) as client:
            responses = await asyncio.gather(*(client.get("/companies/1") for _ in range(3)))
            assert {r.status_code for r in responses} == {404}
            async with fresh_database.session() as session:
                assert await session.scalar(sql, {"label": label}) >= 1
        async with fresh_database.session() as session:
            assert await session.scalar(sql, {"label": label}) == 0

    async def test_the_lifespan_builds_the_database_at_startup(
        self, fresh_database: Database, monkeypatch: pytest.MonkeyPatch, probe: Probe
    ) -> None:
        """With no argument it reads the environment when the app starts, not before."""
        app = FastAPI(lifespan=database_lifespan())
        seen: list[Database] = []

        @app.get("/which")
        async def which(db: DatabaseDep) -> dict[str, str]:
            seen.append(db)
            return {"database": str(db.engine.url.database)}

        monkeypatch.setenv("DATABASE_URL", url_of(fresh_database))
        async with serve(app) as client:
            first = await client.get("/which")
            second = await client.get("/which")
        assert first.json() == {"database": fresh_database.engine.url.database}
        assert second.status_code == 200
        assert seen[0] is seen[1]  # one Database for the app

    async def test_without_the_lifespan_the_error_says_what_to_do(self) -> None:
        app = FastAPI()

        @app.get("/db")
        async def needs_db(db: DatabaseDep) -> dict[str, str]:
            return {"url": str(db.engine.url)}

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            with pytest.raises(RuntimeError, match=r"lifespan=database_lifespan"):
                await client.get("/db")
