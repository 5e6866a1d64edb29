"""The read-only commands on a real streaming replica (``DB_READ_REPLICA_URLS``).

With WAL replay paused on the standby, a change on the primary shows which server a
command read: the stale standby, or the primary.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from biotech_ma_db.testing import databases, replica
from tests.cli.test_cli import SEED_ARGS, invoke

_BOUND_S = 30.0
_DEMO_ARGS = ["--companies", "30", "--signals", "1500", "--weeks", "14", "--today", "2025-06-30"]


def _fetch(url: str, sql: str) -> object:
    parsed = make_url(url)

    async def go() -> object:
        conn = await asyncpg.connect(
            host=parsed.query.get("host"),
            port=parsed.query.get("port"),
            user="postgres",
            database=parsed.database,
        )
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return databases.run_sync(go)


def _caught_up(primary_db: str, replica_db: str) -> None:
    lsn = str(_fetch(primary_db, "SELECT pg_current_wal_insert_lsn()::text"))
    databases.run_sync(lambda: replica.wait_replayed(replica_db, lsn))


@contextmanager
def _replay_paused(replica_url: str) -> Iterator[None]:
    _fetch(replica_url, "SELECT pg_wal_replay_pause()")
    try:
        deadline = time.monotonic() + _BOUND_S
        while _fetch(replica_url, "SELECT pg_get_wal_replay_pause_state()") != "paused":
            assert time.monotonic() < deadline, "replay did not pause"
            time.sleep(0.01)
        yield
    finally:
        _fetch(replica_url, "SELECT pg_wal_replay_resume()")


@pytest.fixture(name="cloned")
def fixture_cloned(
    postgres_url: str, migrated_database_url: str, replica_url: str
) -> Iterator[tuple[str, str]]:
    """(a new migrated database on the primary, the same database on the standby)."""
    template = make_url(migrated_database_url).database or ""
    name = databases.unique_name("bmadb_cli_replica")
    url = databases.clone_database(postgres_url, template, name)
    try:
        yield url, databases.database_url(replica_url, name)
    finally:
        databases.drop_database(postgres_url, name)


@pytest.fixture(name="seeded")
def fixture_seeded(cloned: tuple[str, str]) -> tuple[str, str]:
    """``cloned``, seeded, and replayed on the standby."""
    url, replica_db = cloned
    result = invoke(["seed", "--url", url, *SEED_ARGS])
    assert result.exit_code == 0, result.output
    _caught_up(url, replica_db)
    return url, replica_db


class TestReadOnlyCommandsOnTheReplica:
    """``top`` and ``company`` read the replica; ``seed`` and ``demo`` see their own writes."""

    def test_top_reads_the_replica(self, seeded: tuple[str, str], replica_url: str) -> None:
        url, replica_db = seeded
        with _replay_paused(replica_url):
            _fetch(url, "DELETE FROM ma_scores")
            on_replica = invoke(
                ["top", "--url", url, "--json"], {"DB_READ_REPLICA_URLS": replica_db}
            )
            on_primary = invoke(["top", "--url", url, "--json"])
        assert on_replica.exit_code == 0, on_replica.output
        assert json.loads(on_replica.stdout)  # the standby has not replayed the delete
        assert json.loads(on_primary.stdout) == []

    def test_company_reads_the_replica(self, seeded: tuple[str, str], replica_url: str) -> None:
        url, replica_db = seeded
        ticker = str(_fetch(url, "SELECT ticker FROM companies ORDER BY id LIMIT 1"))
        with _replay_paused(replica_url):
            _fetch(url, f"UPDATE companies SET name = 'Renamed' WHERE ticker = '{ticker}'")
            on_replica = invoke(
                ["company", ticker, "--url", url, "--json"], {"DB_READ_REPLICA_URLS": replica_db}
            )
            on_primary = invoke(["company", ticker, "--url", url, "--json"])
        assert on_replica.exit_code == 0, on_replica.output
        assert json.loads(on_replica.stdout)["name"] != "Renamed"
        assert json.loads(on_primary.stdout)["name"] == "Renamed"

    def test_demo_and_seed_see_their_own_writes(
        self, cloned: tuple[str, str], replica_url: str
    ) -> None:
        url, replica_db = cloned
        _caught_up(url, replica_db)  # the standby has the empty database
        env = {"DB_READ_REPLICA_URLS": replica_db}
        with _replay_paused(replica_url):
            demo = invoke(["demo", "--url", url, *_DEMO_ARGS], env)
            again = invoke(["seed", "--url", url, *SEED_ARGS], env)
        assert demo.exit_code == 0, demo.output
        assert "Top 10 M&A targets" in demo.stdout  # read on the primary after the load
        assert "no scores in the database yet" not in demo.stdout
        assert again.exit_code == 1
        assert "already holds" in again.stderr

    def test_an_unreachable_replica_is_no_error(
        self, seeded: tuple[str, str], tmp_path: Path
    ) -> None:
        url, _ = seeded
        gone = f"postgresql://postgres@/{make_url(url).database}?host={tmp_path}&port=1"
        result = invoke(["top", "--url", url, "--json"], {"DB_READ_REPLICA_URLS": gone})
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)


class TestHealthAndPoolWithReplicas:
    """``health`` and ``pool-status`` report each replica."""

    def test_health_json(self, seeded: tuple[str, str]) -> None:
        url, replica_db = seeded
        result = invoke(["health", "--url", url, "--json"], {"DB_READ_REPLICA_URLS": replica_db})
        assert result.exit_code == 0, result.output
        (status,) = json.loads(result.stdout)["replicas"]
        assert status["in_rotation"] is True
        assert status["lag_bytes"] >= 0
        assert status["pool"]["size"] == 20

    def test_health_and_pool_tables(self, seeded: tuple[str, str]) -> None:
        url, replica_db = seeded
        secret = make_url(replica_db).set(password="s3cret").render_as_string(False)
        env = {"DB_READ_REPLICA_URLS": secret}
        for command in ("health", "pool-status"):
            result = invoke([command, "--url", url], env)
            assert result.exit_code == 0, result.output
            assert "in rotation" in result.stdout
            assert "s3cret" not in result.output
