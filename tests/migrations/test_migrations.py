"""Migrations: one head, clean round trips, models equal to head, safe concurrent deploys."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from biotech_ma_db import MigrationError, migrations
from biotech_ma_db.models import Base

from .helpers import clean_env, run_alembic, scalars

SPECIAL_PASSWORD = "p%@ss:w/rd"
HEAD = migrations.heads()[0]


async def _user_relations(url: str) -> list[object]:
    """Tables, sequences, views and types in ``public`` other than Alembic's version table."""
    return await scalars(
        url,
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND relname NOT IN ('alembic_version', 'alembic_version_pkc')"
        " UNION ALL SELECT typname FROM pg_type WHERE typnamespace = 'public'::regnamespace"
        " AND typtype <> 'c' AND typname NOT LIKE '\\_%' AND typname <> 'alembic_version'",
    )


# Partitions (signals_y2026m03, signals_default) are not tables of the models.
_NOT_A_PARTITION = "NOT coalesce((SELECT relispartition FROM pg_class WHERE oid = {oid}), false)"
_TABLE_OID = "format('%I.%I', {schema}, {table})::regclass"


async def _tables(url: str) -> set[object]:
    oid = _TABLE_OID.format(schema="schemaname", table="tablename")
    rows = await scalars(
        url,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        f" AND {_NOT_A_PARTITION.format(oid=oid)}",
    )
    return set(rows) - {"alembic_version"}


async def _invalid_indexes(url: str) -> list[object]:
    return await scalars(
        url, "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid"
    )


class TestRevisionGraph:
    """The scripts form one line of revisions, each with an upgrade and a downgrade."""

    def test_single_head(self) -> None:
        assert len(migrations.heads()) == 1

    def test_history_is_linear_from_base_to_head(self) -> None:
        history = [revision for revision, _ in migrations.history()]
        assert history[0] == "0001"
        assert history[-1] == migrations.heads()[0]
        assert len(set(history)) == len(history)

    def test_every_revision_downgrades(self) -> None:
        script = ScriptDirectory.from_config(migrations.alembic_config())
        for revision in script.walk_revisions():
            assert callable(getattr(revision.module, "upgrade", None)), revision.revision
            assert callable(getattr(revision.module, "downgrade", None)), revision.revision


class TestUpgradeFromEmpty:
    """``upgrade head`` on an empty database creates exactly the models' tables."""

    async def test_creates_every_table(self, empty_database_url: str) -> None:
        await asyncio.to_thread(migrations.upgrade, empty_database_url)
        assert await _tables(empty_database_url) == set(Base.metadata.tables)
        assert await asyncio.to_thread(migrations.current, empty_database_url) == HEAD

    async def test_current_is_none_before_any_migration(self, empty_database_url: str) -> None:
        assert await asyncio.to_thread(migrations.current, empty_database_url) is None


class TestStairway:
    """Each revision goes up, down and up again, and ``base`` leaves nothing behind."""

    async def test_up_down_up_every_revision(self, empty_database_url: str) -> None:
        url = empty_database_url
        revisions = [revision for revision, _ in migrations.history()]
        for previous, revision in zip(["base", *revisions], revisions, strict=False):
            await asyncio.to_thread(migrations.upgrade, url, revision)
            await asyncio.to_thread(migrations.downgrade, url, previous)
            await asyncio.to_thread(migrations.upgrade, url, revision)
            assert await asyncio.to_thread(migrations.current, url) == revision
        assert await asyncio.to_thread(migrations.check_schema, url) == []
        await asyncio.to_thread(migrations.downgrade, url, "base")
        assert await _user_relations(url) == []
        assert await asyncio.to_thread(migrations.current, url) is None


class TestModelsMatchHead:
    """The head schema and the models agree, and drift is reported when they do not."""

    async def test_check_schema_finds_nothing(self, migrated_database_url: str) -> None:
        assert await asyncio.to_thread(migrations.check_schema, migrated_database_url) == []

    async def test_alembic_check_finds_nothing(self, migrated_database_url: str) -> None:
        config = migrations.alembic_config(make_url(migrated_database_url))
        await asyncio.to_thread(command.check, config)

    async def test_drift_is_reported(self, empty_database_url: str) -> None:
        url = empty_database_url
        await asyncio.to_thread(migrations.upgrade, url)
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("ALTER TABLE companies ADD COLUMN stray int"))
                await conn.execute(text("ALTER TABLE reports ALTER COLUMN title TYPE varchar(20)"))
                await conn.execute(text("DROP INDEX ix_companies_ticker"))
                await conn.execute(
                    text("CREATE UNIQUE INDEX ix_companies_ticker ON companies (ticker)")
                )
                await conn.execute(text("DROP INDEX ix_signals_signal_data"))
                await conn.execute(text("ALTER TABLE signals DROP CONSTRAINT ck_signals_severity"))
        finally:
            await engine.dispose()
        drift = "\n".join(await asyncio.to_thread(migrations.check_schema, url))
        assert "remove_column: companies.stray" in drift
        assert "modify_type: reports.title" in drift
        assert "ix_companies_ticker predicate None" in drift
        assert "add_index: ix_signals_signal_data" in drift
        assert "add_check: ck_signals_severity" in drift

    async def test_unmigrated_database_reports_the_revision(self, empty_database_url: str) -> None:
        drift = await asyncio.to_thread(migrations.check_schema, empty_database_url)
        assert drift[0].startswith("database is at revision None")


_CATALOG_QUERIES = (
    "SELECT table_name, ordinal_position, column_name, data_type, udt_name,"
    " character_maximum_length, numeric_precision, numeric_scale, is_nullable,"
    " column_default, is_identity, identity_generation, is_generated, generation_expression"
    " FROM information_schema.columns"
    " WHERE table_schema = 'public' AND table_name <> 'alembic_version' AND "
    + _NOT_A_PARTITION.format(oid=_TABLE_OID.format(schema="table_schema", table="table_name")),
    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
    " WHERE connamespace = 'public'::regnamespace AND contype <> 'n'"
    " AND conrelid::regclass::text <> 'alembic_version' AND "
    + _NOT_A_PARTITION.format(oid="conrelid"),
    "SELECT tablename, indexname, indexdef FROM pg_indexes"
    " WHERE schemaname = 'public' AND tablename <> 'alembic_version' AND "
    + _NOT_A_PARTITION.format(oid=_TABLE_OID.format(schema="schemaname", table="tablename")),
)


async def _catalog(url: str) -> list[set[tuple[object, ...]]]:
    """Columns, constraint definitions and index definitions, as PostgreSQL prints them."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return [
                {tuple(row) for row in await conn.execute(text(query))}
                for query in _CATALOG_QUERIES
            ]
    finally:
        await engine.dispose()


class TestMigrationDdlMatchesModels:
    """Head DDL equals the models' own DDL, including what ``alembic check`` cannot see."""

    async def test_catalog_identical_to_create_all(
        self, migrated_database_url: str, empty_database_url: str
    ) -> None:
        # A throwaway reference database: the only place create_all() is used.
        engine = create_async_engine(empty_database_url, poolclass=NullPool)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
        finally:
            await engine.dispose()
        migrated = await _catalog(migrated_database_url)
        reference = await _catalog(empty_database_url)
        for kind, ours, theirs in zip(
            ("columns", "constraints", "indexes"), migrated, reference, strict=True
        ):
            assert ours - theirs == set(), f"{kind} only in the migration"
            assert theirs - ours == set(), f"{kind} only in the models"


class TestSharedConnection:
    """A caller's connection (cookbook recipe) is migrated inside the caller's transaction."""

    async def test_upgrade_on_callers_transaction_rolls_back_with_it(
        self, empty_database_url: str
    ) -> None:
        engine = create_async_engine(empty_database_url, poolclass=NullPool)

        def upgrade(sync_conn: Connection) -> None:
            command.upgrade(migrations.alembic_config(connection=sync_conn), "head")

        try:
            async with engine.connect() as conn:
                transaction = await conn.begin()
                await conn.run_sync(upgrade)
                assert (
                    await conn.execute(text("SELECT version_num FROM alembic_version"))
                ).scalar_one() == HEAD
                await transaction.rollback()
        finally:
            await engine.dispose()
        assert await _tables(empty_database_url) == set()


class TestConcurrentUpgrades:
    """T-MIG-1: three ``alembic upgrade head`` processes at once all succeed, once."""

    async def test_three_racers_one_schema(self, empty_database_url: str) -> None:
        env = clean_env(DATABASE_URL=empty_database_url)
        results = await asyncio.gather(*(run_alembic(env, "upgrade", "head") for _ in range(3)))
        for returncode, output in results:
            assert returncode == 0, output
        ran = [output for _, output in results if "Running upgrade  -> 0001" in output]
        assert len(ran) == 1
        assert await scalars(empty_database_url, "SELECT version_num FROM alembic_version") == [
            HEAD
        ]
        assert await _invalid_indexes(empty_database_url) == []
        assert await asyncio.to_thread(migrations.check_schema, empty_database_url) == []


class TestLockWaitBound:
    """T-MIG-2: while another migration holds the lock, upgrade gives up after the bound."""

    async def test_api_raises_after_the_bound(
        self, empty_database_url: str, lock_holder: AsyncConnection
    ) -> None:
        started = time.monotonic()
        with pytest.raises(MigrationError, match="another migration holds the lock"):
            await asyncio.to_thread(migrations.upgrade, empty_database_url, lock_wait_seconds=2)
        assert 2 <= time.monotonic() - started < 8
        assert await asyncio.to_thread(migrations.current, empty_database_url) is None

        await lock_holder.execute(
            text("SELECT pg_advisory_unlock(:k)"), {"k": migrations.MIGRATION_LOCK_KEY}
        )
        await asyncio.to_thread(migrations.upgrade, empty_database_url, lock_wait_seconds=2)
        assert await asyncio.to_thread(migrations.current, empty_database_url) == HEAD

    async def test_cli_exits_non_zero_with_a_clear_message(
        self, empty_database_url: str, lock_holder: AsyncConnection
    ) -> None:
        env = clean_env(DATABASE_URL=empty_database_url, DB_MIGRATION_LOCK_WAIT_SECONDS="1")
        started = time.monotonic()
        returncode, output = await run_alembic(env, "upgrade", "head")
        assert returncode != 0
        assert "another migration holds the lock" in output
        assert time.monotonic() - started < 30


@pytest.fixture(name="special_role")
async def fixture_special_role(postgres_url: str, empty_database_url: str) -> AsyncIterator[str]:
    """A login role whose password needs URL escaping, owning the empty database."""
    role = f"mig7_{uuid.uuid4().hex[:10]}"
    database = make_url(empty_database_url).database
    admin = create_async_engine(postgres_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            # exec_driver_sql: text() would read ":w" in the password as a bind parameter.
            await conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD '{SPECIAL_PASSWORD}'")
            await conn.exec_driver_sql(f'ALTER DATABASE "{database}" OWNER TO {role}')
        yield role
    finally:
        owned = create_async_engine(empty_database_url, poolclass=NullPool)
        try:
            async with owned.begin() as conn:
                await conn.execute(text(f"DROP OWNED BY {role}"))
        finally:
            await owned.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'ALTER DATABASE "{database}" OWNER TO CURRENT_USER'))
            await conn.execute(text(f"DROP ROLE {role}"))
        await admin.dispose()


class TestSpecialCharacterPassword:
    """T-MIG-7: a password with ``% @ : /`` reaches the server intact, never the output."""

    def _server(self, postgres_url: str) -> tuple[str, int]:
        """Host (or socket folder) and port of the test server."""
        server = make_url(postgres_url)
        host = server.query.get("host") or server.host or "localhost"
        port = server.query.get("port") or server.port or 5432
        assert isinstance(host, str)
        assert isinstance(port, str | int)
        return host, int(port)

    async def test_cli_with_postgres_variables(
        self, postgres_url: str, empty_database_url: str, special_role: str
    ) -> None:
        host, port = self._server(postgres_url)
        env = clean_env(
            POSTGRES_HOST=host,
            POSTGRES_PORT=str(port),
            POSTGRES_DB=str(make_url(empty_database_url).database),
            POSTGRES_USER=special_role,
            POSTGRES_PASSWORD=SPECIAL_PASSWORD,
        )
        returncode, output = await run_alembic(env, "upgrade", "head")
        assert returncode == 0, output
        assert SPECIAL_PASSWORD not in output
        owners = await scalars(
            empty_database_url,
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'",
        )
        assert owners == [special_role]

    async def test_api_with_url_object(
        self, postgres_url: str, empty_database_url: str, special_role: str
    ) -> None:
        host, port = self._server(postgres_url)
        url = URL.create(
            "postgresql+asyncpg",
            username=special_role,
            password=SPECIAL_PASSWORD,
            host=None if host.startswith("/") else host,
            port=port,
            database=make_url(empty_database_url).database,
            query={"host": host} if host.startswith("/") else {},
        )
        await asyncio.to_thread(migrations.upgrade, url)
        assert await asyncio.to_thread(migrations.current, url) == HEAD
        await asyncio.to_thread(
            migrations.downgrade, url.render_as_string(hide_password=False), "base"
        )
        assert await asyncio.to_thread(migrations.current, url) is None
