"""T-SEC-2: TLS policy against Debian's PostgreSQL 15 with a CA made at test time.

The server accepts TCP only over TLS with SCRAM passwords.  The production preset
(``ENVIRONMENT=production``, ``DB_SSL_MODE=verify-full``, ``DB_SSL_ROOT_CERT``) must connect
with the right CA and host name and refuse a wrong host name/IP, an unknown CA and a server
without TLS; migrations run as ``app_migrator`` over the same verified TLS.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from typer.testing import CliRunner

from biotech_ma_db import Database, DatabaseSettings, SettingsError, migrations
from biotech_ma_db.cli import app
from biotech_ma_db.roles import provision_roles

from .conftest import Figure
from .tls import NonTlsServer, TlsPostgres, pg15_available

pytestmark = pytest.mark.skipif(
    not pg15_available(), reason="Debian's postgresql-15 server binaries are not installed"
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DATABASE = "sec_tls"
RW_PASSWORD = "rw-p%@ss:w/rd-1"
MIGRATOR_PASSWORD = "mig-p%@ss:w/rd-2"


@dataclass(frozen=True)
class TlsSetup:
    server: TlsPostgres
    migrate_exit: int
    migrate_output: str


def _settings(server: TlsPostgres, **overrides: Any) -> DatabaseSettings:
    values: dict[str, Any] = {
        "environment": "production",
        "postgres_host": "localhost",
        "postgres_port": server.port,
        "postgres_db": DATABASE,
        "postgres_user": "app_rw",
        "postgres_password": RW_PASSWORD,
        "ssl_mode": "verify-full",
        "ssl_root_cert": server.tls.ca,
        "api_key_pepper": "tls-test-pepper",
        "connect_timeout_s": 5.0,
        "pool_size": 1,
        "max_overflow": 0,
        **overrides,
    }
    return DatabaseSettings(**values)


async def _probe(settings: DatabaseSettings) -> tuple[bool, str]:
    db = Database(settings)
    try:
        report = await db.health()
        return report.ok, report.error or ""
    finally:
        await db.dispose()


@pytest.fixture(scope="module", name="tls_setup")
def fixture_tls_setup() -> Iterator[TlsSetup]:
    """PG15 with TLS; roles provisioned (passwords as SCRAM); migrated over verified TLS."""
    root = Path(tempfile.mkdtemp(prefix="bmadb-tls-"))
    server = TlsPostgres(root).start()
    try:
        asyncio.run(_create_database(server))
        provision_roles(
            server.admin_url(),
            database=DATABASE,
            passwords={"app_rw": RW_PASSWORD, "app_migrator": MIGRATOR_PASSWORD},
        )
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DATABASE_", "POSTGRES_", "DB_", "MIGRATION_"))
        }
        env.update(
            ENVIRONMENT="production",
            POSTGRES_HOST="localhost",
            POSTGRES_PORT=str(server.port),
            POSTGRES_DB=DATABASE,
            POSTGRES_USER="app_rw",
            POSTGRES_PASSWORD=RW_PASSWORD,
            MIGRATION_DATABASE_URL=(
                f"postgresql://app_migrator:{_quote(MIGRATOR_PASSWORD)}@localhost:"
                f"{server.port}/{DATABASE}"
            ),
            DB_SSL_MODE="verify-full",
            DB_SSL_ROOT_CERT=str(server.tls.ca),
        )
        done = asyncio.run(_alembic(env))
        yield TlsSetup(server, *done)
    finally:
        server.stop()


def _quote(value: str) -> str:
    from urllib.parse import quote  # noqa: PLC0415

    return quote(value, safe="")


async def _create_database(server: TlsPostgres) -> None:
    conn = await server.admin()
    try:
        await conn.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await conn.close()


async def _alembic(env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alembic",
        "upgrade",
        "head",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


@pytest_asyncio.fixture(name="non_tls_server")
async def fixture_non_tls_server() -> AsyncIterator[NonTlsServer]:
    server = await NonTlsServer().start()
    try:
        yield server
    finally:
        await server.close()


class TestTlsPolicy:
    """verify-full with the right CA and host only; every weaker path refused."""

    async def test_production_preset_connects_verified(
        self, tls_setup: TlsSetup, figure: Figure
    ) -> None:
        server = tls_setup.server
        assert tls_setup.migrate_exit == 0, tls_setup.migrate_output
        assert MIGRATOR_PASSWORD not in tls_setup.migrate_output
        db = Database(_settings(server))
        try:
            async with db.unit_of_work(actor="tls-test") as uow:
                row = (
                    await uow.session.execute(
                        text(
                            "SELECT s.ssl, s.version, current_user, "
                            "(SELECT version_num FROM alembic_version), "
                            "(SELECT tableowner FROM pg_tables WHERE tablename = 'companies') "
                            "FROM pg_stat_ssl AS s WHERE s.pid = pg_backend_pid()"
                        )
                    )
                ).one()
                client, _ = await uow.clients.create_with_api_key("Over TLS")
                await uow.rollback()
        finally:
            await db.dispose()
        used_tls, version, user, revision, owner = row
        assert used_tls is True
        assert version in {"TLSv1.2", "TLSv1.3"}
        assert (user, owner) == ("app_rw", "app_owner")
        assert revision is not None
        assert client.id > 0
        log = server.server_log()
        plaintext = sum(log.count(p) for p in (RW_PASSWORD, MIGRATOR_PASSWORD))
        assert plaintext == 0
        assert "SCRAM-SHA-256$" in log  # provisioning sent verifiers (log_statement=all)
        figure(
            f"production preset: {version} to PG15 as app_rw (verify-full, test CA); "
            "alembic upgrade as app_migrator over TLS exit 0; 0 plaintext passwords in the "
            "server log (log_statement=all)"
        )

    async def test_refusals(
        self, tls_setup: TlsSetup, non_tls_server: NonTlsServer, figure: Figure
    ) -> None:
        server = tls_setup.server
        outcomes = {
            "IP address instead of the certificate's host name": await _probe(
                _settings(server, postgres_host="127.0.0.1")
            ),
            "certificate from an unknown CA": await _probe(
                _settings(server, ssl_root_cert=server.tls.other_ca)
            ),
            "verify-full without a CA file (system store)": await _probe(
                _settings(server, ssl_root_cert=None)
            ),
            "server without TLS": await _probe(
                _settings(server, postgres_port=non_tls_server.port)
            ),
        }
        for name, (ok, error) in outcomes.items():
            assert not ok, name
            assert RW_PASSWORD not in error
        assert "SSLCertVerificationError" in outcomes["certificate from an unknown CA"][1]
        assert non_tls_server.ssl_requests >= 1
        assert non_tls_server.plaintext_startups == 0
        figure(
            f"{len(outcomes)}/{len(outcomes)} refused (wrong host/IP, unknown CA, no CA file, "
            f"no TLS); the non-TLS server got {non_tls_server.ssl_requests} TLS request(s) "
            "and 0 plaintext startups"
        )

    async def test_weaker_modes_are_why(
        self, tls_setup: TlsSetup, non_tls_server: NonTlsServer, figure: Figure
    ) -> None:
        """Baselines: ``require`` trusts any certificate; ``prefer`` falls back to plain."""
        server = tls_setup.server
        ok, _ = await _probe(
            _settings(
                server,
                environment="development",
                ssl_mode="require",
                ssl_root_cert=None,
                postgres_host="127.0.0.1",
            )
        )
        assert ok  # encrypted, but to whoever answered
        ok, _ = await _probe(
            _settings(
                server,
                environment="development",
                ssl_mode="prefer",
                postgres_port=non_tls_server.port,
            )
        )
        assert not ok
        assert non_tls_server.plaintext_startups == 1
        sent = b"".join(non_tls_server.captured)
        assert RW_PASSWORD.encode() in sent  # the password went out in clear text
        figure(
            "baseline: sslmode=require connected without verifying the certificate; "
            "sslmode=prefer sent the password in clear to a server without TLS"
        )

    async def test_cli_migrations_use_the_tls_settings(self, tls_setup: TlsSetup) -> None:
        server = tls_setup.server
        env = {
            "DB_SSL_MODE": "verify-full",
            "DB_SSL_ROOT_CERT": str(server.tls.ca),
            "DATABASE_URL": "",
            "ENVIRONMENT": "development",
        }
        runner = CliRunner()
        outcomes = {}
        for host in ("localhost", "127.0.0.1"):
            url = f"postgresql://app_rw:{_quote(RW_PASSWORD)}@{host}:{server.port}/{DATABASE}"
            result = await asyncio.to_thread(
                runner.invoke, app, ["migrate", "current", "--url", url], env=env
            )
            assert RW_PASSWORD not in result.output
            outcomes[host] = (result.exit_code, result.output.strip())
        assert outcomes["localhost"][0] == 0, outcomes
        assert outcomes["localhost"][1].endswith(migrations.heads()[0])
        assert outcomes["127.0.0.1"][0] != 0

    @pytest.mark.parametrize("mode", ["disable", "allow", "prefer", "require", "verify-ca"])
    def test_production_refuses_weaker_modes(self, mode: str) -> None:
        with pytest.raises(SettingsError, match="DB_SSL_MODE"):
            DatabaseSettings(
                environment="production",
                postgres_host="localhost",
                postgres_password="pw",
                ssl_mode=mode,
            )
        with pytest.raises(SettingsError, match="DB_SSL_MODE"):
            DatabaseSettings(
                environment="production",
                database_url=f"postgresql://u:pw@db.example.com/x?sslmode={mode}",
            )

    def test_verify_full_context(self, tmp_path: Path) -> None:
        context = DatabaseSettings(ssl_mode="verify-full").ssl_context()
        assert isinstance(context, ssl.SSLContext)
        assert context.check_hostname is True
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
        assert DatabaseSettings(ssl_mode="prefer").ssl_context() == "prefer"
