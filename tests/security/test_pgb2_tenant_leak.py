"""T-PGB-2: the client scope never leaks between requests through pgbouncer (transaction mode).

Reuses the reliability harness (:class:`PgCluster` on 127.0.0.1, :class:`PgBouncer` in
transaction mode with ``default_pool_size=2``).  The database is provisioned with the
library's roles and migrated as ``app_migrator`` over a direct connection; the requests go
through pgbouncer as ``app_rw``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from biotech_ma_db import Database, migrations
from biotech_ma_db.roles import provision_roles
from biotech_ma_db.unit_of_work import UnitOfWork
from tests.reliability.harness import LOOPBACK, PgBouncer, PgCluster, pgbouncer_binary, run_async

from .conftest import Figure, Tenant, new_tenant

pytestmark = pytest.mark.skipif(
    pgbouncer_binary() is None,
    reason="pgbouncer is not installed (apt-get install pgbouncer); T-PGB-2 needs it",
)

DATABASE = "pgb_tenants"
REQUESTS = 50


class _TenantBouncer(PgBouncer):
    """The harness's pgbouncer, also knowing the application role."""

    def start(self) -> None:
        super().start()
        (self.root / "users.txt").write_text('"postgres" ""\n"app_rw" ""\n')
        assert self.pid is not None
        os.kill(self.pid, signal.SIGHUP)  # reload: re-reads auth_file
        time.sleep(0.3)


@dataclass(frozen=True)
class Pooled:
    cluster: PgCluster
    bouncer: PgBouncer

    @property
    def bouncer_url(self) -> str:
        return f"postgresql+asyncpg://app_rw@{LOOPBACK}:{self.bouncer.port}/{DATABASE}"

    async def raw(self) -> asyncpg.Connection:
        """A raw connection through pgbouncer (no statement cache, as the pooler needs)."""
        return await asyncpg.connect(
            host=LOOPBACK,
            port=self.bouncer.port,
            user="app_rw",
            database=DATABASE,
            statement_cache_size=0,
            timeout=10,
        )


@pytest.fixture(scope="module", name="pooled")
def fixture_pooled() -> Iterator[Pooled]:
    root = Path(tempfile.mkdtemp(prefix="bmadb-pgb2-"))
    root.chmod(0o755)
    cluster = PgCluster(root / "pg", settings={"fsync": "off", "synchronous_commit": "off"})
    bouncer = _TenantBouncer(root / "pgb", target_port=cluster.port, pool_size=2)
    try:
        cluster.init()
        cluster.start()
        admin = cluster.admin()
        run_async(lambda: admin.execute(f"CREATE DATABASE {DATABASE}"))
        provision_roles(cluster.url("postgres"), database=DATABASE)
        migrations.upgrade(cluster.url(DATABASE, user="app_migrator"))
        bouncer.start()
        yield Pooled(cluster, bouncer)
    finally:
        bouncer.stop()
        cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)


async def _tenant_request(db: Database, tenant: Tenant) -> int:
    async with db.unit_of_work(client_id=tenant.client_id) as uow:
        return len(await uow.alerts.list_for_client(tenant.client_id))


async def _anonymous_request(uow: UnitOfWork) -> tuple[int, str | None]:
    async with uow:
        visible = (await uow.session.execute(text("SELECT count(*) FROM alerts"))).scalar_one()
        setting = (
            await uow.session.execute(text("SELECT current_setting('app.client_id', true)"))
        ).scalar_one()
    return int(visible), setting


def _leaked(setting: str | None) -> bool:
    return setting not in (None, "")


class TestTenantScopeThroughPgbouncer:
    """50 tenant requests interleaved with 50 tenant-less ones; then poisoned connections."""

    async def test_no_leak(self, pooled: Pooled, figure: Figure) -> None:
        db = Database.from_url(
            pooled.bouncer_url,
            pgbouncer=True,
            pool_size=4,
            max_overflow=0,
            application_name="sec-pgb2",
        )
        try:
            tenant = await new_tenant(db, "Pooled tenant")
            async with db.unit_of_work(client_id=tenant.client_id) as uow:
                for n in range(3):
                    await uow.alerts.create(
                        client_id=tenant.client_id, name=f"alert {n}", alert_type="signal"
                    )
                await uow.commit()

            rows_seen = guc_leaks = 0
            for _ in range(REQUESTS):
                mine, (visible, setting) = await asyncio.gather(
                    _tenant_request(db, tenant), _anonymous_request(db.unit_of_work())
                )
                assert mine == 3
                rows_seen += visible > 0
                guc_leaks += _leaked(setting)

            # The anti-pattern, for comparison: a session-level SET through the pooler.
            baseline = 0
            for _ in range(REQUESTS):
                setter, reader = await pooled.raw(), await pooled.raw()
                try:
                    await setter.execute(f"SET app.client_id = '{tenant.client_id}'")
                    baseline += (await reader.fetchval("SELECT count(*) FROM alerts")) > 0
                finally:
                    await setter.close()
                    await reader.close()

            # Now the server connections are poisoned: tenant-less library requests.
            poisoned_rows = poisoned_guc = 0
            unprotected = 0
            for _ in range(REQUESTS):
                visible, setting = await _anonymous_request(db.unit_of_work())
                poisoned_rows += visible > 0
                poisoned_guc += _leaked(setting)
                # Without the per-transaction reset (reset_client_scope=False):
                bare = UnitOfWork(db.sessionmaker, security=db.security)
                visible, _ = await _anonymous_request(bare)
                unprotected += visible > 0
        finally:
            await db.dispose()
        assert rows_seen == 0
        assert guc_leaks == 0
        assert poisoned_rows == 0
        assert poisoned_guc == 0
        assert baseline > 0
        figure(
            f"{REQUESTS} tenant + {REQUESTS} tenant-less requests: {rows_seen}/{REQUESTS} "
            f"rows visible, {guc_leaks}/{REQUESTS} leaked settings (set_config(..., true)); "
            f"baseline session SET: {baseline}/{REQUESTS} leaked; after poisoning: "
            f"{poisoned_rows}/{REQUESTS} rows visible with the library's reset "
            f"({unprotected}/{REQUESTS} without it)"
        )
