"""T-SEC-4 through FastAPI: an API key scopes the request's unit of work to its client.

The app runs as ``app_rw`` (row-level security applies; the superuser would bypass it),
and its handlers deliberately ask for *every* row: only the policies keep the other
client's rows out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import text

from biotech_ma_db import Database
from biotech_ma_db.fastapi import (
    ClientDep,
    ClientUnitOfWorkDep,
    ReadOnlyClientUnitOfWorkDep,
    database_lifespan,
    install_error_handlers,
)

from .conftest import Figure, Secured, Tenant, new_tenant

OWNERS_SQL = {
    "clients": "SELECT id FROM clients",
    "alerts": "SELECT client_id FROM alerts",
    "api_keys": "SELECT client_id FROM api_keys",
}


class NewAlert(BaseModel):
    """Body of ``POST /alerts``: ``client_id`` is normally the caller's own."""

    name: str
    client_id: int | None = None


def build_app(db: Database) -> FastAPI:
    app = FastAPI(lifespan=database_lifespan(db))
    install_error_handlers(app)

    @app.post("/alerts", status_code=201)
    async def create_alert(
        body: NewAlert, uow: ClientUnitOfWorkDep, client: ClientDep
    ) -> dict[str, int]:
        owner = body.client_id if body.client_id is not None else client.id
        alert = await uow.alerts.create(client_id=owner, name=body.name, alert_type="signal")
        return {"id": alert.id}

    @app.get("/alerts/{alert_id}")
    async def read_alert(alert_id: int, uow: ReadOnlyClientUnitOfWorkDep) -> dict[str, int]:
        alert = await uow.alerts.get_or_raise(alert_id)
        return {"client_id": alert.client_id}

    @app.get("/owners")
    async def owners(uow: ReadOnlyClientUnitOfWorkDep) -> dict[str, list[int]]:
        """The owner of every row the request can see, in each tenant table (no WHERE)."""
        return {
            table: sorted(set((await uow.session.execute(text(sql))).scalars()))
            for table, sql in OWNERS_SQL.items()
        }

    @app.get("/role")
    async def role(uow: ReadOnlyClientUnitOfWorkDep) -> dict[str, object]:
        row = (
            await uow.session.execute(
                text(
                    "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles "
                    "WHERE rolname = current_user"
                )
            )
        ).one()
        return {"user": row[0], "super": row[1], "bypass": row[2]}

    return app


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://api.test"
        ) as client,
    ):
        yield client


@pytest.fixture(name="app_db")
async def fixture_app_db(secured: Secured) -> AsyncIterator[Database]:
    """The app as ``app_rw``, on two connections: tenants take turns on the same ones."""
    db = Database.from_url(
        secured.url("app_rw"), application_name="sec-test-fastapi", pool_size=2, max_overflow=0
    )
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture(scope="module", name="tenants")
async def fixture_tenants(rw_db: Database) -> tuple[Tenant, Tenant]:
    return await new_tenant(rw_db, "FastAPI Fund A"), await new_tenant(rw_db, "FastAPI Fund B")


def key(tenant: Tenant) -> dict[str, str]:
    return {"X-API-Key": tenant.api_key}


class TestClientIsolation:
    """Client A's key never reads or writes client B's rows."""

    async def test_each_key_sees_only_its_client(
        self, app_db: Database, tenants: tuple[Tenant, Tenant], figure: Figure
    ) -> None:
        a, b = tenants
        async with serve(build_app(app_db)) as client:
            role = (await client.get("/role", headers=key(a))).json()
            assert role == {"user": "app_rw", "super": False, "bypass": False}
            created: dict[int, list[int]] = {a.client_id: [], b.client_id: []}
            for tenant in (a, b):
                for n in range(3):
                    response = await client.post(
                        "/alerts", json={"name": f"alert {n}"}, headers=key(tenant)
                    )
                    assert response.status_code == 201, response.text
                    created[tenant.client_id].append(response.json()["id"])

            # Interleaved and concurrent on a pool of 2: every connection serves both.
            turns = [a, b] * 50
            answers = await asyncio.gather(
                *(client.get("/owners", headers=key(tenant)) for tenant in turns)
            )
            leaks = 0
            for tenant, answer in zip(turns, answers, strict=True):
                assert answer.status_code == 200, answer.text
                seen = answer.json()
                leaks += sum(owners != [tenant.client_id] for owners in seen.values())
            assert leaks == 0

            foreign = await client.get(f"/alerts/{created[b.client_id][0]}", headers=key(a))
            own = await client.get(f"/alerts/{created[a.client_id][0]}", headers=key(a))
            planted = await client.post(
                "/alerts", json={"name": "planted", "client_id": b.client_id}, headers=key(a)
            )
            assert app_db.pool_status().checked_out == 0
        assert foreign.status_code == 404
        assert own.json() == {"client_id": a.client_id}
        assert planted.status_code == 403
        assert planted.json()["error"] == "permission_denied"
        figure(
            f"{len(turns)} interleaved requests x {len(OWNERS_SQL)} tenant tables on a pool "
            "of 2 as app_rw: 0 foreign rows seen; foreign alert → 404, foreign insert → 403"
        )


class TestAuthentication:
    """Without a live key there is no unit of work at all."""

    async def test_missing_wrong_and_revoked_keys_are_401(
        self, app_db: Database, rw_db: Database, tenants: tuple[Tenant, Tenant], figure: Figure
    ) -> None:
        a, _ = tenants
        async with rw_db.unit_of_work(client_id=a.client_id) as uow:
            issued, revoked_key = await uow.api_keys.issue(a.client_id, name="to revoke")
            await uow.api_keys.revoke(issued.id)
            await uow.commit()
        attempts = {
            "missing": {},
            "empty": {"X-API-Key": ""},
            "malformed": {"X-API-Key": "not-a-key"},
            "unknown": {"X-API-Key": "bmap_live_" + "x" * 43},
            "revoked": {"X-API-Key": revoked_key},
            "other header": {"Authorization": f"Bearer {a.api_key}"},
        }
        async with serve(build_app(app_db)) as client:
            answers = {
                name: await client.get("/owners", headers=headers)
                for name, headers in attempts.items()
            }
            accepted = await client.get("/owners", headers=key(a))
        assert {name: r.status_code for name, r in answers.items()} == dict.fromkeys(attempts, 401)
        assert {r.headers["WWW-Authenticate"] for r in answers.values()} == {"APIKey"}
        assert len({r.text for r in answers.values()}) == 1  # the answer never says why
        assert accepted.status_code == 200
        figure(f"{len(attempts)} bad credentials → 401 with one body; the live key → 200")
