"""``biotech-ma-db backup`` and ``restore``, end to end on the demo data with real pg_dump.

Commands run through typer's ``CliRunner`` in a worker thread, as in ``test_cli``; there is
no terminal, so the progress bars must cope with that.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from biotech_ma_db import Database
from biotech_ma_db.backup import Manifest, manifest_path, read_manifest
from biotech_ma_db.cli import app
from biotech_ma_db.cli.roles import ADMIN_URL_ENV
from biotech_ma_db.testing import databases
from tests.cli.test_cli import connecting_commands

SEED_ARGS = [
    "--companies", "30", "--drug-candidates", "60", "--signals", "1500", "--weeks", "6",
    "--match-targets", "5", "--today", "2025-06-30",
]  # fmt: skip


def invoke(args: Sequence[str], env: dict[str, str | None] | None = None) -> Result:
    """Run the CLI like a shell would, off the test loop's thread."""
    environment: dict[str, str | None] = {
        "DATABASE_URL": None,
        ADMIN_URL_ENV: None,
        "COLUMNS": "160",
    }
    environment.update(env or {})
    runner = CliRunner(env=environment)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(runner.invoke, app, list(args)).result()


def last_error(result: Result) -> str:
    """The ``error: ...`` line that ends stderr (progress bars may come before it)."""
    assert "Traceback" not in result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: "), result.stderr
    return line


def fetch(url: str, sql: str) -> list[tuple[object, ...]]:
    async def run() -> list[tuple[object, ...]]:
        async with Database.from_url(url) as db, db.session() as session:
            return [tuple(row) for row in (await session.execute(text(sql))).all()]

    return databases.run_sync(run)


def database_names(postgres_url: str) -> set[str]:
    return {str(row[0]) for row in fetch(postgres_url, "SELECT datname FROM pg_database")}


def copy_backup(source: Path, folder: Path) -> Path:
    target = folder / "copy.dump"
    shutil.copyfile(source, target)
    shutil.copyfile(manifest_path(source), manifest_path(target))
    return target


def rewrite_manifest(dump: Path, **changes: object) -> Manifest:
    manifest = read_manifest(dump).model_copy(update=changes)
    manifest_path(dump).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    return manifest


@pytest.fixture(scope="module", name="demo_url")
def fixture_demo_url(postgres_url: str, migrated_database_url: str) -> Iterator[str]:
    """A migrated database holding the demo data, loaded by ``seed``."""
    template = make_url(migrated_database_url).database or ""
    name = databases.unique_name("bmadb_cli_backup")
    url = databases.clone_database(postgres_url, template, name)
    try:
        result = invoke(["seed", "--url", url, *SEED_ARGS])
        assert result.exit_code == 0, result.output
        yield url
    finally:
        databases.drop_database(postgres_url, name)


@pytest.fixture(scope="module", name="dump")
def fixture_dump(demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``biotech-ma-db backup`` of the demo database (copy it before changing it)."""
    path = tmp_path_factory.mktemp("cli-backup") / "demo.dump"
    result = invoke(["backup", str(path), "--url", demo_url])
    assert result.exit_code == 0, result.output
    return path


class TestCommands:
    """Both commands are found by the --url walk of test_cli, and explain themselves."""

    def test_connecting(self) -> None:
        assert {"backup", "restore"} <= {" ".join(path) for path in connecting_commands()}

    @pytest.mark.parametrize("command", ["backup", "restore"])
    def test_help(self, command: str) -> None:
        result = invoke([command, "--help"])
        assert result.exit_code == 0, result.output
        assert "--url" in result.stdout
        assert "--data-dir" in result.stdout

    def test_restore_help_names_the_admin_variable(self) -> None:
        result = invoke(["restore", "--help"])
        assert ADMIN_URL_ENV in result.stdout


class TestBackup:
    """``backup FILE``: the dump, its manifest, a summary; progress on stderr."""

    def test_summary(self, dump: Path) -> None:
        manifest = read_manifest(dump)
        assert dump.read_bytes().startswith(b"PGDMP")
        assert manifest.tables["signals"].rows == 1_500
        assert manifest.tables["companies"].rows == 30 + 24

    def test_output(self, demo_url: str, tmp_path: Path) -> None:
        path = tmp_path / "out.dump"
        result = invoke(["backup", str(path), "--url", demo_url])
        assert result.exit_code == 0, result.output
        manifest = read_manifest(path)
        assert f"manifest {manifest_path(path)}: revision {manifest.revision}" in result.stdout
        assert f"{manifest.dump_size:,} bytes" in result.stdout
        assert "signals" in result.stdout
        # No terminal: each bar is printed once, complete.
        assert "dumping (rows)" in result.stderr
        total = sum(table.rows for table in manifest.tables.values())
        assert f"{total}/{total}" in result.stderr

    def test_json(self, demo_url: str, tmp_path: Path) -> None:
        path = tmp_path / "json.dump"
        result = invoke(["backup", str(path), "--url", demo_url, "--json"])
        assert result.exit_code == 0, result.output
        assert Manifest.model_validate(json.loads(result.stdout)) == read_manifest(path)

    def test_refuses_to_overwrite(self, demo_url: str, dump: Path) -> None:
        before = dump.read_bytes()
        result = invoke(["backup", str(dump), "--url", demo_url])
        assert result.exit_code == 1
        assert last_error(result) == f"error: {dump} already exists; refusing to overwrite it"
        assert dump.read_bytes() == before

    def test_force(self, demo_url: str, dump: Path, tmp_path: Path) -> None:
        copy = copy_backup(dump, tmp_path)
        result = invoke(["backup", str(copy), "--url", demo_url, "--force"])
        assert result.exit_code == 0, result.output
        assert read_manifest(copy).tables == read_manifest(dump).tables

    def test_password_hidden(self, demo_url: str, tmp_path: Path) -> None:
        url = make_url(demo_url).set(password="s3cret-cli-pw").render_as_string(False)
        result = invoke(["backup", str(tmp_path / "pw.dump"), "--url", url])
        assert result.exit_code == 0, result.output
        assert "s3cret-cli-pw" not in result.output
        assert "***" in result.stdout
        assert "s3cret-cli-pw" not in manifest_path(tmp_path / "pw.dump").read_text()


class TestRestoreVerify:
    """``restore --verify``: exit 0 only when the scratch restore matches the manifest."""

    def test_verified(self, postgres_url: str, dump: Path) -> None:
        before = database_names(postgres_url)
        result = invoke(["restore", str(dump), "--verify", "--url", postgres_url])
        assert result.exit_code == 0, result.output
        tables = len(read_manifest(dump).tables)
        assert f"verified: {tables} tables, " in result.stdout
        assert "match the manifest; database bmadb_verify_" in result.stdout
        assert "dropped" in result.stdout
        assert "different" not in result.stdout
        assert database_names(postgres_url) == before

    def test_admin_url_from_environment(self, postgres_url: str, dump: Path) -> None:
        result = invoke(["restore", str(dump), "--verify"], {ADMIN_URL_ENV: postgres_url})
        assert result.exit_code == 0, result.output

    def test_json(self, postgres_url: str, dump: Path) -> None:
        result = invoke(["restore", str(dump), "--verify", "--url", postgres_url, "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["ok"] is True
        assert report["differences"] == []
        assert report["kept"] is False
        assert report["tables"] == read_manifest(dump).model_dump(mode="json")["tables"]

    def test_flipped_bytes(self, postgres_url: str, dump: Path, tmp_path: Path) -> None:
        copy = copy_backup(dump, tmp_path)
        raw = bytearray(copy.read_bytes())
        middle = len(raw) // 2
        raw[middle : middle + 16] = bytes(b ^ 0xFF for b in raw[middle : middle + 16])
        copy.write_bytes(raw)
        before = database_names(postgres_url)
        result = invoke(["restore", str(copy), "--verify", "--url", postgres_url])
        assert result.exit_code == 1
        line = last_error(result)
        assert line.startswith("error: sha256 checksum mismatch:")
        assert "nothing was restored" in line
        assert database_names(postgres_url) == before

    def test_tampered_counts(self, postgres_url: str, dump: Path, tmp_path: Path) -> None:
        copy = copy_backup(dump, tmp_path)
        tables = dict(read_manifest(copy).tables)
        real = tables["companies"].rows
        tables["companies"] = tables["companies"].model_copy(update={"rows": real + 5})
        rewrite_manifest(copy, tables=tables)
        before = database_names(postgres_url)
        result = invoke(["restore", str(copy), "--verify", "--url", postgres_url])
        assert result.exit_code == 1
        assert f"- companies rows: manifest {real + 5}, restored {real}" in result.stdout
        assert last_error(result).startswith(
            "error: verification failed: 1 difference(s) from the manifest; database "
        )
        assert database_names(postgres_url) == before

    def test_truncated_with_recomputed_sha(
        self, postgres_url: str, dump: Path, tmp_path: Path
    ) -> None:
        copy = copy_backup(dump, tmp_path)
        raw = copy.read_bytes()[: len(copy.read_bytes()) * 4 // 5]
        copy.write_bytes(raw)
        rewrite_manifest(copy, dump_size=len(raw), dump_sha256=hashlib.sha256(raw).hexdigest())
        name = databases.unique_name("bmadb_cli_truncated")
        before = database_names(postgres_url)
        result = invoke(
            ["restore", str(copy), "--verify", "--url", postgres_url, "--target-db", name]
        )
        assert result.exit_code == 1
        assert "pg_restore" in last_error(result)
        assert "end of file" in last_error(result)
        assert database_names(postgres_url) == before
        assert name not in database_names(postgres_url)

    def test_keep(self, postgres_url: str, dump: Path) -> None:
        name = databases.unique_name("bmadb_cli_kept")
        args = ["restore", str(dump), "--verify", "--keep", "--target-db", name]
        try:
            result = invoke([*args, "--url", postgres_url])
            assert result.exit_code == 0, result.output
            assert f"database {name} kept" in result.stdout
            restored = databases.database_url(postgres_url, name)
            assert fetch(restored, "SELECT count(*) FROM signals") == [(1_500,)]
        finally:
            databases.drop_database(postgres_url, name)


class TestRestore:
    """``restore --target-db``: into a new or empty database, never over data."""

    def test_into_new_database(self, postgres_url: str, dump: Path) -> None:
        name = databases.unique_name("bmadb_cli_restored")
        try:
            result = invoke(["restore", str(dump), "--target-db", name, "--url", postgres_url])
            assert result.exit_code == 0, result.output
            assert f"database {name} kept" in result.stdout
            again = invoke(["restore", str(dump), "--target-db", name, "--url", postgres_url])
            assert again.exit_code == 1
            assert last_error(again).startswith(f"error: database {name} is not empty")
        finally:
            databases.drop_database(postgres_url, name)

    def test_needs_a_target(self, postgres_url: str, dump: Path) -> None:
        result = invoke(["restore", str(dump), "--url", postgres_url])
        assert result.exit_code == 2
        assert last_error(result) == (
            "error: restore needs --target-db NAME (or --verify, into a scratch database)"
        )

    def test_missing_file(self, postgres_url: str, tmp_path: Path) -> None:
        result = invoke(["restore", str(tmp_path / "none.dump"), "--verify", "--url", postgres_url])
        assert result.exit_code == 2

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("not a url", "error: --url is not a valid database URL"),
            ("mysql://u@h/db", "error: --url must be a postgresql:// URL (got mysql://)"),
        ],
    )
    def test_bad_url(self, dump: Path, url: str, message: str) -> None:
        result = invoke(["restore", str(dump), "--verify", "--url", url])
        assert result.exit_code == 2
        assert last_error(result) == message
