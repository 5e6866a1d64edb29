"""The ``biotech-ma-db`` command line, against a real PostgreSQL.

Commands run through typer's ``CliRunner`` in a worker thread: the CLI calls
``asyncio.run`` itself, which must not happen on the thread that runs the test loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import typer.main
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.core import TyperCommand, TyperGroup
from typer.testing import CliRunner, Result

from biotech_ma_db import Database, migrations
from biotech_ma_db.cli import app, sparkline
from biotech_ma_db.cli.roles import ADMIN_URL_ENV
from biotech_ma_db.embedded import DATA_DIR_ENV
from biotech_ma_db.testing import databases

TODAY = "2025-06-30"
SEED_ARGS = [
    "--companies", "40", "--drug-candidates", "100", "--signals", "3000", "--weeks", "14",
    "--match-targets", "10", "--today", TODAY,
]  # fmt: skip
COMMANDS = [
    [],
    ["demo"],
    ["seed"],
    ["top"],
    ["company"],
    ["health"],
    ["pool-status"],
    ["check-schema"],
    ["provision-roles"],
    ["migrate"],
    ["migrate", "upgrade"],
    ["migrate", "downgrade"],
    ["migrate", "current"],
    ["migrate", "history"],
    ["embedded"],
    ["embedded", "start"],
    ["embedded", "stop"],
    ["embedded", "status"],
    ["embedded", "url"],
]


def connecting_commands() -> list[list[str]]:
    """The path of every registered command that connects to a database, found by walking ``app``.

    A command connects when it takes ``--data-dir``, the embedded fallback of its target;
    the ``embedded`` group takes it too, but its commands run the server, not a database.
    """
    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        elif (
            isinstance(command, TyperCommand)
            and path[0] != "embedded"
            and any("--data-dir" in param.opts for param in command.params)
        ):
            found.append(path)

    walk(typer.main.get_command(app), [])
    return found


CONNECTING = connecting_commands()


def invoke(args: Sequence[str], env: dict[str, str | None] | None = None) -> Result:
    """Run the CLI like a shell would, off the test loop's thread."""
    environment: dict[str, str | None] = {"DATABASE_URL": None, "COLUMNS": "160"}
    environment.update(env or {})
    runner = CliRunner(env=environment)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(runner.invoke, app, list(args)).result()


def url_of(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=False)


def one_line_error(result: Result) -> str:
    """The single ``error: ...`` line on stderr (and no traceback anywhere)."""
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(scope="module", name="seeded_url")
def fixture_seeded_url(postgres_url: str, migrated_database_url: str) -> Iterator[str]:
    """A migrated database holding a small dataset loaded by ``seed`` (read-only tests)."""
    template = make_url(migrated_database_url).database or ""
    name = databases.unique_name("bmadb_cli")
    url = databases.clone_database(postgres_url, template, name)
    try:
        result = invoke(["seed", "--url", url, *SEED_ARGS])
        assert result.exit_code == 0, result.output
        yield url
    finally:
        databases.drop_database(postgres_url, name)


@pytest.fixture(scope="module", name="top_json")
def fixture_top_json(seeded_url: str) -> list[dict[str, Any]]:
    result = invoke(["top", "--url", seeded_url, "--limit", "40", "--json"])
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


class TestHelp:
    """Every command and sub-command explains itself."""

    @pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
    def test_help(self, command: list[str]) -> None:
        result = invoke([*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output

    def test_no_arguments_shows_help(self) -> None:
        result = invoke([])
        assert "Usage" in result.output
        for command in ("demo", "seed", "top", "company", "check-schema", "embedded"):
            assert command in result.output

    def test_sparkline(self) -> None:
        assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
        assert sparkline([5, 5, 5]) == "▅▅▅"
        assert sparkline([]) == ""


class TestSeed:
    """``seed`` loads the dataset once and refuses to load it twice."""

    def test_seeded_counts(self, seeded_url: str) -> None:
        queries = {
            "companies": "SELECT count(*) FROM companies",
            "drug_candidates": "SELECT count(*) FROM drug_candidates",
            "signals": "SELECT count(*) FROM signals",
            "scores": "SELECT count(*) FROM ma_scores",
            "unranked": "SELECT count(*) FROM ma_scores WHERE percentile_rank IS NULL",
            "matches": "SELECT count(*) FROM acquirer_matches",
            "top_matches": "SELECT count(*) FROM acquirer_matches WHERE is_top_match",
        }

        async def counts() -> dict[str, int]:
            async with Database.from_url(seeded_url) as db, db.session() as session:
                return {
                    k: (await session.execute(text(q))).scalar_one() for k, q in queries.items()
                }

        assert databases.run_sync(counts) == {
            "companies": 40 + 24,
            "drug_candidates": 100,
            "signals": 3000,
            "scores": 40 * 14,
            "unranked": 0,
            "matches": 10 * 5,
            "top_matches": 10,
        }

    def test_second_seed_refused(self, seeded_url: str) -> None:
        result = invoke(["seed", "--url", seeded_url, *SEED_ARGS])
        assert result.exit_code == 1
        assert "--reset" in one_line_error(result)

    @pytest.mark.parametrize(
        ("args", "fragment"),
        [
            (["--companies", "0"], "--companies must be between 1 and 5,000 (got 0)"),
            (["--signals", "-5"], "--signals must be between"),
            (["--today", "yesterday"], "--today must be a date"),
        ],
    )
    def test_bad_sizes(self, seeded_url: str, args: list[str], fragment: str) -> None:
        result = invoke(["seed", "--url", seeded_url, *args])
        assert result.exit_code == 2
        assert fragment in one_line_error(result)

    async def test_reset_reloads(self, fresh_database: Database) -> None:
        url = url_of(fresh_database)
        small = ["--companies", "12", "--drug-candidates", "20", "--signals", "200", "--weeks", "2"]
        first = await asyncio.to_thread(invoke, ["seed", "--url", url, *small, "--seed", "1"])
        assert first.exit_code == 0, first.output
        assert "loaded 12 companies + 24 acquirers" in first.stdout
        again = await asyncio.to_thread(
            invoke, ["seed", "--url", url, *small, "--seed", "2", "--reset"]
        )
        assert again.exit_code == 0, again.output
        async with fresh_database.session() as session:
            companies = (await session.execute(text("SELECT count(*) FROM companies"))).scalar()
            signals = (await session.execute(text("SELECT count(*) FROM signals"))).scalar()
        assert (companies, signals) == (12 + 24, 200)


class TestTop:
    """``top`` ranks the latest scores, filters them, and speaks JSON."""

    def test_table(self, seeded_url: str, top_json: list[dict[str, Any]]) -> None:
        result = invoke(["top", "--url", seeded_url, "--limit", "5"])
        assert result.exit_code == 0, result.output
        assert f"Top 5 M&A targets on {TODAY}" in result.stdout
        for row in top_json[:5]:
            assert row["ticker"] in result.stdout

    def test_json(self, top_json: list[dict[str, Any]]) -> None:
        assert len(top_json) == 40
        assert [row["rank"] for row in top_json] == list(range(1, 41))
        scores = [row["total_score"] for row in top_json]
        assert scores == sorted(scores, reverse=True)
        best = top_json[0]
        assert best["score_date"] == TODAY
        assert best["percentile_rank"] == 1.0
        assert all(0 <= row["percentile_rank"] <= 1 for row in top_json)
        assert best["key_drivers"]
        assert best["score_change_30d"] is not None
        assert best["score_change_90d"] is not None
        assert {"market_cap_usd", "cash_runway_months", "therapeutic_areas"} <= set(best)

    def test_limit(self, seeded_url: str) -> None:
        result = invoke(["top", "--url", seeded_url, "-n", "3", "--json"])
        assert result.exit_code == 0, result.output
        assert len(json.loads(result.stdout)) == 3

    @pytest.mark.parametrize("limit", ["0", "-1"])
    def test_limit_below_one(self, seeded_url: str, limit: str) -> None:
        result = invoke(["top", "--url", seeded_url, "--limit", limit])
        assert result.exit_code == 2
        assert one_line_error(result) == f"error: --limit must be at least 1 (got {limit})"

    def test_filters(self, seeded_url: str, top_json: list[dict[str, Any]]) -> None:
        result = invoke(
            [
                "top", "--url", seeded_url, "--json", "--limit", "40",
                "--therapeutic-area", "oncology", "--therapeutic-area", "rare disease",
                "--min-market-cap", "200M", "--max-market-cap", "20B",
            ]
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)
        expected = [
            r["ticker"]
            for r in top_json
            if {"oncology", "rare_disease"} & set(r["therapeutic_areas"])
            and 200e6 <= r["market_cap_usd"] <= 20e9
        ]
        assert [r["ticker"] for r in rows] == expected
        assert rows

    def test_cash_constrained(self, seeded_url: str, top_json: list[dict[str, Any]]) -> None:
        result = invoke(["top", "--url", seeded_url, "--json", "-n", "40", "--cash-constrained"])
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)
        assert rows
        assert all(r["cash_constrained"] and r["cash_runway_months"] < 12 for r in rows)
        assert len(rows) == sum(r["cash_constrained"] for r in top_json)

    def test_nothing_matches(self, seeded_url: str) -> None:
        result = invoke(["top", "--url", seeded_url, "--json", "--min-market-cap", "1T"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == []

    @pytest.mark.parametrize("amount", ["lots", "-5M", "1.2.3B"])
    def test_bad_amount(self, seeded_url: str, amount: str) -> None:
        result = invoke(["top", "--url", seeded_url, "--min-market-cap", amount])
        assert result.exit_code == 2
        assert "--min-market-cap must be an amount" in one_line_error(result)


class TestCompany:
    """``company TICKER`` shows one company; an unknown ticker is a clear error."""

    def test_profile(self, seeded_url: str, top_json: list[dict[str, Any]]) -> None:
        ticker = top_json[0]["ticker"]
        result = invoke(["company", ticker.lower(), "--url", seeded_url])
        assert result.exit_code == 0, result.output
        out = result.stdout
        assert f"{ticker} — {top_json[0]['name']}" in out
        for section in ("Pipeline", "Last 10 signals", "last 14 scores", "Likely acquirers"):
            assert section in out
        assert any(ch in out for ch in "▁▂▃▄▅▆▇█")

    def test_json(self, seeded_url: str, top_json: list[dict[str, Any]]) -> None:
        ticker = top_json[0]["ticker"]
        result = invoke(["company", ticker, "--url", seeded_url, "--json", "--signals", "3"])
        assert result.exit_code == 0, result.output
        profile = json.loads(result.stdout)
        assert profile["ticker"] == ticker
        assert profile["pipeline"]
        assert len(profile["signals"]) <= 3
        dates = [s["event_date"] for s in profile["signals"]]
        assert dates == sorted(dates, reverse=True)
        history = profile["score_history"]
        assert len(history) == 14
        assert history[-1] == {"score_date": TODAY, "total_score": top_json[0]["total_score"]}
        assert len(profile["acquirer_matches"]) == 5

    def test_no_signals(self, seeded_url: str, top_json: list[dict[str, Any]]) -> None:
        ticker = top_json[-1]["ticker"]
        result = invoke(["company", ticker, "--url", seeded_url, "--json", "--signals", "0"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["signals"] == []

    @pytest.mark.parametrize("count", ["-1", "501"])
    def test_bad_signal_count(self, seeded_url: str, count: str) -> None:
        result = invoke(["company", "ABC", "--url", seeded_url, "--signals", count])
        assert result.exit_code == 2
        assert "--signals must be between 0 and 500" in one_line_error(result)

    def test_unknown_ticker(self, seeded_url: str) -> None:
        result = invoke(["company", "ZZZZZ", "--url", seeded_url])
        assert result.exit_code == 1
        assert one_line_error(result) == "error: no company with ticker 'ZZZZZ'"


class TestHealthAndPool:
    """``health`` and ``pool-status`` report on the target database."""

    def test_health(self, seeded_url: str) -> None:
        result = invoke(["health", "--url", seeded_url])
        assert result.exit_code == 0, result.output
        assert "ok" in result.stdout
        assert "server version" in result.stdout

    def test_health_json(self, seeded_url: str) -> None:
        result = invoke(["health", "--url", seeded_url, "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["ok"] is True
        assert report["in_recovery"] is False
        assert report["server_version"]
        assert report["pool"]["size"] == 20

    def test_pool_status_json(self, seeded_url: str) -> None:
        result = invoke(["pool-status", "--url", seeded_url, "--json"], {"DB_POOL_SIZE": "7"})
        assert result.exit_code == 0, result.output
        status = json.loads(result.stdout)
        assert status["size"] == 7
        assert status["checked_out"] == 0
        assert status["checked_in"] >= 1

    def test_pool_status_table(self, seeded_url: str) -> None:
        result = invoke(["pool-status", "--url", seeded_url])
        assert result.exit_code == 0, result.output
        assert "checked in" in result.stdout


class TestBadTarget:
    """A bad or unreachable URL is one line on stderr, and passwords stay hidden."""

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("not a url", "error: --url is not a valid database URL"),
            ("mysql://u@host/db", "error: --url must be a postgresql:// URL (got mysql://)"),
        ],
    )
    def test_malformed(self, url: str, message: str) -> None:
        result = invoke(["top", "--url", url])
        assert result.exit_code == 2
        assert one_line_error(result) == message

    def test_environment_variable_named(self) -> None:
        result = invoke(["health"], {"DATABASE_URL": "nonsense"})
        assert result.exit_code == 2
        assert one_line_error(result) == "error: DATABASE_URL is not a valid database URL"

    @pytest.mark.parametrize("command", [["top"], ["company", "ABC"], ["health"], ["seed"]])
    def test_unreachable(self, tmp_path: Path, command: list[str]) -> None:
        url = f"postgresql://app:s3cret-pw@/biotech_ma?host={tmp_path / 'nowhere'}"
        result = invoke([*command, "--url", url])
        assert result.exit_code == 1
        line = one_line_error(result)
        assert "s3cret-pw" not in result.output
        assert "***" in line
        assert "connection failed" in line

    def test_missing_database(self, seeded_url: str) -> None:
        url = make_url(seeded_url).set(database="bmadb_does_not_exist")
        result = invoke(["top", "--url", url.render_as_string(hide_password=False)])
        assert result.exit_code == 1
        assert "the database does not exist" in one_line_error(result)

    def test_missing_schema(self, empty_database_url: str) -> None:
        result = invoke(["top", "--url", empty_database_url])
        assert result.exit_code == 1
        assert "migrate upgrade" in one_line_error(result)


class TestUrlOption:
    """Every command that connects takes ``--url``; provision-roles' is the admin URL."""

    def test_walk_finds_the_connecting_commands(self) -> None:
        names = {" ".join(path) for path in CONNECTING}
        assert {"demo", "top", "health", "provision-roles", "migrate upgrade"} <= names
        assert not names & {"migrate history", "embedded start", "embedded url"}

    @pytest.mark.parametrize("command", CONNECTING, ids=" ".join)
    def test_help_lists_url(self, command: list[str]) -> None:
        result = invoke([*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "--url" in result.stdout

    def test_admin_url_is_hidden(self) -> None:
        result = invoke(["provision-roles", "--help"])
        assert result.exit_code == 0, result.output
        assert "--admin-url" not in result.stdout
        assert ADMIN_URL_ENV in result.stdout

    @pytest.mark.parametrize("option", ["--url", "--admin-url"])
    async def test_provision_roles(
        self, postgres_url: str, empty_database_url: str, option: str
    ) -> None:
        database = make_url(empty_database_url).database
        result = await asyncio.to_thread(
            invoke, ["provision-roles", option, empty_database_url], {ADMIN_URL_ENV: None}
        )
        assert result.exit_code == 0, result.output
        assert f"database {database}, schema public: grants and default privileges applied" in (
            result.stdout
        )
        warned = "warning: --admin-url is deprecated; use --url" in result.stderr
        assert warned == (option == "--admin-url")
        async with Database.from_url(postgres_url) as admin, admin.session() as session:
            temporary = await session.scalar(
                text("SELECT has_database_privilege('app_rw', :db, 'TEMPORARY')"),
                {"db": database},
            )
        assert temporary is False  # revoked from PUBLIC: only provisioning does that

    @pytest.mark.parametrize(
        ("args", "env", "message"),
        [
            (["--admin-url", "nonsense"], {}, "error: --admin-url is not a valid database URL"),
            (["--url", "mysql://u@h/db"], {}, "error: --url must be a postgresql:// URL"),
            ([], {ADMIN_URL_ENV: "nonsense"}, f"error: {ADMIN_URL_ENV} is not a valid database"),
            (
                ["--url", "postgresql://a@h/db", "--admin-url", "postgresql://b@h/db"],
                {},
                "error: --admin-url is the old name of --url: give only --url",
            ),
        ],
    )
    def test_provision_roles_bad_url(
        self, args: list[str], env: dict[str, str | None], message: str
    ) -> None:
        result = invoke(["provision-roles", *args], {ADMIN_URL_ENV: None, **env})
        assert result.exit_code == 2
        assert result.stderr.strip().splitlines()[-1].startswith(message)


class TestMigrate:
    """``migrate`` wraps the migrations API; ``check-schema`` finds drift."""

    def test_round_trip(self, empty_database_url: str) -> None:
        url = ["--url", empty_database_url]
        head = migrations.heads()[0]
        assert invoke(["migrate", "current", *url]).stdout.strip() == "base (no schema)"
        drift = invoke(["check-schema", *url])
        assert drift.exit_code == 1
        assert "add_table: companies" in drift.stdout
        assert one_line_error(drift).startswith("error: schema drift:")

        upgraded = invoke(["migrate", "upgrade", *url])
        assert upgraded.exit_code == 0, upgraded.output
        assert upgraded.stdout.strip() == f"at revision {head}"
        assert invoke(["migrate", "current", *url]).stdout.strip() == head
        clean = invoke(["check-schema", *url])
        assert clean.exit_code == 0, clean.output
        assert clean.stdout.strip() == "schema matches the models"

        downgraded = invoke(["migrate", "downgrade", "base", *url])
        assert downgraded.exit_code == 0, downgraded.output
        assert downgraded.stdout.strip() == "at revision base (no schema)"

    def test_unknown_revision(self, empty_database_url: str) -> None:
        result = invoke(["migrate", "upgrade", "nosuchrev", "--url", empty_database_url])
        assert result.exit_code == 1
        assert "nosuchrev" in one_line_error(result)

    def test_downgrade_needs_revision(self) -> None:
        result = invoke(["migrate", "downgrade"])
        assert result.exit_code == 2

    def test_history(self) -> None:
        result = invoke(["migrate", "history"])
        assert result.exit_code == 0, result.output
        for revision, _ in migrations.history():
            assert revision in result.stdout
        assert "(head)" in result.stdout

    async def test_drift_listed(self, fresh_database: Database) -> None:
        async with fresh_database.session() as session:
            await session.execute(text("DROP INDEX ix_companies_market_cap_usd"))
        result = await asyncio.to_thread(invoke, ["check-schema", "--url", url_of(fresh_database)])
        assert result.exit_code == 1
        assert result.stdout.splitlines() == [
            "- add_index: ix_companies_market_cap_usd on companies"
        ]
        assert one_line_error(result) == "error: schema drift: 1 difference(s)"


class TestDemoOnUrl:
    """``demo --url`` migrates, loads once, reuses, and rebuilds on ``--reset``."""

    async def test_load_reuse_reset(self, fresh_database: Database) -> None:
        url = url_of(fresh_database)
        small = ["--companies", "30", "--signals", "1500", "--weeks", "14", "--today", TODAY]
        first = await asyncio.to_thread(invoke, ["demo", "--url", url, *small])
        assert first.exit_code == 0, first.output
        out = first.stdout
        for fragment in (
            f"Top 10 M&A targets on {TODAY}",
            "Best acquirer per target",
            f"Signals in the 90 days to {TODAY}",
            "Health and pool",
            "loaded 30 companies + 24 acquirers, 96 drug candidates, 1,500 signals",
            "demo finished in",
        ):
            assert fragment in out, fragment

        second = await asyncio.to_thread(invoke, ["demo", "--url", url, *small])
        assert second.exit_code == 0, second.output
        assert "reusing the dataset already loaded (54 companies)" in second.stdout
        assert "loaded 30 companies" not in second.stdout

        reset = await asyncio.to_thread(
            invoke, ["demo", "--url", url, *small[:-2], "--today", "2025-01-31", "--reset"]
        )
        assert reset.exit_code == 0, reset.output
        assert "Top 10 M&A targets on 2025-01-31" in reset.stdout


def _script() -> list[str]:
    installed = Path(sys.executable).with_name("biotech-ma-db")
    if installed.exists():
        return [str(installed)]
    return [sys.executable, "-m", "biotech_ma_db.cli"]


@pytest.mark.slow
class TestEndToEnd:
    """``biotech-ma-db demo`` as a user runs it: a subprocess on a new embedded server."""

    def test_demo_in_subprocess(self, tmp_path: Path) -> None:
        tmp_path.chmod(0o755)  # the server runs as an unprivileged user when we are root
        data_dir = tmp_path / "pg"
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env[DATA_DIR_ENV] = str(data_dir)

        def run(*args: str, timeout: float = 100) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*_script(), *args],
                check=False,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )

        try:
            demo = run("demo", "--companies", "60", "--signals", "6000", "--weeks", "14")
            assert demo.returncode == 0, demo.stdout + demo.stderr
            out = demo.stdout
            assert f"embedded PostgreSQL in {data_dir}" in out
            assert "Top 10 M&A targets on" in out
            assert "Best acquirer per target" in out
            assert "Signals in the 90 days" in out
            assert "demo finished in" in out
            assert out.count("│ ok") == 1
            assert "Traceback" not in demo.stderr

            status = run("embedded", "status")
            assert status.returncode == 0, status.stderr
            assert "running" in status.stdout
            url = run("embedded", "url")
            assert url.returncode == 0
            assert url.stdout.strip().endswith(f"port={status.stdout.split('PGSQL.')[1].strip()}")

            again = run("demo", "--data-dir", str(data_dir))
            assert again.returncode == 0, again.stderr
            assert "reusing the dataset already loaded (84 companies)" in again.stdout
        finally:
            stop = run("embedded", "stop", "--data-dir", str(data_dir), timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert "stopped" in stop.stdout
        after = run("embedded", "status")
        assert after.returncode == 1
        assert "not running" in after.stdout
