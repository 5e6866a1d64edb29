"""A database at a revision this package does not know (a newer deploy's) is left alone.

``alembic upgrade head``, ``biotech-ma-db migrate upgrade`` and the ``migrations`` API all
fail with a message naming the database's revision and this package's head, before
changing anything: not the version row, not an index (``env.py`` would otherwise rebuild
an INVALID one first), and no lock is left behind.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from biotech_ma_db import MigrationError, migrations

from .helpers import clean_env, run_alembic, run_process, scalars

HEAD = migrations.heads()[0]
NEWER = "0999_from_a_newer_release"

_SNAPSHOT_SQL = """
    SELECT format('%s %s %s', c.relname, c.relfilenode, coalesce(i.indisvalid::text, '-'))
    FROM pg_class AS c LEFT JOIN pg_index AS i ON i.indexrelid = c.oid
    WHERE c.relnamespace = 'public'::regnamespace
    UNION ALL SELECT 'version ' || version_num FROM alembic_version
    UNION ALL SELECT 'advisory locks ' || count(*) FROM pg_locks WHERE locktype = 'advisory'
    ORDER BY 1
"""


@pytest.fixture(name="newer_database")
async def fixture_newer_database(empty_database_url: str) -> str:
    """A database at head, then stamped with a revision id from the future.

    It also holds an INVALID index (a failed ``CREATE UNIQUE INDEX CONCURRENTLY``), which
    a run that got past the revision check would try to rebuild.
    """
    url = empty_database_url
    await asyncio.to_thread(migrations.upgrade, url)
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(f"UPDATE alembic_version SET version_num = '{NEWER}'")
            await conn.exec_driver_sql(
                "INSERT INTO companies (ticker, name) VALUES ('AAA', 'Twin'), ('BBB', 'Twin')"
            )
            with pytest.raises(Exception, match="could not create unique index"):
                await conn.exec_driver_sql(
                    "CREATE UNIQUE INDEX CONCURRENTLY ix_twin ON companies (name)"
                )
    finally:
        await engine.dispose()
    return url


async def _snapshot(url: str) -> list[object]:
    return await scalars(url, _SNAPSHOT_SQL)


def _names_both(message: str) -> None:
    assert NEWER in message, message
    assert HEAD in message, message
    assert "Nothing was changed" in message, message


class TestUnknownRevision:
    """Every way in exits non-zero, names both revisions, and changes nothing."""

    async def test_api_upgrade_and_downgrade(self, newer_database: str) -> None:
        before = await _snapshot(newer_database)
        assert "ix_twin" in " ".join(map(str, before))
        with pytest.raises(MigrationError) as upgrade:
            await asyncio.to_thread(migrations.upgrade, newer_database)
        _names_both(str(upgrade.value))
        with pytest.raises(MigrationError) as downgrade:
            await asyncio.to_thread(migrations.downgrade, newer_database, "base")
        _names_both(str(downgrade.value))
        assert await _snapshot(newer_database) == before

    async def test_alembic_upgrade_head(self, newer_database: str) -> None:
        before = await _snapshot(newer_database)
        returncode, output = await run_alembic(
            clean_env(DATABASE_URL=newer_database), "upgrade", "head"
        )
        assert returncode != 0, output
        _names_both(output)
        assert await _snapshot(newer_database) == before

    async def test_cli_migrate_upgrade(self, newer_database: str) -> None:
        before = await _snapshot(newer_database)
        cli = str(Path(sys.executable).with_name("biotech-ma-db"))
        returncode, output = await run_process(
            clean_env(), cli, "migrate", "upgrade", "--url", newer_database
        )
        assert returncode == 1, output
        assert output.startswith("error: "), output
        _names_both(output)
        assert await _snapshot(newer_database) == before
