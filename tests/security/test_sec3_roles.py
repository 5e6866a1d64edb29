"""T-SEC-3: least-privilege roles; what the application roles cannot do, and default grants."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from biotech_ma_db import migrations
from biotech_ma_db.cli import app
from biotech_ma_db.roles import APP_ROLES, provision_roles

from .conftest import Figure, Secured

# Everything here must fail with 42501 for every application role.
FORBIDDEN = (
    "CREATE TABLE sneaky (i int)",
    "CREATE TEMP TABLE sneaky (i int)",
    "CREATE SCHEMA sneaky",
    "CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE VIEW sneaky AS SELECT 1",
    "CREATE EXTENSION pg_trgm",
    "ALTER TABLE companies ADD COLUMN sneaky int",
    "ALTER TABLE companies OWNER TO CURRENT_USER",
    "CREATE INDEX sneaky ON companies (name)",
    "COMMENT ON TABLE companies IS 'sneaky'",
    "DROP TABLE companies",
    "DROP TABLE alerts",
    "TRUNCATE companies",
    "TRUNCATE alerts",
    "TRUNCATE audit_log",
    "ALTER TABLE alerts DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE alerts NO FORCE ROW LEVEL SECURITY",
    "ALTER TABLE clients DISABLE ROW LEVEL SECURITY",
    "DROP POLICY alerts_tenant ON alerts",
    "CREATE POLICY sneaky ON alerts USING (true)",
    "ALTER POLICY alerts_tenant ON alerts USING (true)",
    "SET ROLE app_owner",
    "SET ROLE app_migrator",
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION app_owner",
    "ALTER ROLE CURRENT_USER BYPASSRLS",
    "ALTER ROLE CURRENT_USER SUPERUSER",
    "GRANT app_owner TO CURRENT_USER",
    "CREATE ROLE sneaky",
    "UPDATE alembic_version SET version_num = 'sneaky'",
    "DELETE FROM alembic_version",
    "UPDATE audit_log SET actor = 'sneaky'",
    "DELETE FROM audit_log",
    "COPY companies TO PROGRAM 'true'",
    "SELECT pg_read_file('/etc/passwd')",
    "ALTER FUNCTION app_is_worker() OWNER TO CURRENT_USER",
    "CREATE OR REPLACE FUNCTION app_is_worker() RETURNS boolean LANGUAGE sql AS 'SELECT true'",
)

READ_WRITE = "SET TRANSACTION READ WRITE"

# row_security = off makes any query that a policy would filter fail (42501).
ROW_SECURITY_OFF = ("SET row_security = off", "SELECT count(*) FROM alerts")

APP_RO_WRITES = (
    "INSERT INTO companies (ticker, name) VALUES ('ROX', 'Read-only Inc')",
    "UPDATE companies SET name = name",
    "DELETE FROM companies",
    "SELECT nextval(pg_get_serial_sequence('companies', 'id'))",
)


async def _sqlstate(conn: asyncpg.Connection, *statements: str) -> str | None:
    """SQLSTATE of the first failing statement (run in one transaction), else None."""
    try:
        async with conn.transaction():
            for statement in statements:
                await conn.execute(statement)
    except asyncpg.PostgresError as exc:
        return str(exc.sqlstate)
    return None


class TestForbiddenOperations:
    """``app_rw``, ``app_ro`` and ``app_worker``: no DDL, TRUNCATE, RLS changes, owner."""

    async def test_every_forbidden_operation_is_42501(
        self, secured: Secured, figure: Figure
    ) -> None:
        results: dict[tuple[str, str], str | None] = {}
        for role in APP_ROLES:
            conn = await secured.connect(role)
            try:
                # READ WRITE first: app_ro may leave its read-only default, so the barrier
                # that counts is the privilege check.
                for statement in FORBIDDEN:
                    results[role, statement] = await _sqlstate(conn, READ_WRITE, statement)
                results[role, "row_security=off"] = await _sqlstate(
                    conn, READ_WRITE, *ROW_SECURITY_OFF
                )
            finally:
                await conn.close()
        wrong = {key: state for key, state in results.items() if state != "42501"}
        assert wrong == {}
        figure(
            f"{len(results)} forbidden ops ({len(FORBIDDEN) + 1} x {len(APP_ROLES)} roles), "
            f"{sum(state == '42501' for state in results.values())} x 42501"
        )

    async def test_app_ro_cannot_write_even_after_leaving_read_only(
        self, secured: Secured, figure: Figure
    ) -> None:
        conn = await secured.connect("app_ro")
        try:
            as_configured = [await _sqlstate(conn, sql) for sql in APP_RO_WRITES[:3]]
            read_write = [await _sqlstate(conn, READ_WRITE, sql) for sql in APP_RO_WRITES]
            assert await conn.fetchval("SELECT count(*) >= 0 FROM companies")
        finally:
            await conn.close()
        assert as_configured == ["25006"] * 3
        assert read_write == ["42501"] * len(APP_RO_WRITES)
        figure(
            f"app_ro: {len(as_configured)} writes x 25006 (read-only default), "
            f"{len(read_write)} x 42501 after SET TRANSACTION READ WRITE"
        )


class TestRoleAttributes:
    """The roles hold exactly the powers of RELIABILITY.md §3.5."""

    async def test_catalog(self, secured: Secured) -> None:
        conn = await secured.connect("app_ro")
        try:
            roles = {
                row["rolname"]: row
                for row in await conn.fetch(
                    "SELECT rolname, rolsuper, rolbypassrls, rolcanlogin, rolcreaterole, "
                    "rolcreatedb, pg_has_role(rolname, 'app_owner', 'MEMBER') AS owner "
                    "FROM pg_roles WHERE rolname LIKE 'app\\_%'"
                )
            }
            owners = {
                row[0]
                for row in await conn.fetch(
                    "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
                    "WHERE relnamespace = 'public'::regnamespace"
                )
            }
            privileges = await conn.fetch(
                "SELECT tablename, "
                "has_table_privilege('app_rw', tablename, 'INSERT') AS rw_insert, "
                "has_table_privilege('app_rw', tablename, 'TRUNCATE') AS rw_truncate, "
                "has_table_privilege('app_rw', tablename, 'UPDATE') AS rw_update, "
                "has_table_privilege('app_ro', tablename, 'SELECT') AS ro_select, "
                "has_table_privilege('app_ro', tablename, 'INSERT') AS ro_insert "
                "FROM pg_tables WHERE schemaname = 'public'"
            )
            rls = {
                row["relname"]: (row["relrowsecurity"], row["relforcerowsecurity"])
                for row in await conn.fetch(
                    "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                    "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
                )
            }
        finally:
            await conn.close()
        assert owners == {"app_owner"}
        assert not roles["app_owner"]["rolcanlogin"]
        for name in ("app_rw", "app_ro", "app_worker", "app_migrator"):
            role = roles[name]
            assert role["rolcanlogin"]
            assert not role["rolsuper"]
            assert not role["rolbypassrls"]
            assert not role["rolcreaterole"]
            assert not role["rolcreatedb"]
            assert role["owner"] is (name == "app_migrator")
        for row in privileges:
            table = row["tablename"]
            assert row["ro_select"], table
            assert not row["ro_insert"], table
            assert not row["rw_truncate"], table
            assert row["rw_insert"] is (table != "alembic_version"), table
            assert row["rw_update"] is (table not in {"alembic_version", "audit_log"}), table
        tenant_tables = {"clients", "alerts", "webhooks", "webhook_deliveries", "api_keys"}
        assert {t for t, flags in rls.items() if flags == (True, True)} == tenant_tables


class TestDefaultPrivileges:
    """A table created by a later migration is usable by the application roles at once."""

    async def test_new_table_is_usable_without_another_grant(
        self, secured: Secured, figure: Figure
    ) -> None:
        migrator = await secured.connect("app_migrator")
        try:
            assert await migrator.fetchval("SELECT current_user") == "app_owner"
            await migrator.execute(
                "CREATE TABLE later_feature (id bigint GENERATED BY DEFAULT AS IDENTITY "
                "PRIMARY KEY, note text)"
            )
            rw = await secured.connect("app_rw")
            ro = await secured.connect("app_ro")
            try:
                await rw.execute("INSERT INTO later_feature (note) VALUES ('from app_rw')")
                assert await rw.fetchval("SELECT count(*) FROM later_feature") == 1
                assert await ro.fetchval("SELECT note FROM later_feature") == "from app_rw"
                assert await _sqlstate(rw, "TRUNCATE later_feature") == "42501"
                assert await _sqlstate(rw, "DROP TABLE later_feature") == "42501"
            finally:
                await rw.close()
                await ro.close()
        finally:
            await migrator.execute("DROP TABLE IF EXISTS later_feature")
            await migrator.close()
        figure(
            "table created by app_migrator: app_rw INSERT/SELECT ok, app_ro SELECT ok, "
            "no extra GRANT"
        )


class TestIdempotentProvisioning:
    """Running provisioning again (and concurrently) changes nothing and repairs drift."""

    async def test_rerun_repairs_a_stray_membership(
        self, secured: Secured, postgres_url: str
    ) -> None:
        admin = await asyncpg.connect(**secured.connect_kwargs("postgres"))
        try:
            await admin.execute("GRANT app_owner TO app_rw")
            reports = await asyncio.gather(
                *(
                    asyncio.to_thread(provision_roles, postgres_url, database=secured.name)
                    for _ in range(3)
                )
            )
            assert all(not report.created for report in reports)
            assert not await admin.fetchval("SELECT pg_has_role('app_rw', 'app_owner', 'MEMBER')")
        finally:
            await admin.execute("REVOKE app_owner FROM app_rw")
            await admin.close()

    async def test_cli_provisions_a_new_database(
        self, postgres_url: str, empty_database_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        database = str(make_url(empty_database_url).database)
        monkeypatch.setenv("APP_RO_PASSWORD", "ro-p%@ss:w/rd")
        result = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["provision-roles", "--admin-url", postgres_url, "--database", database],
        )
        assert result.exit_code == 0, result.output
        assert "passwords set: app_ro" in result.output
        assert "ro-p%@ss:w/rd" not in result.output
        conn = await asyncpg.connect(**Secured(postgres_url, database).connect_kwargs("app_rw"))
        try:
            assert await conn.fetchval(
                "SELECT has_database_privilege('app_rw', $1, 'CONNECT')", database
            )
            assert not await conn.fetchval(
                "SELECT has_database_privilege('app_rw', $1, 'TEMPORARY')", database
            )
        finally:
            await conn.close()

    async def test_adopt_a_database_migrated_by_another_role(
        self, postgres_url: str, empty_database_url: str
    ) -> None:
        database = str(make_url(empty_database_url).database)
        await asyncio.to_thread(migrations.upgrade, empty_database_url)  # as the superuser
        report = await asyncio.to_thread(
            provision_roles, postgres_url, database=database, adopt_existing=True
        )
        assert report.adopted > 10
        place = Secured(postgres_url, database)
        rw = await place.connect("app_rw")
        try:
            owners = await rw.fetch(
                "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class "
                "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'S')"
            )
            assert {row[0] for row in owners} == {"app_owner"}
            await rw.execute("INSERT INTO companies (ticker, name) VALUES ('ADOPT', 'Adopted')")
            assert await _sqlstate(rw, "DELETE FROM audit_log") == "42501"
            assert await _sqlstate(rw, "ALTER TABLE alerts DISABLE ROW LEVEL SECURITY") == "42501"
        finally:
            await rw.close()

    def test_unknown_password_role_is_refused(self, secured: Secured, postgres_url: str) -> None:
        from biotech_ma_db.roles import RoleProvisioningError  # noqa: PLC0415

        with pytest.raises(RoleProvisioningError, match="login roles"):
            provision_roles(postgres_url, database=secured.name, passwords={"app_owner": "x"})
