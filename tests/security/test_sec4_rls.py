"""T-SEC-4: row-level security per API client, fail-closed, owner included, worker path."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from sqlalchemy import text

from biotech_ma_db import Database, NotFoundError, PermissionDeniedError, UnitOfWork

from .conftest import Figure, Secured, Tenant, new_tenant

# table -> SQL returning the owning client of each visible row
OWNERSHIP = {
    "clients": "SELECT id FROM clients",
    "alerts": "SELECT client_id FROM alerts",
    "webhooks": "SELECT client_id FROM webhooks",
    "webhook_deliveries": (
        "SELECT w.client_id FROM webhook_deliveries AS d JOIN webhooks AS w ON w.id = d.webhook_id"
    ),
    "api_keys": "SELECT client_id FROM api_keys",
}
REFERENCE_TABLES = ("companies", "drug_candidates", "signals", "ma_scores", "acquirer_matches")


async def _populate(db: Database, tenant: Tenant, label: str) -> dict[str, int]:
    """One alert, webhook, delivery and extra API key for ``tenant``, as ``app_rw``."""
    async with db.unit_of_work(client_id=tenant.client_id, actor="rls-test") as uow:
        alert = await uow.alerts.create(
            client_id=tenant.client_id, name=f"{label} alert", alert_type="signal"
        )
        webhook = await uow.webhooks.create(
            client_id=tenant.client_id, url=f"https://hooks.example.com/{label}"
        )
        delivery = await uow.webhooks.enqueue_delivery(
            webhook.id, "signal.created", {"tenant": label}, f"evt-{label}"
        )
        assert delivery is not None
        key, _ = await uow.api_keys.issue(tenant.client_id, name=f"{label} second key")
        await uow.commit()
    return {"alert": alert.id, "webhook": webhook.id, "delivery": delivery.id, "key": key.id}


async def _owners(db: Database, client_id: int | None) -> dict[str, set[int]]:
    async with db.unit_of_work(client_id=client_id) as uow:
        return {
            table: set((await uow.session.execute(text(sql))).scalars())
            for table, sql in OWNERSHIP.items()
        }


@pytest.fixture(scope="module", name="tenants")
async def fixture_tenants(rw_db: Database) -> tuple[Tenant, Tenant, dict[str, int], dict[str, int]]:
    a = await new_tenant(rw_db, "Tenant A")
    b = await new_tenant(rw_db, "Tenant B")
    rows_a = await _populate(rw_db, a, f"a{a.client_id}")
    rows_b = await _populate(rw_db, b, f"b{b.client_id}")
    return a, b, rows_a, rows_b


class TestIsolation:
    """Each client sees only its own rows in every tenant table."""

    async def test_each_tenant_sees_only_its_rows(
        self,
        rw_db: Database,
        tenants: tuple[Tenant, Tenant, dict[str, int], dict[str, int]],
        figure: Figure,
    ) -> None:
        a, b, _, rows_b = tenants
        seen_a = await _owners(rw_db, a.client_id)
        seen_b = await _owners(rw_db, b.client_id)
        assert all(owners == {a.client_id} for owners in seen_a.values()), seen_a
        assert all(owners == {b.client_id} for owners in seen_b.values()), seen_b
        async with rw_db.unit_of_work(client_id=a.client_id) as uow:
            assert await uow.alerts.get(rows_b["alert"]) is None
            assert await uow.webhooks.get(rows_b["webhook"]) is None
            assert await uow.clients.get(b.client_id) is None
            with pytest.raises(NotFoundError):
                await uow.webhooks.get_signing_secret(rows_b["webhook"])
            with pytest.raises(NotFoundError):
                await uow.alerts.update(rows_b["alert"], name="hijacked")
            with pytest.raises(NotFoundError):
                await uow.api_keys.revoke(rows_b["key"])
            with pytest.raises(PermissionDeniedError) as caught:
                await uow.alerts.create(client_id=b.client_id, name="planted", alert_type="x")
            assert caught.value.sqlstate == "42501"
        figure(
            f"{len(OWNERSHIP)} tenant tables x 2 tenants: 0 cross-tenant rows visible, "
            "cross-tenant get/update/revoke → not found, cross-tenant insert → 42501"
        )

    async def test_no_client_set_sees_nothing_and_cannot_insert(
        self,
        rw_db: Database,
        ro_db: Database,
        tenants: tuple[Tenant, Tenant, dict[str, int], dict[str, int]],
        figure: Figure,
    ) -> None:
        a, _, rows_a, _ = tenants
        for db in (rw_db, ro_db):
            seen = await _owners(db, None)
            assert seen == {table: set() for table in OWNERSHIP}
        rejected = 0
        attempts: dict[str, Callable[[UnitOfWork], Awaitable[object]]] = {
            "alert": lambda uow: uow.alerts.create(
                client_id=a.client_id, name="orphan", alert_type="signal"
            ),
            "webhook": lambda uow: uow.webhooks.create(
                client_id=a.client_id, url="https://hooks.example.com/orphan"
            ),
            "delivery": lambda uow: uow.webhooks.enqueue_delivery(
                rows_a["webhook"], "signal.created", {}, "evt-orphan"
            ),
            "api key": lambda uow: uow.api_keys.issue(a.client_id),
        }
        for make in attempts.values():
            with pytest.raises(PermissionDeniedError) as caught:
                async with rw_db.unit_of_work() as uow:
                    await make(uow)
            assert caught.value.sqlstate == "42501"
            rejected += 1
        async with rw_db.unit_of_work() as uow:
            for table in REFERENCE_TABLES:
                await uow.session.execute(text(f"SELECT count(*) FROM {table}"))
        figure(
            f"no client set: 0 rows in {len(OWNERSHIP)} tenant tables (app_rw and app_ro), "
            f"{rejected}/{len(attempts)} inserts rejected (42501); reference tables readable"
        )

    async def test_fuzzed_and_malformed_client_ids(
        self,
        secured: Secured,
        tenants: tuple[Tenant, Tenant, dict[str, int], dict[str, int]],
        figure: Figure,
    ) -> None:
        a, b, _, _ = tenants
        known = {a.client_id, b.client_id}
        rng = random.Random(20260101)  # noqa: S311 — reproducible fuzzing, not secrets
        ids = [rng.randrange(1, 2**63 - 1) for _ in range(200)] + [0, -1, 2**63 - 1]
        ids = [value for value in ids if value not in known]
        conn = await secured.connect("app_rw")
        visible = 0
        refused = 0
        try:
            for value in ids:
                async with conn.transaction():
                    await conn.execute("SELECT set_config('app.client_id', $1, true)", str(value))
                    for sql in OWNERSHIP.values():
                        visible += len(await conn.fetch(sql))
            for garbage in ("abc", "1 OR 1=1", "1; SELECT 1", "1e3", " ", "{1,2}"):
                try:
                    async with conn.transaction():
                        await conn.execute("SELECT set_config('app.client_id', $1, true)", garbage)
                        visible += len(await conn.fetch(OWNERSHIP["alerts"]))
                except asyncpg.PostgresError:
                    refused += 1
        finally:
            await conn.close()
        assert visible == 0
        figure(
            f"{len(ids)} fuzzed client ids: 0 rows; 6 malformed settings: {refused} refused "
            f"with an error, {6 - refused} saw 0 rows"
        )


class TestOwnerAndWorker:
    """FORCE RLS filters the owner too; only ``app_worker`` sees across clients."""

    async def test_owner_is_filtered(
        self,
        secured: Secured,
        tenants: tuple[Tenant, Tenant, dict[str, int], dict[str, int]],
        figure: Figure,
    ) -> None:
        a, _, _, _ = tenants
        conn = await secured.connect("app_migrator")  # its sessions run as app_owner
        try:
            assert await conn.fetchval("SELECT current_user") == "app_owner"
            unscoped = {t: len(await conn.fetch(sql)) for t, sql in OWNERSHIP.items()}
            async with conn.transaction():
                await conn.execute("SELECT set_config('app.client_id', $1, true)", str(a.client_id))
                scoped = {t: {r[0] for r in await conn.fetch(sql)} for t, sql in OWNERSHIP.items()}
        finally:
            await conn.close()
        assert unscoped == dict.fromkeys(OWNERSHIP, 0)
        assert all(owners == {a.client_id} for owners in scoped.values())
        figure("table owner without a client: 0 rows in every tenant table (FORCE RLS)")

    async def test_worker_sees_every_client_but_no_clients_or_keys(
        self,
        worker_db: Database,
        tenants: tuple[Tenant, Tenant, dict[str, int], dict[str, int]],
        figure: Figure,
    ) -> None:
        a, b, rows_a, rows_b = tenants
        seen = await _owners(worker_db, None)
        assert {a.client_id, b.client_id} <= seen["alerts"]
        assert {a.client_id, b.client_id} <= seen["webhooks"]
        assert {a.client_id, b.client_id} <= seen["webhook_deliveries"]
        assert seen["clients"] == set()
        assert seen["api_keys"] == set()
        async with worker_db.unit_of_work(actor="delivery-worker") as uow:
            claimed = await uow.webhooks.claim_due_deliveries(limit=500)
            claimed_ids = {d.id for d in claimed}
            assert {rows_a["delivery"], rows_b["delivery"]} <= claimed_ids
            secret = await uow.webhooks.get_signing_secret(rows_b["webhook"])
            assert secret
            await uow.rollback()
        figure(
            f"app_worker: claimed {len(claimed_ids)} deliveries across clients, "
            "0 client rows, 0 API keys"
        )

    async def test_app_rw_cannot_claim_other_clients_deliveries(
        self, rw_db: Database, tenants: tuple[Tenant, Tenant, dict[str, int], dict[str, int]]
    ) -> None:
        a, _, rows_a, rows_b = tenants
        async with rw_db.unit_of_work() as uow:
            assert await uow.webhooks.claim_due_deliveries(limit=500) == []
        async with rw_db.unit_of_work(client_id=a.client_id) as uow:
            claimed = {d.id for d in await uow.webhooks.claim_due_deliveries(limit=500)}
        assert rows_a["delivery"] in claimed
        assert rows_b["delivery"] not in claimed
